// Issue 5, message states: sent → delivered → seen, where "seen" means the message was on the
// recipient's screen; and read receipts switched off in settings, which hides them both ways.
import { expect, test } from "@playwright/test";
import { log, messages, online, openConversation, send, signUp } from "./helpers";

/** The receipt on one's own message containing `text`. */
function receipt(page: import("@playwright/test").Page, text: string) {
  return messages(page, text).locator(".receipt");
}

test("a message is delivered at once and seen only once it is scrolled into view", async ({ browser }) => {
  const ivy = await signUp(browser, "ivy", "Ivy Interiors");
  const jay = await signUp(browser, "jay", "Jay Jones");
  // Jay has Parley open on his conversation list: a message reaches his device, unseen.
  await openConversation(ivy, jay);
  await send(ivy.page, "Hello Jay");
  await expect(receipt(ivy.page, "Hello Jay")).toHaveAttribute("data-receipt", "delivered");
  await expect(receipt(ivy.page, "Hello Jay")).toHaveAttribute("title", "Delivered");

  // Enough messages to fill more than Jay's (small) window.
  for (let i = 1; i <= 8; i++) {
    await send(ivy.page, `Item ${i}:\nsize M\ncolour blue\nin stock`);
  }
  await expect(receipt(ivy.page, "Item 8")).toHaveAttribute("data-receipt", "delivered");
  await jay.page.setViewportSize({ width: 900, height: 480 });
  await openConversation(jay, ivy);
  // Opened at the first unread message: what is on screen is seen, what is below is not.
  await expect(messages(jay.page, "Hello Jay")).toBeInViewport();
  await expect(receipt(ivy.page, "Hello Jay")).toHaveAttribute("data-receipt", "seen");
  await expect(messages(jay.page, "Item 8")).not.toBeInViewport();
  await expect(receipt(ivy.page, "Item 8")).toHaveAttribute("data-receipt", "delivered");
  await jay.page.waitForTimeout(1000);
  await expect(receipt(ivy.page, "Item 8")).toHaveAttribute("data-receipt", "delivered");
  await expect(jay.page).toHaveTitle(/^\(\d+\) /);
  await log(jay.page).evaluate((el) => (el.scrollTop = el.scrollHeight));
  await expect(receipt(ivy.page, "Item 8")).toHaveAttribute("data-receipt", "seen");
  await expect(jay.page).not.toHaveTitle(/^\(/);

  // Jay scrolls up to the first messages; a new one arrives below, out of view.
  await log(jay.page).evaluate((el) => (el.scrollTop = 0));
  await expect(messages(jay.page, "Hello Jay")).toBeInViewport();
  await send(ivy.page, "Are you still there?");
  await expect(receipt(ivy.page, "Are you still there?")).toHaveAttribute("data-receipt", "delivered");
  await expect(jay.page).toHaveTitle(/^\(1\) /);
  await jay.page.waitForTimeout(1500);
  await expect(receipt(ivy.page, "Are you still there?")).toHaveAttribute("data-receipt", "delivered");

  // Only when Jay scrolls down to it is it seen, on both sides.
  await log(jay.page).evaluate((el) => (el.scrollTop = el.scrollHeight));
  await expect(receipt(ivy.page, "Are you still there?")).toHaveAttribute("data-receipt", "seen");
  await expect(jay.page).not.toHaveTitle(/^\(/);
  // Receipts are for one's own messages: none on Jay's screen.
  await expect(messages(jay.page).locator(".receipt")).toHaveCount(0);
});

test("with read receipts off, neither side sees what the other has seen", async ({ browser }) => {
  const kim = await signUp(browser, "kim", "Kim Kettles");
  const lee = await signUp(browser, "lee", "Lee Lights");
  const settings = await lee.context.newPage();
  await settings.goto("/settings");
  const toggle = settings.getByLabel("Read receipts");
  await expect(toggle).toBeChecked();
  await toggle.uncheck();
  await expect(settings.getByRole("status")).toHaveText("Saved. Read receipts are off.");
  await settings.reload();
  await expect(settings.getByLabel("Read receipts")).not.toBeChecked();

  await openConversation(kim, lee);
  await openConversation(lee, kim);
  await send(kim.page, "Hi Lee, is the lamp available?");
  await expect(messages(lee.page, "is the lamp available")).toBeInViewport();
  await send(lee.page, "Yes it is");
  await expect(messages(kim.page, "Yes it is")).toBeInViewport();
  // Both messages were on screen, yet each sender only learns that they were delivered.
  await expect(receipt(kim.page, "is the lamp available")).toHaveAttribute("data-receipt", "delivered");
  await expect(receipt(lee.page, "Yes it is")).toHaveAttribute("data-receipt", "delivered");
  await kim.page.waitForTimeout(1000);
  await expect(receipt(kim.page, "is the lamp available")).toHaveAttribute("data-receipt", "delivered");
  await expect(receipt(lee.page, "Yes it is")).toHaveAttribute("data-receipt", "delivered");

  // Switched back on: Lee's open tab learns at once how far Kim has read, and Kim sees
  // Lee's on her next visit.
  await settings.getByLabel("Read receipts").check();
  await expect(settings.getByRole("status")).toHaveText("Saved. Read receipts are on.");
  await expect(receipt(lee.page, "Yes it is")).toHaveAttribute("data-receipt", "seen");
  await kim.page.reload();
  await online(kim.page);
  await expect(receipt(kim.page, "is the lamp available")).toHaveAttribute("data-receipt", "seen");
});
