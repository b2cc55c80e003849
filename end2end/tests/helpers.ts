// Shared steps for the end-to-end specs: people with their own browser context (their own
// cookies, like two different computers), signing up, and chatting through the real UI.
import { Browser, BrowserContext, Page, expect } from "@playwright/test";

export const PASSWORD = "correct horse battery";

/** A person using Parley in a browser of their own. */
export interface Person {
  context: BrowserContext;
  page: Page;
  username: string;
  displayName: string;
  /** Content-Security-Policy violations seen in this person's pages so far. */
  cspViolations: string[];
}

/**
 * Records every Content-Security-Policy violation in the context's pages: the browser's
 * `securitypolicyviolation` events and its console reports.
 */
export async function trackCsp(context: BrowserContext): Promise<string[]> {
  const violations: string[] = [];
  await context.exposeFunction("__reportCsp", (text: string) => violations.push(text));
  await context.addInitScript(() =>
    document.addEventListener("securitypolicyviolation", (event) =>
      (window as any).__reportCsp(`${event.violatedDirective} ${event.blockedURI}`),
    ),
  );
  context.on("console", (message) => {
    if (message.text().includes("Content Security Policy")) violations.push(message.text());
  });
  return violations;
}

let counter = 0;

/** A username nobody has used in this run: `ann` becomes `ann_k3x9a1`. */
export function unique(base: string): string {
  counter += 1;
  return `${base}_${Date.now().toString(36).slice(-5)}${counter}`;
}

/** Waits until the WASM has taken over the server-rendered page. */
export async function hydrated(page: Page): Promise<void> {
  await page.locator("body[data-hydrated=true]").waitFor();
}

/** Waits until the chat page's live connection is up. */
export async function online(page: Page): Promise<void> {
  await expect(page.locator(".chat")).toHaveAttribute("data-connection", "online");
}

/** Opens a new browser context and signs a new person up through the registration form. */
export async function signUp(browser: Browser, base: string, displayName: string): Promise<Person> {
  const context = await browser.newContext();
  const cspViolations = await trackCsp(context);
  const page = await context.newPage();
  const username = unique(base);
  await page.goto("/register");
  await hydrated(page);
  await page.getByLabel("Username").fill(username);
  await page.getByLabel("Display name").fill(displayName);
  await page.getByLabel("Password", { exact: true }).fill(PASSWORD);
  await page.getByLabel("Confirm password").fill(PASSWORD);
  await page.getByRole("button", { name: "Sign up" }).click();
  await page.waitForURL("**/chat");
  await hydrated(page);
  await online(page);
  return { context, page, username, displayName, cspViolations };
}

/** Opens the conversation with `other` by its deep link and waits until it is live. */
export async function openConversation(person: Person, other: Person): Promise<void> {
  await person.page.goto(`/chat/@${other.username}`);
  await hydrated(person.page);
  await online(person.page);
  await expect(person.page.getByRole("heading", { level: 2 })).toHaveText(other.displayName);
}

/** The composer. */
export function composer(page: Page) {
  return page.getByLabel("Message", { exact: true });
}

/** Types a message and presses Enter. */
export async function send(page: Page, text: string): Promise<void> {
  await composer(page).fill(text);
  await composer(page).press("Enter");
}

/** The message list. */
export function log(page: Page) {
  return page.getByRole("log");
}

/** Every message in the list whose text contains `text`. */
export function messages(page: Page, text?: string) {
  const all = log(page).locator("li.message");
  return text === undefined ? all : all.filter({ hasText: text });
}
