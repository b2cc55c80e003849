// Point 1 (registration) and point 2 (signing in and out) in a real browser.
import { expect, test } from "@playwright/test";
import { PASSWORD, hydrated, online, signUp, unique } from "./helpers";

test("registration shows each error beside its field and keeps what was typed", async ({ page, browser }) => {
  await page.goto("/register");
  await hydrated(page);
  await page.getByLabel("Username").fill("ab");
  await page.getByLabel("Display name").fill("Ann Lee");
  await page.getByLabel("Password", { exact: true }).fill("short");
  await page.getByLabel("Confirm password").fill("different");
  await page.getByRole("button", { name: "Sign up" }).click();

  await expect(page.locator("#username-error")).toHaveText("Username must be 3 to 32 characters long.");
  await expect(page.locator("#password-error")).toHaveText("Password must be at least 8 characters long.");
  await expect(page.locator("#password_confirm-error")).toHaveText("Passwords do not match.");
  await expect(page.locator("#display_name-error")).toBeEmpty();
  await expect(page.getByLabel("Username")).toHaveValue("ab");
  await expect(page.getByLabel("Display name")).toHaveValue("Ann Lee");
  await expect(page.getByLabel("Username")).toHaveAttribute("aria-invalid", "true");
  await expect(page).toHaveURL(/\/register$/);

  // A taken username, in another letter case.
  const taken = await signUp(browser, "taken", "Taken");
  await page.getByLabel("Username").fill(taken.username.toUpperCase());
  await page.getByLabel("Password", { exact: true }).fill(PASSWORD);
  await page.getByLabel("Confirm password").fill(PASSWORD);
  await page.getByRole("button", { name: "Sign up" }).click();
  await expect(page.locator("#username-error")).toHaveText("This username is already taken.");
  await expect(page.locator("#password_confirm-error")).toBeEmpty();

  // Fixed: the account is created and the user lands in the chat.
  await page.getByLabel("Username").fill(unique("ann"));
  await page.getByRole("button", { name: "Sign up" }).click();
  await page.waitForURL("**/chat");
  await hydrated(page);
  await expect(page.locator(".sidebar .me")).toHaveText("Ann Lee");
});

test("a wrong password and an unknown user get the same message; logging out ends the session", async ({ browser }) => {
  const ann = await signUp(browser, "ann", "Ann");
  await ann.page.getByRole("button", { name: "Log out" }).click();
  await ann.page.waitForURL("**/login");
  await hydrated(ann.page);

  // Signed out for real: the chat sends us back to the log-in page.
  await ann.page.goto("/chat");
  await expect(ann.page).toHaveURL(/\/login\?next=%2Fchat$/);
  await hydrated(ann.page);

  const page = ann.page;
  await page.getByLabel("Username").fill(ann.username);
  await page.getByLabel("Password").fill("not the password");
  await page.getByRole("button", { name: "Log in" }).click();
  const alert = page.locator(".form-error");
  await expect(alert).toHaveText("Wrong username or password.");

  await page.getByLabel("Username").fill(unique("nobody"));
  await page.getByRole("button", { name: "Log in" }).click();
  await expect(alert).toHaveText("Wrong username or password.");

  await page.getByLabel("Username").fill(ann.username);
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByRole("button", { name: "Log in" }).click();
  await page.waitForURL("**/chat");
  await hydrated(page);
  await online(page);

  // The session cookie is not readable from scripts, and only travels over HTTPS.
  const cookies = await page.evaluate(() => document.cookie);
  expect(cookies).not.toContain("parley_session");
  const stored = await ann.context.cookies();
  const session = stored.find((c) => c.name === "__Host-parley_session");
  expect(session?.httpOnly).toBe(true);
  expect(session?.secure).toBe(true);
  expect(session?.sameSite).toBe("Lax");
});

test("the sign-in forms work before the WASM has loaded", async ({ browser }) => {
  const context = await browser.newContext({ javaScriptEnabled: false });
  const page = await context.newPage();
  const username = unique("nojs");
  await page.goto("/register");
  // The title is in the page the server sends.
  await expect(page).toHaveTitle("Sign up · Parley");
  await page.getByLabel("Username").fill(username);
  await page.getByLabel("Display name").fill("No Script");
  await page.getByLabel("Password", { exact: true }).fill(PASSWORD);
  await page.getByLabel("Confirm password").fill(PASSWORD);
  await page.getByRole("button", { name: "Sign up" }).click();
  // The plain form post signs in and the server sends the browser on to the chat.
  await expect(page).toHaveURL(/\/chat$/);
  await context.close();

  // A failed plain form post lands back on the form, with the error, not on an error document.
  // (A new browser: clearing the cookies would race the signed-in page's last responses, each
  // of which renews the session cookie.)
  const signedOut = await browser.newContext({ javaScriptEnabled: false });
  const loginPage = await signedOut.newPage();
  await loginPage.goto("/login");
  await loginPage.getByLabel("Username").fill(username);
  await loginPage.getByLabel("Password").fill("not the password");
  await loginPage.getByRole("button", { name: "Log in" }).click();
  await expect(loginPage).toHaveURL(/\/login\?/);
  await expect(loginPage.locator(".form-error")).toHaveText("Wrong username or password.");
  await signedOut.close();
});

test("the chat page loads without the other pages' code, which arrives when one is opened", async ({ browser }) => {
  const ann = await signUp(browser, "ann", "Ann");
  const page = await ann.context.newPage();
  const requested: string[] = [];
  page.on("request", (request) => requested.push(new URL(request.url()).pathname));
  await page.goto("/chat");
  await hydrated(page);
  await online(page);
  // The sign-in, sign-up and settings pages are lazy routes, split out of the main bundle.
  expect(requested.filter((path) => path.includes("/split___"))).toEqual([]);

  await expect(page).toHaveTitle("Chat · Parley");
  await page.getByRole("link", { name: "Settings" }).click();
  await page.waitForURL("**/settings");
  await expect(page).toHaveTitle("Settings · Parley");
  // The settings page (a page load of its own) fetched its piece, and hydrated with it.
  const toggle = page.getByLabel("Read receipts");
  await expect(toggle).toBeChecked();
  await toggle.uncheck();
  await expect(page.getByRole("status")).toHaveText("Saved. Read receipts are off.");
  expect(requested.filter((path) => path.includes("/split___settings_route"))).toHaveLength(1);
});

test("changing the password signs every other device out", async ({ browser }) => {
  const ann = await signUp(browser, "ann", "Ann");
  // Ann is also signed in on her phone, with the chat open.
  const phone = await browser.newContext();
  const phonePage = await phone.newPage();
  await phonePage.goto("/login?next=%2Fchat");
  await hydrated(phonePage);
  await phonePage.getByLabel("Username").fill(ann.username);
  await phonePage.getByLabel("Password").fill(PASSWORD);
  await phonePage.getByRole("button", { name: "Log in" }).click();
  await phonePage.waitForURL("**/chat");
  await online(phonePage);

  await ann.page.getByRole("link", { name: "Settings" }).click();
  await ann.page.waitForURL("**/settings");
  await hydrated(ann.page);
  const newPassword = "a much better passphrase";
  await ann.page.getByLabel("Current password").fill("not my password");
  await ann.page.getByLabel("New password", { exact: true }).fill("password1");
  await ann.page.getByLabel("Confirm new password").fill("password1");
  await ann.page.getByRole("button", { name: "Change password" }).click();
  await expect(ann.page.locator("#current_password-error")).toHaveText("Your current password is not this one.");
  await expect(ann.page.locator("#new_password-error")).toContainText("too common");

  await ann.page.getByLabel("Current password").fill(PASSWORD);
  await ann.page.getByLabel("New password", { exact: true }).fill(newPassword);
  await ann.page.getByLabel("Confirm new password").fill(newPassword);
  await ann.page.getByRole("button", { name: "Change password" }).click();
  await expect(ann.page.getByRole("status")).toHaveText(
    "Your password has been changed. Every other device was signed out.",
  );
  await expect(ann.page.getByLabel("Current password")).toHaveValue("");

  // The phone's connection is closed and it is sent to sign in again.
  await phonePage.waitForURL(/\/login\?next=%2Fchat$/);
  // This browser is still signed in.
  await ann.page.goto("/chat");
  await online(ann.page);
  await phone.close();
});
