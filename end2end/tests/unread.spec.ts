// Issue 5, unread state: a count in the tab title, a "new messages" divider, and reading in one
// tab clears it in every tab.
import { expect, test } from "@playwright/test";
import { log, online, openConversation, send, signUp } from "./helpers";

test("unread messages show in the tab title and as a divider, and reading clears every tab", async ({ browser }) => {
  const gail = await signUp(browser, "gail", "Gail Goods");
  const hal = await signUp(browser, "hal", "Hal Home");
  await openConversation(gail, hal);
  await send(gail.page, "Hello Hal");
  await openConversation(hal, gail);
  await expect(log(hal.page)).toContainText("Hello Hal");

  // Hal goes back to the list, in two tabs; Gail writes twice more.
  await hal.page.goto("/chat");
  await online(hal.page);
  const secondTab = await hal.context.newPage();
  await secondTab.goto("/chat");
  await online(secondTab);
  await send(gail.page, "Is the lamp still available?");
  await send(gail.page, "I could pick it up today.");
  for (const page of [hal.page, secondTab]) {
    await expect(page).toHaveTitle(/^\(2\) /);
  }

  // Hal opens the conversation in one tab: the divider sits before the first unread message.
  await hal.page.getByRole("link", { name: /Gail Goods/ }).click();
  await online(hal.page);
  const divider = log(hal.page).getByRole("separator", { name: "New messages" });
  await expect(divider).toBeVisible();
  await expect(log(hal.page).locator("li.new-messages + li.message")).toContainText(
    "Is the lamp still available?",
  );
  await expect(log(hal.page).locator("li.message").first()).toContainText("Hello Hal");

  // Read here, read everywhere: neither tab counts them any more.
  for (const page of [hal.page, secondTab]) {
    await expect(page).not.toHaveTitle(/^\(/);
  }
  await expect(secondTab.locator(".unread")).toHaveCount(0);
});
