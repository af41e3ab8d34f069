// A tiny scripted browser for the end-to-end tests: enough of a user agent to walk an
// OAuth authorization flow through authgate's login/consent pages and an upstream IdP's
// pages, without a real browser (none can be installed here).
//
//   import { browse } from './browser.mjs';
//   const { url } = await browse(authorizationUrl, {
//     stopAt: 'http://127.0.0.1:53682/callback',   // return as soon as we are sent here
//     fill: { username: 'alice', password: 'pw' },  // form field name -> value
//     log: (line) => console.error(line),           // optional trace (true = stderr)
//   });
//
// What it does, like a browser would:
// - fetch with redirect: 'manual'; follows 301/302/303 (as GET, body dropped) and
//   307/308 (same method and body), resolving Location against the current URL;
// - a cookie jar per host (ports ignored, as browsers do), honouring Path, Domain,
//   Max-Age/Expires (deletion included) and Secure (a Secure cookie set over plain http is
//   dropped, as Firefox and RFC 6265bis do, so a server that marks cookies Secure on http
//   fails loudly here instead of only in some browsers);
// - on a 200 text/html page: submits its form (see `fill` below), or follows a login
//   provider link (`<a class="provider">`, or the link `fill.__provider` names);
// - POSTs carry an Origin header (the page's origin), as browsers send on form posts.
//
// `fill` keys: plain keys set form fields that exist on the page (hidden ones included;
// fields the page lacks are ignored). Special keys:
//   __button:   value of the named submit button to press (e.g. 'deny') on pages whose form
//               has named buttons (others are submitted as usual); default: the first
//               named button whose value looks like approve/continue/allow/yes/sign-in, else
//               the first named button, else the form is submitted without a button field;
//   __provider: text or href fragment of the provider link to follow on a page of links
//               (required only when the page has several `a.provider` links);
//   __form:     index of the form to submit when a page has several (default 0).
//
// It stops, without fetching it, at the first URL it would fetch that starts with
// `stopAt`, returning { url, trail }. Any other status >= 400, a page it cannot act on, or
// more than 30 requests throws an Error naming the last URL, status and body start.

const MAX_STEPS = 30;
const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const POSITIVE_BUTTON = /^(approve|allow|accept|continue|confirm|yes|ok|authori[sz]e|sign[-_ ]?in|log[-_ ]?in|submit)$/i;

export async function browse(startUrl, { stopAt, fill = {}, log } = {}) {
  if (!stopAt) throw new Error("browse: stopAt is required");
  const trace = log === true ? (line) => console.error(line) : typeof log === "function" ? log : () => {};
  const jar = new CookieJar(trace);
  const trail = [];

  // The request to make next; replaced after every response.
  let req = { method: "GET", url: new URL(startUrl), body: undefined, contentType: undefined, origin: undefined };

  for (let step = 0; ; step += 1) {
    if (req.url.href.startsWith(stopAt)) {
      trace(`browse: stop at ${req.url.href}`);
      return { url: req.url.href, trail };
    }
    if (step >= MAX_STEPS) {
      throw new BrowseError(`gave up after ${MAX_STEPS} requests`, req.url.href, undefined, "", trail);
    }

    const headers = {
      "user-agent": "authgate-e2e-browser/1.0",
      accept: "text/html,application/xhtml+xml,*/*;q=0.8",
    };
    const cookie = jar.header(req.url);
    if (cookie) headers.cookie = cookie;
    if (req.contentType) headers["content-type"] = req.contentType;
    if (req.origin) headers.origin = req.origin;

    let res;
    try {
      res = await fetch(req.url, { method: req.method, headers, body: req.body, redirect: "manual" });
    } catch (err) {
      throw new BrowseError(`${req.method} failed: ${err.cause?.message ?? err.message}`, req.url.href, undefined, "", trail);
    }
    const body = await res.text();
    trail.push({ method: req.method, url: req.url.href, status: res.status });
    trace(`browse: ${req.method} ${req.url.href} -> ${res.status}${res.headers.get("location") ? ` ${res.headers.get("location")}` : ""}`);
    jar.store(req.url, res.headers.getSetCookie());

    if (REDIRECTS.has(res.status)) {
      const location = res.headers.get("location");
      if (!location) throw new BrowseError("redirect without Location", req.url.href, res.status, body, trail);
      const next = new URL(location, req.url);
      // 307/308 replay the request; the others turn into a GET (browsers do so for 301/302 too).
      req = res.status === 307 || res.status === 308
        ? { ...req, url: next }
        : { method: "GET", url: next, body: undefined, contentType: undefined, origin: undefined };
      continue;
    }
    if (res.status >= 400) {
      throw new BrowseError("error status", req.url.href, res.status, body, trail);
    }
    const type = res.headers.get("content-type") ?? "";
    if (res.status !== 200 || !type.includes("text/html")) {
      throw new BrowseError(`cannot handle a ${res.status} ${type || "(no content-type)"} response`, req.url.href, res.status, body, trail);
    }

    const page = req.url;
    const links = parseLinks(body, page);
    const forms = parseForms(body, page);

    // A page of login providers: follow the one asked for, or the only one. The one asked
    // for wins even over a form (a chooser may also offer a local login form); links that
    // are not marked as providers are only considered on a page without forms.
    if (fill.__provider !== undefined) {
      const wanted = String(fill.__provider);
      const matches = (l) => l.text.includes(wanted) || l.href.includes(wanted);
      const link = links.find((l) => l.classes.includes("provider") && matches(l))
        ?? (forms.length === 0 ? links.find(matches) : undefined);
      if (link) {
        trace(`browse: follow link "${link.text}" ${link.href}`);
        req = { method: "GET", url: new URL(link.href), body: undefined, contentType: undefined, origin: undefined };
        continue;
      }
    }
    if (forms.length === 0) {
      const providers = links.filter((l) => l.classes.includes("provider"));
      if (providers.length === 1) {
        trace(`browse: follow provider link "${providers[0].text}" ${providers[0].href}`);
        req = { method: "GET", url: new URL(providers[0].href), body: undefined, contentType: undefined, origin: undefined };
        continue;
      }
      const why = providers.length > 1
        ? `page has ${providers.length} provider links (${providers.map((p) => p.text).join(", ")}); set fill.__provider`
        : "page has neither a form nor a provider link";
      throw new BrowseError(why, page.href, res.status, body, trail);
    }

    const form = forms[Number(fill.__form ?? 0)];
    if (!form) throw new BrowseError(`page has ${forms.length} forms, no form #${fill.__form}`, page.href, res.status, body, trail);
    const fields = form.fields.map(([name, value]) => [name, fillValue(fill, name, value)]);
    const button = chooseButton(form.buttons, fill.__button);
    // __button only concerns forms that offer a choice (the login forms along the way don't).
    if (fill.__button !== undefined && form.buttons.some((b) => b.name) && button?.value !== String(fill.__button)) {
      throw new BrowseError(`no submit button with value "${fill.__button}"`, page.href, res.status, body, trail);
    }
    if (button) fields.push([button.name, button.value]);
    const action = new URL(button?.formaction ?? form.action);
    const method = (button?.formmethod ?? form.method).toUpperCase() === "POST" ? "POST" : "GET";
    const encoded = new URLSearchParams(fields).toString();
    trace(`browse: submit ${method} ${action.href} fields=[${fields.map(([n]) => n).join(",")}]${button ? ` button=${button.name}=${button.value}` : ""}`);

    if (method === "POST") {
      req = { method, url: action, body: encoded, contentType: "application/x-www-form-urlencoded", origin: page.origin };
    } else {
      // A GET form replaces the action's query with the form data, as browsers do.
      action.search = encoded;
      req = { method, url: action, body: undefined, contentType: undefined, origin: undefined };
    }
  }
}

export class BrowseError extends Error {
  constructor(why, url, status, body, trail) {
    super(`browse: ${why} at ${url}${status !== undefined ? ` (status ${status})` : ""}${body ? `: ${body.slice(0, 500)}` : ""}`);
    this.url = url;
    this.status = status;
    this.body = body?.slice(0, 500);
    this.trail = trail;
  }
}

function fillValue(fill, name, current) {
  return Object.hasOwn(fill, name) && !name.startsWith("__") ? String(fill[name]) : current;
}

function chooseButton(buttons, wanted) {
  const named = buttons.filter((b) => b.name);
  if (wanted !== undefined) return named.find((b) => b.value === String(wanted));
  return named.find((b) => POSITIVE_BUTTON.test(b.value.trim())) ?? named[0];
}

// ---- cookies -------------------------------------------------------------------------

class CookieJar {
  constructor(trace) {
    this.cookies = []; // { name, value, domain, hostOnly, path, secure, expires }
    this.trace = trace;
  }

  store(url, setCookies) {
    for (const line of setCookies) {
      const [pair, ...attrs] = line.split(";");
      const eq = pair.indexOf("=");
      if (eq < 0) continue;
      const cookie = {
        name: pair.slice(0, eq).trim(),
        value: pair.slice(eq + 1).trim(),
        domain: url.hostname,
        hostOnly: true,
        path: defaultPath(url),
        secure: false,
        expires: Infinity,
      };
      let maxAge;
      for (const attr of attrs) {
        const i = attr.indexOf("=");
        const key = (i < 0 ? attr : attr.slice(0, i)).trim().toLowerCase();
        const val = i < 0 ? "" : attr.slice(i + 1).trim();
        if (key === "max-age" && /^-?\d+$/.test(val)) maxAge = Number(val);
        else if (key === "expires" && maxAge === undefined) {
          const t = Date.parse(val);
          if (!Number.isNaN(t)) cookie.expires = t;
        } else if (key === "path" && val.startsWith("/")) cookie.path = val;
        else if (key === "domain" && val) {
          const domain = val.replace(/^\./, "").toLowerCase();
          if (!domainMatches(url.hostname, domain)) {
            this.trace(`browse: cookie ${cookie.name} rejected: Domain=${val} does not cover ${url.hostname}`);
            cookie.rejected = true;
          }
          cookie.domain = domain;
          cookie.hostOnly = false;
        } else if (key === "secure") cookie.secure = true;
      }
      if (maxAge !== undefined) cookie.expires = maxAge <= 0 ? -Infinity : Date.now() + maxAge * 1000;
      if (cookie.rejected) continue;
      if (cookie.secure && url.protocol !== "https:") {
        this.trace(`browse: cookie ${cookie.name} dropped: Secure cookie set over plain http`);
        continue;
      }
      // Same name+domain+path replaces (or, when already expired, deletes) the old one.
      this.cookies = this.cookies.filter(
        (c) => !(c.name === cookie.name && c.domain === cookie.domain && c.path === cookie.path),
      );
      if (cookie.expires > Date.now()) this.cookies.push(cookie);
      else this.trace(`browse: cookie ${cookie.name} deleted`);
    }
  }

  header(url) {
    const now = Date.now();
    this.cookies = this.cookies.filter((c) => c.expires > now);
    return this.cookies
      .filter((c) => (c.hostOnly ? c.domain === url.hostname : domainMatches(url.hostname, c.domain)))
      .filter((c) => pathMatches(url.pathname, c.path))
      .filter((c) => !c.secure || url.protocol === "https:")
      // Longer paths first, as RFC 6265 asks, so a more specific cookie wins on name clashes.
      .sort((a, b) => b.path.length - a.path.length)
      .map((c) => `${c.name}=${c.value}`)
      .join("; ");
  }
}

function defaultPath(url) {
  const p = url.pathname;
  if (!p.startsWith("/") || p.lastIndexOf("/") === 0) return "/";
  return p.slice(0, p.lastIndexOf("/"));
}

function pathMatches(requestPath, cookiePath) {
  if (requestPath === cookiePath) return true;
  if (!requestPath.startsWith(cookiePath)) return false;
  return cookiePath.endsWith("/") || requestPath[cookiePath.length] === "/";
}

function domainMatches(host, domain) {
  return host === domain || (host.endsWith(`.${domain}`) && !/^[\d.]+$/.test(host));
}

// ---- HTML ----------------------------------------------------------------------------
// Regex-level parsing is enough for the server-rendered pages of authgate and
// oidc-provider; it ignores scripts and comments so markup in them is not mistaken.

function stripInert(html) {
  return html
    .replace(/<!--[\s\S]*?-->/g, "")
    .replace(/<(script|style|template)\b[\s\S]*?<\/\1\s*>/gi, "");
}

function parseAttrs(tag) {
  const attrs = {};
  const inner = tag.replace(/^<\s*[\w-]+/, "").replace(/\/?>$/, "");
  const re = /([^\s"'=<>\/`]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+)))?/g;
  for (let m; (m = re.exec(inner));) {
    const name = m[1].toLowerCase();
    if (!(name in attrs)) attrs[name] = decodeEntities(m[2] ?? m[3] ?? m[4] ?? "");
  }
  return attrs;
}

function decodeEntities(s) {
  const named = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'", nbsp: "\u00a0" };
  return s.replace(/&(#x[\da-f]+|#\d+|[a-z]+);/gi, (all, e) => {
    if (e[0] === "#") {
      const code = e[1].toLowerCase() === "x" ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10);
      return Number.isFinite(code) ? String.fromCodePoint(code) : all;
    }
    return named[e.toLowerCase()] ?? all;
  });
}

function textOf(html) {
  return decodeEntities(html.replace(/<[^>]*>/g, "")).replace(/\s+/g, " ").trim();
}

function parseLinks(html, base) {
  const links = [];
  for (const m of stripInert(html).matchAll(/(<a\b[^>]*>)([\s\S]*?)<\/a\s*>/gi)) {
    const attrs = parseAttrs(m[1]);
    if (attrs.href === undefined) continue;
    let href;
    try {
      href = new URL(attrs.href, base).href;
    } catch {
      continue;
    }
    links.push({ href, text: textOf(m[2]), classes: (attrs.class ?? "").split(/\s+/).filter(Boolean) });
  }
  return links;
}

function parseForms(html, base) {
  const forms = [];
  for (const m of stripInert(html).matchAll(/(<form\b[^>]*>)([\s\S]*?)<\/form\s*>/gi)) {
    const attrs = parseAttrs(m[1]);
    const inner = m[2];
    const resolve = (u) => new URL(u || base.href, base).href;
    const form = {
      action: resolve(attrs.action),
      method: (attrs.method ?? "get").toLowerCase(),
      fields: [],
      buttons: [],
    };
    // Controls in document order, so repeated names keep their order.
    const controls = /<(input|button|select|textarea)\b[^>]*>/gi;
    for (let c; (c = controls.exec(inner));) {
      const tag = c[1].toLowerCase();
      const a = parseAttrs(c[0]);
      if ("disabled" in a) continue;
      if (tag === "button" || (tag === "input" && ["submit", "image"].includes((a.type ?? "").toLowerCase()))) {
        const type = (a.type ?? "submit").toLowerCase();
        if (type !== "submit" && type !== "image") continue;
        let text = "";
        if (tag === "button") {
          const close = inner.slice(controls.lastIndex).search(/<\/button\s*>/i);
          text = close < 0 ? "" : textOf(inner.slice(controls.lastIndex, controls.lastIndex + close));
        }
        form.buttons.push({
          name: a.name ?? "",
          value: a.value ?? "",
          text,
          formaction: a.formaction !== undefined ? resolve(a.formaction) : undefined,
          formmethod: a.formmethod,
        });
        continue;
      }
      if (!a.name) continue;
      if (tag === "input") {
        const type = (a.type ?? "text").toLowerCase();
        if (["reset", "button", "file"].includes(type)) continue;
        if ((type === "checkbox" || type === "radio") && !("checked" in a)) continue;
        form.fields.push([a.name, a.value ?? (type === "checkbox" || type === "radio" ? "on" : "")]);
      } else if (tag === "textarea") {
        const close = inner.slice(controls.lastIndex).search(/<\/textarea\s*>/i);
        form.fields.push([a.name, close < 0 ? "" : decodeEntities(inner.slice(controls.lastIndex, controls.lastIndex + close))]);
      } else if (tag === "select") {
        const close = inner.slice(controls.lastIndex).search(/<\/select\s*>/i);
        const options = [...inner.slice(controls.lastIndex, controls.lastIndex + close).matchAll(/<option\b[^>]*>([^<]*)/gi)]
          .map((o) => ({ attrs: parseAttrs(o[0].slice(0, o[0].indexOf(">") + 1)), text: o[1] }));
        const chosen = options.find((o) => "selected" in o.attrs) ?? options[0];
        if (chosen) form.fields.push([a.name, chosen.attrs.value ?? textOf(chosen.text)]);
      }
    }
    forms.push(form);
  }
  return forms;
}
