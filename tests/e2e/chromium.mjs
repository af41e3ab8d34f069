// A person at a real browser: headless Chromium (Debian's `chromium`, driven with
// playwright-core over the DevTools protocol) signs in through authgate's pages and an
// upstream IdP's pages by reading each page and clicking its real buttons, the way a user
// would. Forms are posted by the browser itself, so its Origin, Referer, cookie and
// SameSite behaviour is what authgate sees.
//
//   import { signIn, callbackServer } from "./chromium.mjs";
//   const cb = await callbackServer();                 // a loopback redirect URI that answers
//   const { url, trail } = await signIn(authorizationUrl, {
//     stopAt: cb.url,                                 // done once a page under this loads
//     fill: { username: "alice", password: "pw" },    // input name -> value
//     shots: "/tmp/shots",                            // optional: a PNG per page
//   });
//
// On each page, in order: a page with a password field gets the `fill` values typed into
// the inputs it has and its submit button clicked (authgate's login form, oidc-provider's);
// authgate's provider chooser gets the button named by `fill.__provider` (text, or part of
// its form's action) clicked; a page with decision buttons gets `fill.__button` (default:
// approve) clicked; another page with exactly one form gets its submit button clicked
// (oidc-provider's consent). A page answered with status >= 400 ends the walk with an Error
// carrying the page's text, as does anything else, or more than 20 pages.
import { createServer } from "node:http";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const MAX_PAGES = 20;

export function chromiumPath() {
  return process.env.CHROMIUM ?? "/usr/bin/chromium";
}

/** Headless Chromium with the flags this closed network needs (no background fetches). */
export async function launch() {
  return chromium.launch({
    executablePath: chromiumPath(),
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-dev-shm-usage",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      // A test certificate's key to trust (tests/fixtures/tls/*.spki), and only that one:
      // the browser still refuses any other certificate it cannot verify.
      ...(process.env.CHROMIUM_TRUST_SPKI
        ? [`--ignore-certificate-errors-spki-list=${process.env.CHROMIUM_TRUST_SPKI}`]
        : []),
    ],
  });
}

/** A loopback HTTP server standing in for an MCP client's redirect URI. */
export async function callbackServer(path = "/callback") {
  const server = createServer((req, res) => {
    res.writeHead(200, { "content-type": "text/html" });
    res.end("<!doctype html><title>Signed in</title><p>You can close this window.</p>");
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}${path}`,
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

class SignInError extends Error {
  constructor(message, trail) {
    super(`${message}\ntrail: ${trail.map((t) => `${t.status} ${t.url}`).join(" -> ")}`);
    this.trail = trail;
  }
}

const stripQuery = (u) => u.split("?")[0];

/**
 * Walks from `startUrl` until a page under `stopAt` has loaded. Returns its full URL, the
 * trail of pages seen ({ url (no query), status, title, action }) and every top-level
 * request the browser made on the way, redirects included ({ method, url, status }).
 */
export async function signIn(startUrl, { stopAt, fill = {}, shots, log, browser } = {}) {
  if (!stopAt) throw new Error("signIn: stopAt is required");
  const trace = log ? (line) => console.error(line) : () => {};
  const own = !browser;
  browser ??= await launch();
  const context = await browser.newContext();
  const page = await context.newPage();
  const trail = [];
  const requests = [];
  let lastStatus = 0;
  page.on("response", (res) => {
    const req = res.request();
    if (req.isNavigationRequest() && req.frame() === page.mainFrame()) {
      lastStatus = res.status();
      requests.push({ method: req.method(), url: stripQuery(res.url()), status: res.status() });
    }
  });
  if (shots) mkdirSync(shots, { recursive: true });
  try {
    await page.goto(startUrl, { waitUntil: "load" });
    for (let n = 0; ; n += 1) {
      const url = page.url();
      const title = await page.title();
      const entry = { url: stripQuery(url), status: lastStatus, title };
      trail.push(entry);
      if (shots) {
        const name = `${String(n).padStart(2, "0")}-${title.replace(/[^A-Za-z0-9]+/g, "-").toLowerCase() || "page"}.png`;
        await page.screenshot({ path: join(shots, name), fullPage: true });
      }
      trace(`chromium: ${lastStatus} ${url} "${title}"`);
      if (url.startsWith(stopAt)) return { url, trail, requests };
      if (lastStatus >= 400) {
        const text = (await page.locator("body").innerText()).slice(0, 600);
        throw new SignInError(`page answered ${lastStatus}: ${text}`, trail);
      }
      if (n >= MAX_PAGES) throw new SignInError(`gave up after ${MAX_PAGES} pages`, trail);
      entry.action = await act(page, fill, trail);
    }
  } finally {
    await context.close().catch(() => {});
    if (own) await browser.close().catch(() => {});
  }
}

/** Does what a person would on this page; returns what it did. */
async function act(page, fill, trail) {
  const click = async (locator, what) => {
    await Promise.all([page.waitForNavigation({ waitUntil: "load" }), locator.click()]);
    return what;
  };
  if (await page.locator("input[type=password]").count()) {
    for (const [name, value] of Object.entries(fill)) {
      if (name.startsWith("__")) continue;
      const input = page.locator(`input[name="${name}"]:not([type=hidden])`);
      if (await input.count()) await input.first().fill(String(value));
    }
    const submit = page.locator("form:has(input[type=password]) [type=submit]").first();
    return click(submit, "sign in");
  }
  const providers = page.locator("button.provider");
  if (await providers.count()) {
    const wanted = fill.__provider;
    let chosen = providers.first();
    if (wanted) {
      chosen = page.locator(`form[action*="${wanted}"] button.provider`).or(
        page.locator("button.provider", { hasText: wanted }),
      ).first();
      if (!(await chosen.count())) throw new SignInError(`no sign-in button "${wanted}"`, trail);
    }
    return click(chosen, `provider ${(await chosen.innerText()).trim()}`);
  }
  const decisions = page.locator("button[name=decision]");
  if (await decisions.count()) {
    const value = fill.__button ?? "approve";
    const button = page.locator(`button[name=decision][value="${value}"]`);
    if (!(await button.count())) throw new SignInError(`no "${value}" button`, trail);
    return click(button, `decision ${value}`);
  }
  const forms = page.locator("form");
  if ((await forms.count()) === 1) {
    return click(forms.locator("[type=submit]").first(), "submit");
  }
  const text = (await page.locator("body").innerText()).slice(0, 600);
  throw new SignInError(`nothing to do on ${page.url()}: ${text}`, trail);
}
