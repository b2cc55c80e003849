// Issue 5, notifications: once allowed, a new message while the tab is hidden shows one
// notification per conversation, closed when the conversation is read.
import { expect, test } from "@playwright/test";
import { online, openConversation, send, signUp } from "./helpers";

test("a hidden tab notifies once per conversation, and reading closes it", async ({ browser }) => {
  const kim = await signUp(browser, "kim", "Kim Kraft");
  const lee = await signUp(browser, "lee", "Lee Buyer");

  // Lee's browser: notifications and page visibility under the test's control (headless
  // Chromium has neither a notification centre nor a way to hide a tab).
  await lee.context.addInitScript(() => {
    const w = window as any;
    w.__shown = [];
    w.__hidden = false;
    class FakeNotification {
      static permission = "default";
      static requestPermission() {
        FakeNotification.permission = "granted";
        return Promise.resolve("granted");
      }
      title: string;
      options: any;
      closed = false;
      onclick: any = null;
      constructor(title: string, options: any) {
        this.title = title;
        this.options = options;
        for (const other of w.__shown) if (other.options.tag === options.tag) other.closed = true;
        w.__shown.push(this);
      }
      close() {
        this.closed = true;
      }
    }
    w.Notification = FakeNotification;
    Object.defineProperty(Document.prototype, "hidden", { configurable: true, get: () => w.__hidden });
  });
  await openConversation(lee, kim);
  await lee.page.getByRole("button", { name: "Enable notifications" }).click();
  await expect(lee.page.getByRole("button", { name: "Enable notifications" })).toHaveCount(0);
  await openConversation(kim, lee);

  const setHidden = (hidden: boolean) =>
    lee.page.evaluate((value) => {
      (window as any).__hidden = value;
      document.dispatchEvent(new Event("visibilitychange", { bubbles: true }));
    }, hidden);
  const open = () =>
    lee.page.evaluate(() =>
      (window as any).__shown
        .filter((n: any) => !n.closed)
        .map((n: any) => [n.title, n.options.body]),
    );

  // Lee looks away; Kim writes twice: one notification, showing the latest message.
  await setHidden(true);
  await send(kim.page, "Are you still there?");
  await send(kim.page, "The offer ends tonight.");
  await expect.poll(open).toEqual([["Kim Kraft", "The offer ends tonight."]]);
  await expect(lee.page).toHaveTitle(/^\(2\) /);

  // The hidden tab loses its connection and catches up: that reads nothing and notifies nothing
  // new.
  const shownBefore = await lee.page.evaluate(() => (window as any).__shown.length);
  await lee.context.setOffline(true);
  await expect(lee.page.getByRole("status")).toHaveText("Reconnecting…");
  await lee.context.setOffline(false);
  await online(lee.page);
  await expect(lee.page).toHaveTitle(/^\(2\) /);
  expect(await open()).toEqual([["Kim Kraft", "The offer ends tonight."]]);
  expect(await lee.page.evaluate(() => (window as any).__shown.length)).toBe(shownBefore);

  // Lee comes back: the conversation is read and the notification closed.
  await setHidden(false);
  await expect.poll(open).toEqual([]);
  await expect(lee.page).not.toHaveTitle(/^\(/);

  // While Lee is looking, nothing notifies.
  await send(kim.page, "Great, see you.");
  await expect(lee.page.getByRole("log")).toContainText("Great, see you.");
  expect(await open()).toEqual([]);
});
