// Every page a person can meet in authgate, visited in headless Chromium the way they meet
// them, screenshotted, and read: the provider chooser, the login form, a wrong password,
// consent, the "continue?" page of a remembered client, each error page, and the connected
// accounts page. Prints ONE JSON object:
// { pages: [{ name, status, title, heading, duplicates, buttons }] }; the Rust
// test (tests/pages.rs) asserts on it, and `--out docs/screenshots` refreshes the README's
// pictures.
//
// Usage: node pages.mjs --gateway <base URL> --client-id <public client with a loopback
//   /callback redirect> --resource <MCP URL> --denied-resource <an MCP URL policies keep
//   alice from> --password <alice's password> --out <dir>
import { createHash, randomBytes } from "node:crypto";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { callbackServer, launch } from "./chromium.mjs";

console.log = (...a) => console.error(...a);
const { values: a } = parseArgs({
  options: {
    gateway: { type: "string" },
    "client-id": { type: "string" },
    resource: { type: "string" },
    "denied-resource": { type: "string" },
    password: { type: "string" },
    out: { type: "string" },
  },
});
mkdirSync(a.out, { recursive: true });

const cb = await callbackServer();
const browser = await launch();
const context = await browser.newContext({ viewport: { width: 720, height: 760 }, deviceScaleFactor: 1 });
const page = await context.newPage();
let status = 0;
page.on("response", (res) => {
  if (res.request().isNavigationRequest() && res.request().frame() === page.mainFrame()) status = res.status();
});

function authorizeUrl({ redirect = cb.url, client = a["client-id"], resource = a.resource } = {}) {
  const verifier = randomBytes(32).toString("base64url");
  const challenge = createHash("sha256").update(verifier).digest("base64url");
  const q = new URLSearchParams({
    response_type: "code", client_id: client, redirect_uri: redirect, code_challenge: challenge,
    code_challenge_method: "S256", state: "docs", resource,
  });
  return `${a.gateway}/authorize?${q}`;
}

const pages = [];
/** Reads the page as it is now, screenshots it as `name`. */
async function record(name) {
  const text = await page.locator("main").innerText();
  const sentences = text
    .split(/(?<=[.!?])\s+|\n+/)
    .map((s) => s.trim())
    .filter((s) => s.length > 12);
  const duplicates = sentences.filter((s, i) => sentences.indexOf(s) !== i);
  // Buttons, with their width relative to the card they sit in (1.0 = full width).
  const buttons = await page.evaluate(() => {
    const main = document.querySelector("main").getBoundingClientRect();
    const inner = main.width - 56; // the card's horizontal padding
    return [...document.querySelectorAll("button")].map((b) => ({
      text: b.innerText.trim(),
      width: Math.round((b.getBoundingClientRect().width / inner) * 100) / 100,
    }));
  });
  pages.push({
    name,
    status,
    title: await page.title(),
    heading: (await page.locator("h1").innerText()).trim(),
    text,
    duplicates,
    buttons,
  });
  await page.screenshot({ path: join(a.out, `${name}.png`) });
}

async function click(locator) {
  await Promise.all([page.waitForNavigation({ waitUntil: "load" }), locator.click()]);
}

try {
  await page.goto(authorizeUrl(), { waitUntil: "load" });
  await record("chooser");
  await click(page.locator("button.provider", { hasText: "Local account" }));
  await record("login");
  await page.fill("#username", "alice");
  await page.fill("#password", "not the password");
  await click(page.locator("form button[type=submit]"));
  await record("login-wrong-password");
  await page.fill("#password", a.password);
  await click(page.locator("form button[type=submit]"));
  await record("consent");
  await click(page.locator('button[value="approve"]'));
  if (!page.url().startsWith(cb.url)) throw new Error(`approve did not reach the client: ${page.url()}`);

  // Remembered, but a loopback redirect proves nothing: one click to continue.
  await page.goto(authorizeUrl(), { waitUntil: "load" });
  await record("consent-continue");
  await click(page.locator('button[value="approve"]'));
  if (!page.url().startsWith(cb.url)) throw new Error(`continue did not reach the client: ${page.url()}`);
  // The back button and the same click again: the flow already gave its code.
  await page.goBack({ waitUntil: "load" });
  await click(page.locator('button[value="approve"]'));
  await record("error-already-complete");

  // A form whose token cookie is gone (cookies blocked, another browser): refused.
  await page.goto(authorizeUrl(), { waitUntil: "load" });
  await context.clearCookies({ name: /csrf/ });
  await click(page.locator('button[value="approve"]'));
  await record("error-form-refused");

  await page.goto(authorizeUrl({ client: "no-such-client" }), { waitUntil: "load" });
  await record("error-unknown-application");
  await page.goto(authorizeUrl({ redirect: "https://evil.example/callback" }), { waitUntil: "load" });
  await record("error-invalid-redirect");
  await page.goto(`${a.gateway}/login?flow=expired-or-changed`, { waitUntil: "load" });
  await record("error-expired-link");
  // Signed in, but the policies keep alice off this server: told so, and no code.
  await page.goto(authorizeUrl({ resource: a["denied-resource"] }), { waitUntil: "load" });
  await record("error-not-allowed");
  // Signed in: the accounts of one's own that servers here use (none connected yet).
  await page.goto(`${a.gateway}/connect/accounts`, { waitUntil: "load" });
  await record("connected-accounts");
  process.stdout.write(`${JSON.stringify({ pages })}\n`);
} catch (e) {
  await page.screenshot({ path: join(a.out, "failure.png") }).catch(() => {});
  process.stdout.write(`${JSON.stringify({ pages, error: `${e.message} at ${page.url()}` })}\n`);
  process.exitCode = 1;
} finally {
  await browser.close();
  await cb.close();
}
