// Points 3, 4, 5, 7 and 9: two people find each other and chat in real time.
import { expect, test } from "@playwright/test";
import { composer, hydrated, log, messages, online, openConversation, send, signUp } from "./helpers";

test("two users chat in real time with names, times, day separators and a typing indicator", async ({ browser }) => {
  const ann = await signUp(browser, "ann", "Ann Seller");
  const bob = await signUp(browser, "bob", "Bob Buyer");

  // Bob finds Ann by her display name and opens the conversation from the results.
  await bob.page.getByLabel("Find people").fill("ann sell");
  const result = bob.page.getByRole("list", { name: "People" }).getByRole("link", { name: /Ann Seller/ });
  await result.click();
  await expect(bob.page).toHaveURL(new RegExp(`/chat/@${ann.username}$`));
  await expect(bob.page.getByLabel("Find people")).toHaveValue("");
  await online(bob.page);
  await expect(bob.page.getByRole("heading", { level: 2 })).toHaveText("Ann Seller");
  await expect(log(bob.page)).toContainText("No messages yet");
  // The innermost view names the page; leaving it names the page as before.
  await expect(bob.page).toHaveTitle("Ann Seller · Parley");
  await bob.page.goBack();
  await expect(bob.page).toHaveURL(/\/chat$/);
  await expect(bob.page).toHaveTitle("Chat · Parley");
  await bob.page.goForward();
  await expect(bob.page).toHaveTitle("Ann Seller · Parley");

  // Ann follows the marketplace's deep link to Bob.
  await openConversation(ann, bob);

  // Typing: Bob sees it while Ann types, and it clears when she sends.
  await composer(ann.page).pressSequentially("Hello Bob", { delay: 30 });
  const typing = bob.page.locator(".typing");
  await expect(typing).toHaveText("Ann Seller is typing…");
  await composer(ann.page).press("Enter");
  await expect(typing).toHaveText("");

  // The message is on both screens, once, with sender name and a machine-readable time.
  for (const page of [ann.page, bob.page]) {
    const message = messages(page, "Hello Bob");
    await expect(message).toHaveCount(1);
    await expect(message.locator(".sender")).toHaveText("Ann Seller");
    const datetime = await message.locator("time").getAttribute("datetime");
    expect(Date.now() - Date.parse(datetime ?? "")).toBeLessThan(60_000);
    await expect(message).toHaveAttribute("data-state", "sent");
  }
  await expect(log(bob.page).locator(".day-separator")).toHaveText(["Today"]);

  // Bob replies; Shift+Enter makes a new line, Enter sends.
  await composer(bob.page).fill("Hi Ann!");
  await composer(bob.page).press("Shift+Enter");
  await composer(bob.page).pressSequentially("Is the vase still for sale?");
  await expect(composer(bob.page)).toHaveValue("Hi Ann!\nIs the vase still for sale?");
  await composer(bob.page).press("Enter");
  await expect(composer(bob.page)).toHaveValue("");
  const reply = messages(ann.page, "Is the vase still for sale?");
  await expect(reply.locator(".body")).toHaveText("Hi Ann!\nIs the vase still for sale?");
  await expect(reply.locator(".sender")).toHaveText("Bob Buyer");

  // Chronological order on both sides.
  await send(ann.page, "Yes, it is.");
  for (const page of [ann.page, bob.page]) {
    await expect(messages(page).locator(".body")).toHaveText([
      "Hello Bob",
      "Hi Ann!\nIs the vase still for sale?",
      "Yes, it is.",
    ]);
  }

  // Typing then stopping: the indicator goes away by itself after about five seconds.
  await composer(bob.page).pressSequentially("Great, I'll", { delay: 20 });
  await expect(ann.page.locator(".typing")).toHaveText("Bob Buyer is typing…");
  await expect(ann.page.locator(".typing")).toHaveText("", { timeout: 9_000 });

  // Typing then leaving: the indicator goes away at once.
  await composer(bob.page).pressSequentially(" take it", { delay: 20 });
  await expect(ann.page.locator(".typing")).toHaveText("Bob Buyer is typing…");
  await bob.page.goto("/chat");
  await expect(ann.page.locator(".typing")).toHaveText("", { timeout: 3_000 });
});

test("empty and over-long messages are not sent", async ({ browser }) => {
  const ann = await signUp(browser, "ann", "Ann");
  const bob = await signUp(browser, "bob", "Bob");
  await openConversation(ann, bob);
  const send_button = ann.page.getByRole("button", { name: "Send" });

  await composer(ann.page).fill("   \n  ");
  await expect(send_button).toBeDisabled();
  await composer(ann.page).press("Enter");
  await expect(messages(ann.page)).toHaveCount(0);

  await composer(ann.page).fill("x".repeat(4001));
  await expect(ann.page.locator("#composer-error")).toHaveText(
    "Message is too long: 4001 characters, the limit is 4000.",
  );
  await expect(send_button).toBeDisabled();
  await composer(ann.page).press("Enter");
  await expect(messages(ann.page)).toHaveCount(0);

  await composer(ann.page).fill("x".repeat(4000));
  await expect(ann.page.locator("#composer-error")).toBeEmpty();
  await composer(ann.page).press("Enter");
  await expect(messages(ann.page)).toHaveCount(1);
});

test("the conversation list orders by activity, previews and counts unread messages", async ({ browser }) => {
  const seller = await signUp(browser, "seller", "Sam Seller");
  const first = await signUp(browser, "first", "First Customer");
  const second = await signUp(browser, "second", "Second Customer");
  const list = seller.page.getByRole("list", { name: "Conversation list" });

  await openConversation(first, seller);
  await send(first.page, "Do you ship abroad?");
  await expect(list.getByRole("listitem")).toHaveCount(1);
  await openConversation(second, seller);
  await send(second.page, "Is this in stock?");
  await send(second.page, "Size M please");

  await expect(list.getByRole("listitem")).toHaveCount(2);
  const items = list.getByRole("listitem");
  await expect(items.nth(0)).toContainText("Second Customer");
  await expect(items.nth(0)).toContainText("Size M please");
  await expect(items.nth(0).getByLabel("2 unread")).toBeVisible();
  await expect(items.nth(1)).toContainText("First Customer");
  await expect(items.nth(1).getByLabel("1 unread")).toBeVisible();

  // Activity moves a conversation to the top.
  await send(first.page, "Hello?");
  await expect(items.nth(0)).toContainText("First Customer");
  await expect(items.nth(0).getByLabel("2 unread")).toBeVisible();

  // Opening it reads it.
  await items.nth(0).getByRole("link").click();
  await expect(messages(seller.page)).toHaveCount(2);
  await expect(items.nth(0).locator(".badge")).toHaveCount(0);
  await seller.page.reload();
  await hydrated(seller.page);
  await expect(list.getByRole("listitem").nth(0).locator(".badge")).toHaveCount(0);
  await expect(list.getByRole("listitem").nth(1).getByLabel("2 unread")).toBeVisible();
});

test("every open tab of a user receives live messages", async ({ browser }) => {
  const ann = await signUp(browser, "ann", "Ann");
  const bob = await signUp(browser, "bob", "Bob");
  await openConversation(ann, bob);
  await openConversation(bob, ann);
  const secondTab = await bob.context.newPage();
  await secondTab.goto(`/chat/@${ann.username}`);
  await hydrated(secondTab);
  await online(secondTab);

  await send(ann.page, "One for every tab");
  await expect(messages(bob.page, "One for every tab")).toHaveCount(1);
  await expect(messages(secondTab, "One for every tab")).toHaveCount(1);

  // What Bob sends in one tab shows in his other tab too.
  await send(bob.page, "Sent from tab one");
  await expect(messages(secondTab, "Sent from tab one")).toHaveCount(1);
  await expect(messages(ann.page, "Sent from tab one")).toHaveCount(1);
});

test("on a phone-width screen one pane shows at a time", async ({ browser }) => {
  const ann = await signUp(browser, "ann", "Ann");
  const bob = await signUp(browser, "bob", "Bob");
  await ann.page.setViewportSize({ width: 390, height: 800 });
  await expect(ann.page.locator(".sidebar")).toBeVisible();
  await openConversation(ann, bob);
  await expect(ann.page.locator(".sidebar")).toBeHidden();
  await expect(log(ann.page)).toBeVisible();
  await ann.page.getByRole("link", { name: "← Conversations" }).click();
  await expect(ann.page.locator(".sidebar")).toBeVisible();
  await expect(ann.page.locator(".thread-pane")).toBeHidden();
});

test("what a user types is shown as text, never as HTML", async ({ browser }) => {
  const ann = await signUp(browser, "ann", "<b>Ann</b>");
  const bob = await signUp(browser, "bob", "Bob");
  await openConversation(ann, bob);
  await openConversation(bob, ann);
  let dialogs = 0;
  bob.page.on("dialog", async (dialog) => {
    dialogs += 1;
    await dialog.dismiss();
  });
  const payload = `<img src=x onerror="alert(1)"><script>alert(2)</script>`;
  await send(ann.page, payload);
  const message = messages(bob.page).last();
  await expect(message.locator(".body")).toHaveText(payload);
  await expect(message.locator(".sender")).toHaveText("<b>Ann</b>");
  await expect(log(bob.page).locator("img, script, b")).toHaveCount(0);
  expect(dialogs).toBe(0);
  // Had it been inserted as HTML, the policy would have blocked it and reported a violation.
  expect(bob.cspViolations).toEqual([]);

  // Web addresses become links that don't hand the page to the site they open; nothing else
  // does.
  await send(ann.page, "See https://shop.example/vase?id=3. Not javascript:alert(3)");
  const links = messages(bob.page, "See https://shop.example").getByRole("link");
  await expect(links).toHaveCount(1);
  await expect(links).toHaveAttribute("href", "https://shop.example/vase?id=3");
  await expect(links).toHaveAttribute("rel", "noopener noreferrer nofollow");
  await expect(links).toHaveText("https://shop.example/vase?id=3");
});

test("every page runs under the Content-Security-Policy without a violation", async ({ browser }) => {
  const ann = await signUp(browser, "ann", "Ann");
  const bob = await signUp(browser, "bob", "Bob");
  await openConversation(ann, bob);
  await openConversation(bob, ann);
  await send(ann.page, "Checking the policy");
  await expect(messages(bob.page, "Checking the policy")).toHaveCount(1);
  await composer(bob.page).pressSequentially("typing", { delay: 20 });
  await expect(ann.page.locator(".typing")).toHaveText("Bob is typing…");

  const response = await ann.page.goto("/chat");
  const policy = response?.headers()["content-security-policy"] ?? "";
  expect(policy).toContain("script-src 'self' 'nonce-");
  expect(policy).not.toContain("unsafe-inline");
  expect(response?.headers()["strict-transport-security"]).toBe("max-age=31536000; includeSubDomains");
  // The live connection is an encrypted WebSocket.
  expect(await ann.page.evaluate(() => location.protocol)).toBe("https:");
  await hydrated(ann.page);
  await online(ann.page);
  await ann.page.getByRole("button", { name: "Log out" }).click();
  await ann.page.waitForURL("**/login");
  await hydrated(ann.page);
  await ann.page.goto("/no/such/page");
  await hydrated(ann.page);

  expect(ann.cspViolations).toEqual([]);
  expect(bob.cspViolations).toEqual([]);
});
