// Point 6: history pages in when scrolling up, without the view jumping, and is all there
// after logging out and in again.
import { expect, test } from "@playwright/test";
import { PASSWORD, hydrated, log, messages, online, openConversation, send, signUp } from "./helpers";

test("scrolling up loads older messages without moving the view", async ({ browser }) => {
  const ann = await signUp(browser, "ann", "Ann");
  const bob = await signUp(browser, "bob", "Bob");
  await openConversation(ann, bob);
  // Bob watches them arrive (so none is unread, and the conversation opens at the bottom).
  await openConversation(bob, ann);

  // 70 messages, sent over the app's own WebSocket protocol from Ann's page, for speed.
  await ann.page.evaluate(async (count) => {
    const [conversation] = await fetch("/api/conversations", { method: "POST" }).then((r) => r.json());
    const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`);
    let acked = 0;
    const done = new Promise<void>((resolve) =>
      ws.addEventListener("message", (event) => {
        const frame = JSON.parse(event.data);
        if (frame.type === "ready") {
          for (let i = 1; i <= count; i++) {
            ws.send(JSON.stringify({
              type: "send",
              conversation_id: conversation.id,
              client_msg_id: `bulk-${i}`,
              body: `Message number ${i}`,
            }));
          }
        }
        if (frame.type === "ack" && ++acked === count) resolve();
      }),
    );
    await done;
    ws.close();
  }, 70);

  await expect(messages(bob.page)).toHaveCount(70);
  await expect(bob.page).not.toHaveTitle(/^\(/);
  await bob.page.reload();
  await hydrated(bob.page);
  await online(bob.page);
  await expect(messages(bob.page)).toHaveCount(50);
  await expect(messages(bob.page).last()).toContainText("Message number 70");
  await expect(messages(bob.page).first()).toContainText("Message number 21");

  // Scroll to the top: the older page arrives and the message that was at the top stays put.
  const anchor = messages(bob.page, "Message number 21").first();
  await log(bob.page).evaluate((el) => (el.scrollTop = 0));
  await expect(messages(bob.page)).toHaveCount(70);
  await expect(messages(bob.page).first()).toContainText("Message number 1");
  const box = await anchor.boundingBox();
  const logBox = await log(bob.page).boundingBox();
  expect(box && logBox && box.y >= logBox.y).toBeTruthy();
  expect(await log(bob.page).evaluate((el) => el.scrollTop)).toBeGreaterThan(100);

  // All in order, each once.
  const bodies = await messages(bob.page).locator(".body").allTextContents();
  expect(bodies).toEqual(Array.from({ length: 70 }, (_, i) => `Message number ${i + 1}`));
});

test("history is still there after logging out and in, and in another browser", async ({ browser }) => {
  const ann = await signUp(browser, "ann", "Ann");
  const bob = await signUp(browser, "bob", "Bob");
  await openConversation(ann, bob);
  await send(ann.page, "Your parcel left today.");
  await openConversation(bob, ann);
  await send(bob.page, "Thank you!");
  await expect(messages(ann.page, "Thank you!")).toHaveCount(1);

  await ann.page.getByRole("button", { name: "Log out" }).click();
  await ann.page.waitForURL("**/login");
  await ann.page.goto(`/chat/@${bob.username}`);
  await expect(ann.page).toHaveURL(/\/login\?next=/);
  await hydrated(ann.page);
  await ann.page.getByLabel("Username").fill(ann.username);
  await ann.page.getByLabel("Password").fill(PASSWORD);
  await ann.page.getByRole("button", { name: "Log in" }).click();
  // Back where the deep link pointed.
  await ann.page.waitForURL(`**/chat/@${bob.username}`);
  await hydrated(ann.page);
  await online(ann.page);
  await expect(messages(ann.page).locator(".body")).toHaveText(["Your parcel left today.", "Thank you!"]);

  const elsewhere = await browser.newContext();
  const page = await elsewhere.newPage();
  await page.goto("/login");
  await hydrated(page);
  await page.getByLabel("Username").fill(bob.username);
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByRole("button", { name: "Log in" }).click();
  await page.waitForURL("**/chat");
  await hydrated(page);
  await page.getByRole("list", { name: "Conversation list" }).getByRole("link").first().click();
  await expect(messages(page).locator(".body")).toHaveText(["Your parcel left today.", "Thank you!"]);
});
