// One person with more tabs than the server keeps: the oldest is paused (and says so), the
// others carry on, and a paused tab comes back when asked, pausing the next oldest instead.
import { expect, test } from "@playwright/test";
import { hydrated, messages, online, openConversation, send, signUp } from "./helpers";

test("a tab over the limit pauses the oldest, which comes back on request", async ({ browser }) => {
  const ann = await signUp(browser, "ann", "Ann");
  const bob = await signUp(browser, "bob", "Bob");
  await openConversation(bob, ann);
  await openConversation(ann, bob);
  // The server keeps 4 sockets per person here (playwright.config.ts): Ann's first page and
  // three more tabs fill them.
  const tabs = [ann.page];
  for (let i = 0; i < 3; i++) {
    const tab = await ann.context.newPage();
    await tab.goto(`/chat/@${bob.username}`);
    await hydrated(tab);
    await online(tab);
    tabs.push(tab);
  }
  await expect(ann.page.locator(".chat")).toHaveAttribute("data-connection", "online");

  // A fifth: the oldest tab is paused and says why; the newest works.
  const fifth = await ann.context.newPage();
  await fifth.goto(`/chat/@${bob.username}`);
  await hydrated(fifth);
  await online(fifth);
  const oldest = ann.page.locator(".chat");
  await expect(oldest).toHaveAttribute("data-connection", "paused");
  await expect(ann.page.getByRole("status")).toContainText("open in too many tabs");
  // It stays paused: it does not take its place back by itself.
  await ann.page.waitForTimeout(1_500);
  await expect(oldest).toHaveAttribute("data-connection", "paused");
  await send(fifth, "From the newest tab");
  await expect(messages(bob.page, "From the newest tab")).toHaveCount(1);

  // Asked to, it comes back (catching up on what it missed), and the next oldest makes way.
  await ann.page.getByRole("button", { name: "Use it here" }).click();
  await online(ann.page);
  await expect(messages(ann.page, "From the newest tab")).toHaveCount(1);
  await expect(tabs[1].locator(".chat")).toHaveAttribute("data-connection", "paused");
  for (const tab of [tabs[2], tabs[3], fifth]) {
    await expect(tab.locator(".chat")).toHaveAttribute("data-connection", "online");
  }
});
