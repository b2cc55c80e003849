// Issue 5, presence: the other person shows as online while any tab of theirs is open, then
// as "last seen …".
import { expect, test } from "@playwright/test";
import { openConversation, signUp } from "./helpers";

test("the other person shows as online, then when they were last seen", async ({ browser }) => {
  const ivy = await signUp(browser, "ivy", "Ivy Vintage");
  const jon = await signUp(browser, "jon", "Jon Collector");
  await openConversation(ivy, jon);
  const presence = ivy.page.locator(".thread-header .presence");
  await expect(presence).toHaveText("online");

  // Jon closes his browser: Ivy sees it at once, with the time.
  await jon.context.close();
  await expect(presence).toHaveText(/^last seen today at \d\d:\d\d$/);

  // And it is still known after a reload.
  await ivy.page.reload();
  await expect(presence).toHaveText(/^last seen today at \d\d:\d\d$/);
});
