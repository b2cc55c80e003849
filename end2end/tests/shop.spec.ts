// Issue 19's story, through the example shop (examples/shop) as a marketplace runs it: its key
// and webhook endpoint made with the server binary, a customer who clicks "Contact seller" on a
// product page and lands in Parley with the product's card waiting, a seller signed in through
// the shop who sees it live, the shop's receiver holding a correctly signed message.created,
// and an order update posted by the shop through the server API, live in both browsers.
import { ChildProcess, execFileSync, spawn } from "node:child_process";
import { expect, Page, test } from "@playwright/test";
import { hydrated, log, messages, online, send, trackCsp, unique } from "./helpers";

const shopPort = Number(process.env.PARLEY_E2E_SHOP_PORT);
const shopURL = `http://127.0.0.1:${shopPort}`;
let shop: ChildProcess | undefined;

/** Runs the server binary's admin commands on the test database; answers the last line. */
function admin(...args: string[]): string {
  const output = execFileSync(process.env.PARLEY_E2E_SERVER_BIN!, args, {
    env: { ...process.env, DATABASE_URL: process.env.PARLEY_E2E_DATABASE_URL },
  }).toString();
  return output.trim().split("\n").pop()!;
}

test.beforeAll(async ({ baseURL }) => {
  const key = admin("keys", "create", "--name", unique("demo-shop"));
  const secret = admin("webhooks", "add", "--url", `${shopURL}/webhooks/parley`, "--events", "message.created");
  shop = spawn(process.env.PARLEY_E2E_SHOP_BIN!, [], {
    env: {
      ...process.env,
      PARLEY_URL: baseURL,
      PARLEY_API_KEY: key,
      PARLEY_SSO_SECRET: process.env.PARLEY_E2E_SSO_SECRET,
      SHOP_WEBHOOK_SECRET: secret,
      SHOP_ADDR: `127.0.0.1:${shopPort}`,
      SHOP_ACCEPT_INVALID_CERTS: "true",
    },
    stdio: ["ignore", "inherit", "inherit"],
  });
  await expect
    .poll(async () => fetch(shopURL).then((r) => r.status, () => 0), { timeout: 30_000 })
    .toBe(200);
});

test.afterAll(() => {
  shop?.kill();
});

/** Signs in at the shop as the person whose button says `name`. */
async function signInAtShop(page: Page, name: string) {
  await page.goto(`${shopURL}/`);
  await page.getByRole("button", { name, exact: true }).click();
  await expect(page.locator(".who")).toHaveText(`Signed in as ${name}`);
}

test("a customer contacts a seller from a product page, and the shop hears and answers", async ({ browser }) => {
  // The seller opens their inbox from the shop.
  const sellerContext = await browser.newContext({ ignoreHTTPSErrors: true });
  const sellerCsp = await trackCsp(sellerContext);
  const sellerShop = await sellerContext.newPage();
  await signInAtShop(sellerShop, "Ann's Ceramics");
  const inbox = await sellerContext.newPage();
  await inbox.goto(`${shopURL}/seller`);
  await inbox.getByRole("button", { name: "Open your inbox" }).click();
  await inbox.waitForURL("**/chat");
  await hydrated(inbox);
  await online(inbox);

  // The customer asks about the vase.
  const customerContext = await browser.newContext({ ignoreHTTPSErrors: true });
  const customerCsp = await trackCsp(customerContext);
  const customer = await customerContext.newPage();
  await signInAtShop(customer, "Bob");
  await customer.goto(`${shopURL}/products/vase-7`);
  await customer.getByRole("button", { name: "Contact seller" }).click();
  await customer.waitForURL(/\/chat\/@ann/);
  await hydrated(customer);
  await online(customer);
  await expect(customer.getByRole("heading", { level: 2 })).toHaveText("Ann's Ceramics");
  const waiting = customer.getByRole("group", { name: "Asking about: Blue glazed vase" });
  await expect(waiting).toBeVisible();
  const question = `Does it hold water? ${unique("q")}`;
  await send(customer, question);
  await expect(messages(customer, question)).toHaveAttribute("data-state", "sent");
  await expect(waiting).toHaveCount(0);

  // The seller sees it live, with the card.
  const item = inbox.getByRole("list", { name: "Conversation list" }).getByRole("listitem").filter({ hasText: "Bob" });
  await expect(item.locator(".about")).toHaveText("About: Blue glazed vase");
  await item.getByRole("link").click();
  const received = messages(inbox, question);
  await expect(received).toBeVisible();
  await expect(received.locator(".card-title")).toHaveText("Blue glazed vase");
  await expect(received.locator(".card-title")).toHaveAttribute("href", `${shopURL}/products/vase-7`);

  // The shop's receiver got message.created, with a signature it could verify (it keeps
  // nothing else).
  await expect
    .poll(async () => {
      const events = await (await fetch(`${shopURL}/webhooks/parley`)).json();
      return events.some(
        (e: any) => e.event_type === "message.created" && e.event.data.message.body === question,
      );
    })
    .toBe(true);
  const events = await (await fetch(`${shopURL}/webhooks/parley`)).json();
  const created = events.find((e: any) => e.event.data.message?.body === question);
  expect(created.event.data.message.context.title).toBe("Blue glazed vase");
  expect(created.event.data.message.from).toBe("c-bob");

  // The seller ships the order from the shop: both browsers show the update live.
  await sellerShop.goto(`${shopURL}/seller`);
  await sellerShop.getByRole("button", { name: "Mark as shipped" }).click();
  await sellerShop.waitForURL(`${shopURL}/seller`);
  for (const page of [inbox, customer]) {
    const notice = log(page).locator("li.notice", { hasText: "Order #1042 has shipped." });
    await expect(notice).toBeVisible();
    await expect(notice.locator(".card-status")).toHaveText("shipped");
  }
  expect(sellerCsp).toEqual([]);
  expect(customerCsp).toEqual([]);
  await sellerContext.close();
  await customerContext.close();
});
