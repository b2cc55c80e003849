// Parley as a marketplace uses it: its backend makes an API key with the server binary, creates
// its people through the server API, signs them in with a token (no Parley password), and posts
// an order update that both people see live as a notice.
import { APIRequestContext, expect, request, test } from "@playwright/test";
import { execFileSync } from "node:child_process";
import { createHmac, randomUUID } from "node:crypto";
import { composer, hydrated, log, messages, online, send, trackCsp, unique } from "./helpers";

/** An HS256 JWT, as the marketplace's backend signs it. */
function token(claims: Record<string, unknown>): string {
  const encode = (value: object) => Buffer.from(JSON.stringify(value)).toString("base64url");
  const now = Math.floor(Date.now() / 1000);
  const body = `${encode({ alg: "HS256", typ: "JWT" })}.${encode({
    iss: "https://shop.example",
    aud: "parley",
    iat: now,
    exp: now + 300,
    jti: randomUUID(),
    ...claims,
  })}`;
  const signature = createHmac("sha256", process.env.PARLEY_E2E_SSO_SECRET!).update(body).digest("base64url");
  return `${body}.${signature}`;
}

/** The marketplace's backend: a new API key, and requests made with it. */
async function marketplace(baseURL: string): Promise<APIRequestContext> {
  const output = execFileSync(process.env.PARLEY_E2E_SERVER_BIN!, ["keys", "create", "--name", unique("shop")], {
    env: { ...process.env, DATABASE_URL: process.env.PARLEY_E2E_DATABASE_URL },
  }).toString();
  const key = output.trim().split("\n").pop()!;
  return request.newContext({
    baseURL,
    ignoreHTTPSErrors: true,
    extraHTTPHeaders: { Authorization: `Bearer ${key}` },
  });
}

test("people signed in by the marketplace chat, and its order update reaches both as a notice", async ({
  browser,
  baseURL,
}) => {
  const api = await marketplace(baseURL!);
  const seller = unique("s");
  const customer = unique("c");
  const created = await api.put(`/api/v1/users/${seller}`, { data: { name: "Ann's Ceramics", role: "seller" } });
  expect(created.status()).toBe(201);
  const sellerUsername = (await created.json()).username;

  // The seller opens the chat from the marketplace's dashboard.
  const sellerContext = await browser.newContext();
  const sellerCsp = await trackCsp(sellerContext);
  const sellerPage = await sellerContext.newPage();
  await sellerPage.goto(`/sso?token=${token({ sub: seller, name: "Ann's Ceramics" })}`);
  await sellerPage.waitForURL("**/chat");
  await hydrated(sellerPage);
  await online(sellerPage);

  // The customer clicks "Contact seller": a new account, straight into the conversation.
  const customerContext = await browser.newContext();
  const customerCsp = await trackCsp(customerContext);
  const customerPage = await customerContext.newPage();
  await customerPage.goto(`/sso?token=${token({ sub: customer, name: "Bob", with: seller })}`);
  await customerPage.waitForURL(`**/chat/@${sellerUsername}`);
  await hydrated(customerPage);
  await online(customerPage);
  await expect(customerPage.getByRole("heading", { level: 2 })).toHaveText("Ann's Ceramics");
  await send(customerPage, "Is the blue vase still available?");
  await expect(messages(customerPage, "Is the blue vase still available?")).toHaveAttribute("data-state", "sent");

  const list = sellerPage.getByRole("list", { name: "Conversation list" });
  await list.getByRole("listitem").filter({ hasText: "Bob" }).getByRole("link").click();
  await expect(messages(sellerPage, "Is the blue vase still available?")).toBeVisible();
  await send(sellerPage, "Yes, it ships tomorrow.");
  await expect(messages(customerPage, "Yes, it ships tomorrow.")).toBeVisible();

  // The marketplace posts an order update into the conversation.
  const opened = await api.post("/api/v1/conversations", { data: { participants: [customer, seller] } });
  expect(opened.status()).toBe(200);
  const conversation = await opened.json();
  const notice = await api.post(`/api/v1/conversations/${conversation.id}/messages`, {
    data: { from: null, body: "Order #1042 has shipped." },
    headers: { "Idempotency-Key": `order-1042-shipped-${conversation.id}` },
  });
  expect(notice.status()).toBe(201);
  for (const page of [sellerPage, customerPage]) {
    const shown = log(page).locator("li.notice", { hasText: "Order #1042 has shipped." });
    await expect(shown).toBeVisible();
    // A notice, not anyone's bubble.
    await expect(messages(page, "Order #1042 has shipped.")).toHaveCount(0);
  }
  await expect(composer(sellerPage)).toBeEditable();
  expect(sellerCsp).toEqual([]);
  expect(customerCsp).toEqual([]);
  await api.dispose();
  await sellerContext.close();
  await customerContext.close();
});
