// Makes docs/screenshot.png from the real app: two people sign up, chat, and the two windows
// are put side by side. Needs a Parley running at BASE_URL (default http://127.0.0.1:3000).
//   node end2end/screenshot.mjs
import { chromium } from "@playwright/test";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";
import { PDF, png } from "./fixtures.mjs";

const base = process.env.BASE_URL ?? "http://127.0.0.1:3000";
const out = join(dirname(fileURLToPath(import.meta.url)), "..", "docs", "screenshot.png");
const suffix = Date.now().toString(36).slice(-4);
const password = "correct horse battery";

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
});

async function person(username, displayName) {
  const context = await browser.newContext({ viewport: { width: 900, height: 600 } });
  const page = await context.newPage();
  await page.goto(`${base}/register`);
  await page.locator("body[data-hydrated=true]").waitFor();
  await page.getByLabel("Username").fill(username);
  await page.getByLabel("Display name").fill(displayName);
  await page.getByLabel("Password", { exact: true }).fill(password);
  await page.getByLabel("Confirm password").fill(password);
  await page.getByRole("button", { name: "Sign up" }).click();
  await page.waitForURL("**/chat");
  return page;
}

async function say(page, text) {
  const box = page.getByLabel("Message", { exact: true });
  await box.fill(text);
  await box.press("Enter");
  await page.waitForTimeout(400);
}

const seller = await person(`ceramics_${suffix}`, "Ann’s Ceramics");
const customer = await person(`bob_${suffix}`, "Bob Martin");
await customer.goto(`${base}/chat/@ceramics_${suffix}`);
await customer.locator(".chat[data-connection=online]").waitFor();
await seller.goto(`${base}/chat/@bob_${suffix}`);
await seller.locator(".chat[data-connection=online]").waitFor();

await say(customer, "Hi! Is the blue glazed vase still available?");
await say(seller, "Hello Bob, yes it is. It's 24 cm tall, hand-thrown.");
await say(customer, "Lovely. Could you ship it to Lyon by Friday?");
await say(seller, "I can post it tomorrow morning, tracked.\nShipping to France is €9.");

// The seller sends a photo of the vase and the invoice.
const vase = png(480, 360, (x, y) => {
  const inBody = (x - 240) ** 2 + (y - 220) ** 2 < 115 ** 2;
  const inNeck = x > 205 && x < 275 && y > 60 && y < 140;
  if (inBody || inNeck) {
    const shade = Math.max(0, 1 - Math.abs(x - 215) / 160);
    return [30 + 60 * shade, 70 + 80 * shade, 150 + 90 * shade];
  }
  return y > 320 ? [196, 170, 130] : [246, 240, 228];
});
await seller.getByLabel("Attach files").setInputFiles([
  { name: "blue-vase.png", mimeType: "image/png", buffer: vase },
  { name: "invoice-1042.pdf", mimeType: "application/pdf", buffer: PDF },
]);
await seller.locator('.draft[data-state="stored"]').nth(1).waitFor();
await say(seller, "Here it is, and the invoice.");
await customer.getByRole("img", { name: "blue-vase.png" }).waitFor();
await customer.getByLabel("Message", { exact: true }).pressSequentially("Perfect, I'll", { delay: 40 });
await seller.locator(".typing", { hasText: "typing" }).waitFor();

const left = (await seller.screenshot()).toString("base64");
const right = (await customer.screenshot()).toString("base64");
const canvas = await browser.newPage({ viewport: { width: 1820, height: 620 } });
await canvas.setContent(`<body style="margin:0;background:#d0d5dd;display:flex;gap:20px;padding:10px">
  <img src="data:image/png;base64,${left}" width="900" height="600">
  <img src="data:image/png;base64,${right}" width="900" height="600"></body>`);
await canvas.screenshot({ path: out });
await browser.close();
console.log(`wrote ${out}`);
