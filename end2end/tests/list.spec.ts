// A seller with more conversations than one page of the list: the list loads more as it
// scrolls, until every conversation is there, once.
import { expect, test } from "@playwright/test";
import { PASSWORD, hydrated, online, signUp, unique } from "./helpers";

test("a long conversation list loads more as it scrolls", async ({ browser, playwright, baseURL }) => {
  const seller = await signUp(browser, "seller", "Seller");
  // 205 customers, signed up through the API, each of whom the seller has a conversation with.
  const api = await playwright.request.newContext({ baseURL, ignoreHTTPSErrors: true });
  const customers: string[] = [];
  for (let batch = 0; batch < 41; batch++) {
    const names = Array.from({ length: 5 }, () => unique("cust"));
    await Promise.all(
      names.map(async (username) => {
        const registered = await api.post("/api/register", {
          headers: { origin: baseURL! },
          form: { username, display_name: `Customer ${username}`, password: PASSWORD, password_confirm: PASSWORD },
          // Each registration signs this context in; only the accounts matter here.
        });
        expect(registered.status()).toBe(200);
      }),
    );
    customers.push(...names);
  }
  const request = seller.context.request;
  for (const username of customers) {
    const opened = await request.post("/api/open_conversation", {
      headers: { origin: baseURL! },
      form: { username },
    });
    expect(opened.status()).toBe(200);
  }
  await api.dispose();

  await seller.page.goto("/chat");
  await hydrated(seller.page);
  await online(seller.page);
  const list = seller.page.getByRole("list", { name: "Conversation list" });
  const rows = list.getByRole("listitem");
  await expect(rows).toHaveCount(200);
  // The oldest conversation is on the second page: scrolling to the bottom brings it.
  await list.evaluate((element) => element.scrollTo(0, element.scrollHeight));
  await expect(rows).toHaveCount(205);
  await expect(list.getByText(`Customer ${customers[0]}`, { exact: true })).toHaveCount(1);
  // Every conversation once.
  const names = await list.locator(".name").allTextContents();
  expect(new Set(names).size).toBe(205);
});
