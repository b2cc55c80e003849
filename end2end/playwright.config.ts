// Playwright drives Debian's Chromium (Playwright's own browser download does not work on our
// machines) against a Parley server started for the run on a fresh SQLite database.
import { defineConfig } from "@playwright/test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";

const port = Number(process.env.PARLEY_E2E_PORT ?? 3210);
// The tests run over HTTPS with the server's self-signed development certificate, so that
// they see what production users see: Secure __Host- cookies, HSTS, and wss:// sockets.
const baseURL = `https://127.0.0.1:${port}`;
const root = resolve(__dirname, "..");
const serverBin = process.env.PARLEY_SERVER_BIN ?? join(root, "target", "debug", "server");
const siteRoot = process.env.PARLEY_SITE_ROOT ?? join(root, "target", "site");
// Made once, by the runner: its workers load this file again, and find it in the environment.
const scratch = (process.env.PARLEY_E2E_SCRATCH ??= mkdtempSync(join(tmpdir(), "parley-e2e-")));
const database = join(scratch, "parley.db");
// What the specs that act as the marketplace need: the database (for `server keys create`),
// the server binary, and the secret its sign-in tokens are signed with.
process.env.PARLEY_E2E_DATABASE_URL = `sqlite://${database}?mode=rwc`;
process.env.PARLEY_E2E_SERVER_BIN = serverBin;
// The example shop (examples/shop), built next to the server; shop.spec.ts runs it.
process.env.PARLEY_E2E_SHOP_BIN ??= join(dirname(serverBin), "shop");
process.env.PARLEY_E2E_SHOP_PORT ??= String(port + 1);
process.env.PARLEY_E2E_SSO_SECRET ??= "the marketplace's end-to-end signing secret, 32+ bytes";

// Without the networking flags Chromium keeps trying to reach Google, which this machine's
// closed network refuses.
const chromiumArgs = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

// `scripts/test` runs the suite against the split site, then `unsplit.spec.ts` alone against
// a site built without `--split` (PARLEY_E2E_UNSPLIT=1, PARLEY_SITE_ROOT naming that site).
const unsplit = process.env.PARLEY_E2E_UNSPLIT === "1";

export default defineConfig({
  testDir: "./tests",
  testMatch: unsplit ? "unsplit.spec.ts" : "*.spec.ts",
  testIgnore: unsplit ? [] : ["unsplit.spec.ts"],
  // Each test already drives two or three browsers; on two cores, one test at a time.
  workers: 1,
  timeout: 90_000,
  expect: { timeout: 10_000 },
  reporter: [["list"]],
  use: {
    baseURL,
    ignoreHTTPSErrors: true,
    trace: "retain-on-failure",
  },
  projects: [
    {
      name: "chromium",
      use: {
        browserName: "chromium",
        launchOptions: {
          executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
          args: chromiumArgs,
        },
      },
    },
  ],
  webServer: {
    command: serverBin,
    url: `${baseURL}/healthz`,
    ignoreHTTPSErrors: true,
    reuseExistingServer: false,
    timeout: 60_000,
    stdout: "pipe",
    stderr: "pipe",
    env: {
      DATABASE_URL: process.env.PARLEY_E2E_DATABASE_URL,
      PARLEY_SSO_SECRET: process.env.PARLEY_E2E_SSO_SECRET,
      PARLEY_DATA_DIR: join(scratch, "data"),
      LEPTOS_SITE_ADDR: `127.0.0.1:${port}`,
      LEPTOS_SITE_ROOT: siteRoot,
      LEPTOS_SITE_PKG_DIR: "pkg",
      RUST_LOG: "warn",
      PARLEY_TLS_SELF_SIGNED: "true",
      // The host allow-list on, as in production: the tests' own requests name 127.0.0.1.
      // `localhost` stands for another site: the marketplace's image host, whose pictures
      // cards show (marketplace.spec.ts).
      PARLEY_ALLOWED_HOSTS: "127.0.0.1,localhost",
      PARLEY_CONTEXT_IMAGE_ORIGINS: `https://localhost:${port}`,
      // Every test signs up new people, all from 127.0.0.1.
      PARLEY_REGISTRATIONS_PER_HOUR: "10000",
      // Few enough that a test can open one tab too many (tabs.spec.ts); more than any other
      // test opens for one person.
      PARLEY_SOCKETS_PER_USER: "4",
    },
  },
});
