// Parley as a marketplace uses it: its backend makes an API key with the server binary, creates
// its people through the server API, signs them in with a token (no Parley password) that
// carries the product's card, and posts an order update that both people see live as a notice
// with the order's card.
import { APIRequestContext, Locator, expect, request, test } from "@playwright/test";
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

/** The card of the shop's blue vase, its picture on another site (the shop's image host). */
function vase(baseURL: string) {
  return {
    kind: "product",
    id: "vase-7",
    title: "Blue vase",
    url: "https://shop.example/products/vase-7",
    image_url: `https://localhost:${new URL(baseURL).port}/favicon.svg`,
    price: { amount: "24.00", currency: "EUR" },
  };
}

/** The picture has loaded (the page's Content-Security-Policy let it in). */
async function expectPictureShown(picture: Locator) {
  await expect(picture).toBeVisible();
  await expect.poll(() => picture.evaluate((img: HTMLImageElement) => img.complete && img.naturalWidth > 0)).toBe(true);
}

test("people signed in by the marketplace chat about a product, and its order update reaches both as a notice with its card", async ({
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

  // The customer clicks "Contact seller" on the vase's page: a new account, straight into the
  // conversation, with the vase's card waiting above the composer.
  const customerContext = await browser.newContext();
  const customerCsp = await trackCsp(customerContext);
  const customerPage = await customerContext.newPage();
  const contact = { sub: customer, name: "Bob", with: seller, context: vase(baseURL!) };
  await customerPage.goto(`/sso?token=${token(contact)}`);
  await customerPage.waitForURL(`**/chat/@${sellerUsername}`);
  await hydrated(customerPage);
  await online(customerPage);
  await expect(customerPage.getByRole("heading", { level: 2 })).toHaveText("Ann's Ceramics");
  const waiting = customerPage.getByRole("group", { name: "Asking about: Blue vase" });
  await expect(waiting).toBeVisible();
  await expect(waiting.locator(".card-price")).toHaveText("€24.00");
  await expectPictureShown(waiting.locator("img.card-image"));
  await send(customerPage, "Is the blue vase still available?");
  const asked = messages(customerPage, "Is the blue vase still available?");
  await expect(asked).toHaveAttribute("data-state", "sent");
  await expect(asked.locator(".context-card .card-title")).toHaveText("Blue vase");
  await expect(asked.locator(".card-title")).toHaveAttribute("href", "https://shop.example/products/vase-7");
  await expect(waiting).toHaveCount(0);

  const list = sellerPage.getByRole("list", { name: "Conversation list" });
  const item = list.getByRole("listitem").filter({ hasText: "Bob" });
  await expect(item.locator(".about")).toHaveText("About: Blue vase");
  await item.getByRole("link").click();
  const received = messages(sellerPage, "Is the blue vase still available?");
  await expect(received).toBeVisible();
  await expect(received.locator(".card-title")).toHaveText("Blue vase");
  await expect(received.locator(".card-price")).toHaveText("€24.00");
  await expectPictureShown(received.locator("img.card-image"));
  await send(sellerPage, "Yes, it ships tomorrow.");
  await expect(messages(customerPage, "Yes, it ships tomorrow.")).toBeVisible();

  // The marketplace posts an order update into the conversation.
  const opened = await api.post("/api/v1/conversations", { data: { participants: [customer, seller] } });
  expect(opened.status()).toBe(200);
  const conversation = await opened.json();
  const notice = await api.post(`/api/v1/conversations/${conversation.id}/messages`, {
    data: {
      from: null,
      body: "Order #1042 has shipped.",
      context: {
        kind: "order",
        id: "1042",
        title: "Order #1042",
        url: "https://shop.example/orders/1042",
        price: { amount: "24.00", currency: "EUR" },
        status: "shipped",
      },
    },
    headers: { "Idempotency-Key": `order-1042-shipped-${conversation.id}` },
  });
  expect(notice.status()).toBe(201);
  for (const page of [sellerPage, customerPage]) {
    const shown = log(page).locator("li.notice", { hasText: "Order #1042 has shipped." });
    await expect(shown).toBeVisible();
    await expect(shown.locator(".card-title")).toHaveText("Order #1042");
    await expect(shown.locator(".card-status")).toHaveText("shipped");
    // A notice, not anyone's bubble.
    await expect(messages(page, "Order #1042 has shipped.")).toHaveCount(0);
  }
  await expect(composer(sellerPage)).toBeEditable();

  // Back on the vase's page later, the customer thinks better of it: the card is removed,
  // and stays removed after a reload.
  await customerPage.goto(`/sso?token=${token(contact)}`);
  await customerPage.waitForURL(`**/chat/@${sellerUsername}`);
  await hydrated(customerPage);
  await expect(waiting).toBeVisible();
  await waiting.getByRole("button", { name: "Remove" }).click();
  await expect(waiting).toHaveCount(0);
  await customerPage.reload();
  await hydrated(customerPage);
  await expect(messages(customerPage, "Is the blue vase still available?")).toBeVisible();
  await expect(waiting).toHaveCount(0);

  expect(sellerCsp).toEqual([]);
  expect(customerCsp).toEqual([]);
  await api.dispose();
  await sellerContext.close();
  await customerContext.close();
});
