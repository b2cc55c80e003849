// Point 8: losing the connection shows "Reconnecting…", reconnects by itself, and catches up
// on everything missed: nothing lost, nothing shown twice.
import { expect, test } from "@playwright/test";
import { hydrated, messages, online, openConversation, send, signUp } from "./helpers";

test("a user who goes offline gets what was sent meanwhile, exactly once", async ({ browser }) => {
  const ann = await signUp(browser, "ann", "Ann");
  const bob = await signUp(browser, "bob", "Bob");
  await openConversation(ann, bob);
  await openConversation(bob, ann);
  await send(ann.page, "Before the tunnel");
  await expect(messages(bob.page, "Before the tunnel")).toHaveCount(1);

  await bob.context.setOffline(true);
  await expect(bob.page.getByRole("status")).toHaveText("Reconnecting…");
  await send(ann.page, "While you were offline");
  await send(ann.page, "And one more");
  await expect(messages(ann.page, "And one more")).toHaveAttribute("data-state", "sent");

  await bob.context.setOffline(false);
  await online(bob.page);
  await expect(bob.page.getByRole("status")).toHaveCount(0);
  await expect(messages(bob.page, "While you were offline")).toHaveCount(1);
  await expect(messages(bob.page, "And one more")).toHaveCount(1);
  await expect(messages(bob.page).locator(".body")).toHaveText([
    "Before the tunnel",
    "While you were offline",
    "And one more",
  ]);

  // Live delivery works again on the new connection.
  await send(ann.page, "Welcome back");
  await expect(messages(bob.page, "Welcome back")).toHaveCount(1);
});

test("a message written while offline waits, then goes out once on reconnection", async ({ browser }) => {
  const ann = await signUp(browser, "ann", "Ann");
  const bob = await signUp(browser, "bob", "Bob");
  await openConversation(ann, bob);
  await openConversation(bob, ann);

  await ann.context.setOffline(true);
  await expect(ann.page.getByRole("status")).toHaveText("Reconnecting…");
  await send(ann.page, "Queued while offline");
  const pending = messages(ann.page, "Queued while offline");
  await expect(pending).toHaveAttribute("data-state", "sending");
  await expect(pending).toContainText("Waiting to send");

  await ann.context.setOffline(false);
  await online(ann.page);
  await expect(pending).toHaveAttribute("data-state", "sent");
  await expect(messages(ann.page, "Queued while offline")).toHaveCount(1);
  await expect(messages(bob.page, "Queued while offline")).toHaveCount(1);

  // And the server stored it once.
  await bob.page.reload();
  await online(bob.page);
  await expect(messages(bob.page, "Queued while offline")).toHaveCount(1);
});

test("the offline outbox survives a reload and sends everything once, in order", async ({ browser }) => {
  const ann = await signUp(browser, "ann", "Ann");
  const bob = await signUp(browser, "bob", "Bob");
  await openConversation(ann, bob);
  await openConversation(bob, ann);

  await ann.context.setOffline(true);
  await expect(ann.page.getByRole("status")).toHaveText("Reconnecting…");
  for (const text of ["first while offline", "second while offline", "third while offline"]) {
    await send(ann.page, text);
  }
  await expect(messages(ann.page, "while offline")).toHaveCount(3);

  // The page needs the network to reload; the live connection is kept away meanwhile, so the
  // messages can only come back from the browser's storage.
  let socketAllowed = false;
  await ann.page.routeWebSocket(/\/ws$/, (socket) => {
    if (socketAllowed) socket.connectToServer();
    else socket.close();
  });
  await ann.context.setOffline(false);
  await ann.page.reload();
  await hydrated(ann.page);
  const waiting = messages(ann.page, "while offline");
  await expect(waiting).toHaveCount(3);
  for (const state of await waiting.evaluateAll((rows) => rows.map((row) => row.getAttribute("data-state")))) {
    expect(state).toBe("sending");
  }
  await expect(waiting.first()).toContainText("Waiting to send");
  await expect(messages(bob.page, "while offline")).toHaveCount(0);

  // One more, written after the reload while still disconnected, survives another reload.
  await send(ann.page, "fourth while offline");
  await ann.page.reload();
  await hydrated(ann.page);
  await expect(messages(ann.page, "while offline")).toHaveCount(4);

  // The connection comes back: all of them go out by themselves, once each, in order.
  socketAllowed = true;
  await online(ann.page);
  const expected = [
    "first while offline",
    "second while offline",
    "third while offline",
    "fourth while offline",
  ];
  await expect(messages(bob.page, "while offline").locator(".body")).toHaveText(expected);
  await expect(messages(ann.page, "while offline").locator(".body")).toHaveText(expected);
  for (const row of await messages(ann.page, "while offline").all()) {
    await expect(row).toHaveAttribute("data-state", "sent");
  }
  await bob.page.reload();
  await online(bob.page);
  await expect(messages(bob.page, "while offline").locator(".body")).toHaveText(expected);
});

test("a tab that is online keeps another tab's unsent messages in the shared outbox", async ({ browser }) => {
  const ann = await signUp(browser, "ann", "Ann");
  const bob = await signUp(browser, "bob", "Bob");
  await openConversation(ann, bob);
  // A second tab of Ann's whose live connection can't get through.
  const cut = await ann.context.newPage();
  await cut.routeWebSocket(/\/ws$/, (socket) => socket.close());
  await cut.goto(`/chat/@${bob.username}`);
  await hydrated(cut);
  await send(cut, "from the cut-off tab");
  await expect(messages(cut, "from the cut-off tab")).toHaveAttribute("data-state", "sending");

  // The connected tab sends (and so saves its own outbox) meanwhile.
  await send(ann.page, "from the connected tab");
  await expect(messages(ann.page, "from the connected tab")).toHaveAttribute("data-state", "sent");

  // The cut-off tab reloads: its message is still there, waiting.
  await cut.reload();
  await hydrated(cut);
  await expect(messages(cut, "from the cut-off tab")).toHaveAttribute("data-state", "sending");
});

test("a tab whose session ended elsewhere goes to the log-in page when it reconnects", async ({ browser }) => {
  const ann = await signUp(browser, "ann", "Ann");
  // The same session in another window (its cookie copied). The tab goes offline first, so
  // it learns that the session ended only when it reconnects, whatever the timing.
  const elsewhere = await browser.newContext({ storageState: await ann.context.storageState() });
  const other = await elsewhere.newPage();
  await other.goto("/chat");
  await hydrated(other);
  await online(other);

  await ann.context.setOffline(true);
  await expect(ann.page.getByRole("status")).toHaveText("Reconnecting…");
  await other.getByRole("button", { name: "Log out" }).click();
  await other.waitForURL("**/login");
  await ann.context.setOffline(false);
  await ann.page.waitForURL(/\/login\?next=%2Fchat$/);
  await elsewhere.close();
});
