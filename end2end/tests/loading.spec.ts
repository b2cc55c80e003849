// The page works from the moment it shows: what a person types (or pastes) while the page is
// still loading its WASM is kept, caret and all, when the page comes alive.
import { CDPSession, Page, expect, test } from "@playwright/test";
import { composer, hydrated, messages, online, openConversation, signUp } from "./helpers";

/** A slow network: every request waits, and the bundle trickles in. */
async function throttle(page: Page): Promise<CDPSession> {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send("Network.enable");
  await cdp.send("Network.emulateNetworkConditions", {
    offline: false,
    latency: 400,
    downloadThroughput: 400 * 1024,
    uploadThroughput: 400 * 1024,
  });
  return cdp;
}

async function isHydrated(page: Page): Promise<boolean> {
  return (await page.locator("body[data-hydrated=true]").count()) > 0;
}

test("text typed and pasted before the page comes alive is kept, with the caret", async ({ browser }) => {
  const ann = await signUp(browser, "ann", "Ann");
  const bob = await signUp(browser, "bob", "Bob");
  await openConversation(bob, ann);
  const cdp = await throttle(ann.page);

  // Typed at the first moment the composer exists, then the caret moved back five places.
  await ann.page.goto(`/chat/@${bob.username}`, { waitUntil: "commit" });
  const box = composer(ann.page);
  await box.waitFor();
  await box.pressSequentially("hello there");
  for (let i = 0; i < 5; i++) await box.press("ArrowLeft");
  expect(await isHydrated(ann.page), "the typing happened before the page came alive").toBe(false);

  await hydrated(ann.page);
  await online(ann.page);
  await expect(box).toHaveValue("hello there");
  expect(await box.evaluate((area: HTMLTextAreaElement) => area.selectionStart)).toBe(6);
  // Typing goes on where the caret was, and the message goes out as written.
  await box.pressSequentially("my ");
  await expect(box).toHaveValue("hello my there");
  await box.press("Enter");
  await expect(messages(bob.page, "hello my there")).toHaveCount(1);
  await expect(box).toHaveValue("");

  // Pasted before the page came alive: kept whole.
  await ann.page.goto(`/chat/@${bob.username}`, { waitUntil: "commit" });
  await box.waitFor();
  await box.focus();
  await ann.page.keyboard.insertText("Is the blue vase still for sale?");
  expect(await isHydrated(ann.page)).toBe(false);
  await hydrated(ann.page);
  await online(ann.page);
  await expect(box).toHaveValue("Is the blue vase still for sale?");
  await box.press("Enter");
  await expect(messages(bob.page, "Is the blue vase still for sale?")).toHaveCount(1);

  // A long text pasted early: the page still comes alive, and counts it.
  await ann.page.goto(`/chat/@${bob.username}`, { waitUntil: "commit" });
  await box.waitFor();
  await box.focus();
  const long = "x".repeat(3_600);
  await ann.page.keyboard.insertText(long);
  expect(await isHydrated(ann.page)).toBe(false);
  await hydrated(ann.page);
  await online(ann.page);
  await expect(box).toHaveValue(long);
  await expect(ann.page.locator(".counter")).toHaveText("3600 / 4000");
  await box.fill("");

  // The people search too: typed early, searched once the page is alive.
  await ann.page.goto("/chat", { waitUntil: "commit" });
  const search = ann.page.getByLabel("Find people");
  await search.waitFor();
  await search.pressSequentially(bob.username);
  expect(await isHydrated(ann.page)).toBe(false);
  await hydrated(ann.page);
  await expect(search).toHaveValue(bob.username);
  await expect(
    ann.page.getByRole("list", { name: "People" }).getByRole("link", { name: new RegExp(bob.username) }),
  ).toBeVisible();
  await cdp.detach();
});
