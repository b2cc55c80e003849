// Built without `--split` (`cargo leptos build`, as every Leptos project documents it), the
// site works all the same: the pages that are lazy routes in a split bundle are ordinary ones.
// `scripts/test` runs this spec alone, against such a build (PARLEY_E2E_UNSPLIT).
import { expect, test } from "@playwright/test";
import { PASSWORD, hydrated, messages, online, openConversation, send, signUp } from "./helpers";

test("a bundle built without --split comes alive on every page", async ({ browser }) => {
  const ann = await signUp(browser, "ann", "Ann");
  const bob = await signUp(browser, "bob", "Bob");
  const errors: string[] = [];
  ann.page.on("pageerror", (error) => errors.push(String(error)));
  ann.page.on("console", (message) => {
    if (message.type() === "error") errors.push(message.text());
  });

  // Sign-up (above) and sign-in: the pages of the lazy routes.
  await ann.page.getByRole("button", { name: "Log out" }).click();
  await ann.page.waitForURL("**/login");
  await hydrated(ann.page);
  await ann.page.getByLabel("Username").fill(ann.username);
  await ann.page.getByLabel("Password").fill(PASSWORD);
  await ann.page.getByRole("button", { name: "Log in" }).click();
  await ann.page.waitForURL("**/chat");
  await online(ann.page);

  // Settings: its switch works once the page is alive.
  await ann.page.goto("/settings");
  await hydrated(ann.page);
  const receipts = ann.page.getByLabel("Read receipts");
  await expect(receipts).toBeEnabled();
  await receipts.uncheck();
  await expect(ann.page.getByText("Saved. Read receipts are off.")).toBeVisible();

  // And the chat.
  await openConversation(ann, bob);
  await openConversation(bob, ann);
  await send(ann.page, "From a bundle in one piece");
  await expect(messages(bob.page, "From a bundle in one piece")).toHaveCount(1);
  expect(errors).toEqual([]);
});
