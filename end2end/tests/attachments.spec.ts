// Issue 4: images and files in conversations, between two real browsers.
import { expect, test } from "@playwright/test";
import { readFileSync } from "node:fs";
import { PDF, png } from "../fixtures.mjs";
import { PASSWORD, composer, hydrated, messages, openConversation, signUp } from "./helpers";

test("an image and a PDF go from one browser to the other, live and in history", async ({ browser }) => {
  const cleo = await signUp(browser, "cleo", "Cleo Potter");
  const dan = await signUp(browser, "dan", "Dan Client");
  await openConversation(cleo, dan);
  await openConversation(dan, cleo);

  // The browser checks before uploading: a program is refused with a sentence naming it.
  const attach = cleo.page.getByLabel("Attach files");
  await attach.setInputFiles({ name: "invoice.exe", mimeType: "application/octet-stream", buffer: Buffer.from("MZ") });
  const drafts = cleo.page.getByRole("list", { name: "Files to send" });
  await expect(drafts.getByRole("alert")).toHaveText("invoice.exe: this file type is not allowed");
  await drafts.getByRole("button", { name: "Remove" }).click();
  await expect(drafts.locator(".draft")).toHaveCount(0);

  // Two files: each uploads (a progress bar while it does), then shows as ready.
  await attach.setInputFiles([
    { name: "parcel.png", mimeType: "image/png", buffer: png(640, 480) },
    { name: "invoice.pdf", mimeType: "application/pdf", buffer: PDF },
  ]);
  await expect(drafts.locator(".draft")).toHaveCount(2);
  await expect(drafts.locator('.draft[data-state="stored"]')).toHaveCount(2);
  await composer(cleo.page).fill("The parcel arrived like this; invoice attached.");
  await composer(cleo.page).press("Enter");
  await expect(drafts.locator(".draft")).toHaveCount(0);

  // Bob sees the message arrive live: the image as a thumbnail named by its file, the PDF
  // as a card with its name and size.
  const message = messages(dan.page, "The parcel arrived like this");
  await expect(message).toHaveCount(1);
  const thumbnail = message.getByRole("img", { name: "parcel.png" });
  await expect(thumbnail).toBeVisible();
  await expect
    .poll(() => thumbnail.evaluate((img: HTMLImageElement) => img.complete && img.naturalWidth))
    .toBeGreaterThan(0);
  expect(await thumbnail.evaluate((img: HTMLImageElement) => img.naturalWidth)).toBeLessThanOrEqual(400);
  const card = message.getByRole("link", { name: /invoice\.pdf/ });
  await expect(card).toContainText("bytes");

  // The image opens full size.
  const [full] = await Promise.all([dan.page.waitForEvent("popup"), thumbnail.click()]);
  await full.waitForLoadState();
  expect(full.url()).toMatch(/\/files\/\d+$/);
  const dimensions = await full.evaluate(() => {
    const img = document.querySelector("img");
    return img ? [img.naturalWidth, img.naturalHeight] : null;
  });
  expect(dimensions).toEqual([640, 480]);
  await full.close();

  // The PDF downloads intact.
  const [download] = await Promise.all([dan.page.waitForEvent("download"), card.click()]);
  expect(download.suggestedFilename()).toBe("invoice.pdf");
  expect(readFileSync(await download.path())).toEqual(PDF);

  // History shows the same after signing out and in again.
  await dan.page.getByRole("button", { name: "Log out" }).click();
  await dan.page.waitForURL("**/login");
  await hydrated(dan.page);
  await dan.page.getByLabel("Username").fill(dan.username);
  await dan.page.getByLabel("Password").fill(PASSWORD);
  await dan.page.getByRole("button", { name: "Log in" }).click();
  await dan.page.waitForURL("**/chat");
  await openConversation(dan, cleo);
  const again = messages(dan.page, "The parcel arrived like this");
  await expect(again.getByRole("img", { name: "parcel.png" })).toBeVisible();
  await expect(again.getByRole("link", { name: /invoice\.pdf/ })).toBeVisible();

  expect(cleo.cspViolations).toEqual([]);
  expect(dan.cspViolations).toEqual([]);
});

test("a file too large is refused before it is uploaded, and one the server refuses is not sent", async ({ browser }) => {
  const cleo = await signUp(browser, "cleo", "Cleo Potter");
  const dan = await signUp(browser, "dan", "Dan Client");
  await openConversation(cleo, dan);
  const attach = cleo.page.getByLabel("Attach files");
  const drafts = cleo.page.getByRole("list", { name: "Files to send" });

  // Over the limit (25 MB by default): said before any upload.
  await attach.setInputFiles({ name: "video.pdf", mimeType: "application/pdf", buffer: Buffer.alloc(26 * 1024 * 1024, 1) });
  await expect(drafts.getByRole("alert")).toHaveText("video.pdf is 26 MB; the limit is 25 MB");
  await drafts.getByRole("button", { name: "Remove" }).click();

  // A file that claims to be an image but is not: the server says so, and nothing is sent.
  await attach.setInputFiles({ name: "broken.png", mimeType: "image/png", buffer: png(8, 8).subarray(0, 40) });
  await expect(drafts.getByRole("alert")).toHaveText("broken.png: it is not a valid image");
  // The same bytes would be refused again: no Retry, only Remove.
  await expect(drafts.getByRole("button", { name: "Retry" })).toHaveCount(0);
  await composer(cleo.page).fill("with a broken file");
  await composer(cleo.page).press("Enter");
  await expect(cleo.page.locator(".composer .field-error")).toHaveText(
    "Remove or retry the files that could not be uploaded.",
  );
  await expect(messages(cleo.page, "with a broken file")).toHaveCount(0);
  await drafts.getByRole("button", { name: "Remove" }).click();
  await composer(cleo.page).press("Enter");
  await expect(messages(cleo.page, "with a broken file")).toHaveCount(1);
});

test("files can be dropped and pasted, an upload can be cancelled, and one the network dropped retried", async ({ browser }) => {
  const erin = await signUp(browser, "erin", "Erin Shop");
  const finn = await signUp(browser, "finn", "Finn Buyer");
  await openConversation(erin, finn);
  await openConversation(finn, erin);
  const page = erin.page;
  const drafts = page.getByRole("list", { name: "Files to send" });
  const uploads = /\/files\?/;

  // A file dropped on the conversation.
  await page.evaluate(() => {
    const data = new DataTransfer();
    data.items.add(new File(["notes from the call"], "dropped.txt", { type: "text/plain" }));
    document
      .querySelector(".conversation-view")!
      .dispatchEvent(new DragEvent("drop", { dataTransfer: data, bubbles: true, cancelable: true }));
  });
  await expect(drafts.locator('.draft[data-state="stored"]')).toHaveCount(1);

  // An image pasted into the message box.
  await page.evaluate((bytes) => {
    const data = new DataTransfer();
    data.items.add(new File([new Uint8Array(bytes)], "pasted.png", { type: "image/png" }));
    document
      .querySelector("#composer-input")!
      .dispatchEvent(new ClipboardEvent("paste", { clipboardData: data, bubbles: true, cancelable: true }));
  }, [...png(32, 32)]);
  await expect(drafts.locator('.draft[data-state="stored"]')).toHaveCount(2);

  // An upload that hangs can be cancelled; it is gone, and the message can't wait for it.
  await page.route(uploads, () => {});
  await page.getByLabel("Attach files").setInputFiles({ name: "slow.pdf", mimeType: "application/pdf", buffer: PDF });
  const slow = drafts.locator(".draft", { hasText: "slow.pdf" });
  await expect(slow).toHaveAttribute("data-state", "uploading");
  await expect(page.getByRole("button", { name: "Send" })).toBeDisabled();
  await slow.getByRole("button", { name: "Cancel" }).click();
  await expect(slow).toHaveCount(0);
  await page.unroute(uploads);

  // An upload the network drops says so, and goes through when retried.
  await page.route(uploads, (route) => route.abort("connectionreset"), { times: 1 });
  await page.getByLabel("Attach files").setInputFiles({ name: "retry.pdf", mimeType: "application/pdf", buffer: PDF });
  const retried = drafts.locator(".draft", { hasText: "retry.pdf" });
  await expect(retried.getByRole("alert")).toHaveText("retry.pdf could not be uploaded: the connection failed.");
  await retried.getByRole("button", { name: "Retry" }).click();
  await expect(retried).toHaveAttribute("data-state", "stored");

  await composer(page).fill("Three files for you");
  await composer(page).press("Enter");
  const received = messages(finn.page, "Three files for you");
  await expect(received.getByRole("img", { name: "pasted.png" })).toBeVisible();
  await expect(received.getByRole("link", { name: /dropped\.txt/ })).toBeVisible();
  await expect(received.getByRole("link", { name: /retry\.pdf/ })).toBeVisible();
  await expect(received.getByRole("link", { name: /slow\.pdf/ })).toHaveCount(0);
});
