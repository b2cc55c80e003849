// Issue 4: images and files in conversations, between two real browsers.
import { expect, test } from "@playwright/test";
import { deflateSync } from "node:zlib";
import { readFileSync } from "node:fs";
import { PASSWORD, composer, hydrated, messages, openConversation, signUp } from "./helpers";

/** A real PNG of the given size: a colour gradient, so that it decodes into something. */
function png(width: number, height: number): Buffer {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc32 = (data: Buffer) => {
    let c = 0xffffffff;
    for (const byte of data) c = crcTable[(c ^ byte) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type: string, data: Buffer) => {
    const length = Buffer.alloc(4);
    length.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type, "ascii"), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(body));
    return Buffer.concat([length, body, crc]);
  };
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header.set([8, 2, 0, 0, 0], 8);
  const rows = [];
  for (let y = 0; y < height; y++) {
    const row = Buffer.alloc(1 + width * 3);
    for (let x = 0; x < width; x++) row.set([(x * 4) % 256, (y * 5) % 256, 160], 1 + x * 3);
    rows.push(row);
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", header),
    chunk("IDAT", deflateSync(Buffer.concat(rows))),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}

const PDF = Buffer.from(
  "%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n" +
    "2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n",
);

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

test("a file too large for the server is refused before it is uploaded, and a failed upload can be retried", async ({ browser }) => {
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
  await expect(drafts.getByRole("button", { name: "Retry" })).toBeVisible();
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
