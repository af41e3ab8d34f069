// Self-check of the test harness without authgate: runs oidc-provider.mjs and acts as a
// plain OpenID Connect relying party against it, driving the dev login and consent pages
// with browser.mjs. Proves the upstream IdP works the way authgate's tests need:
// code flow + PKCE S256 over plain http, iss in the authorization response, email claims
// in a verifiable ID token, client_secret_basic and client_secret_post, refresh rotation.
//
// Usage: node selfcheck-oidc.mjs [--verbose]   (exit 0 and "selfcheck-oidc: ok" on success)
import { spawn } from "node:child_process";
import { createHash, createPublicKey, randomBytes, verify } from "node:crypto";
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";
import { browse } from "./browser.mjs";

const verbose = process.argv.includes("--verbose");
const CLIENT_ID = "selfcheck-rp";
const CLIENT_SECRET = "selfcheck-secret+/=:"; // characters that need form-encoding in Basic auth
const REDIRECT_URI = "http://127.0.0.1:9/cb"; // never fetched: browse() stops before it

const b64url = (buf) => Buffer.from(buf).toString("base64url");
const basic = (id, secret) =>
  `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString("base64")}`;

function check(cond, what, detail) {
  if (!cond) throw new Error(`${what}${detail !== undefined ? `: ${JSON.stringify(detail)}` : ""}`);
  if (verbose) console.error(`ok - ${what}`);
}

async function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

// Starts oidc-provider.mjs and resolves with its issuer once it printed READY.
function startProvider(port) {
  const script = fileURLToPath(new URL("./oidc-provider.mjs", import.meta.url));
  const child = spawn(process.execPath, [
    script, "--port", String(port), "--client-id", CLIENT_ID,
    "--client-secret", CLIENT_SECRET, "--redirect-uri", REDIRECT_URI,
  ], { stdio: ["ignore", "pipe", verbose ? "inherit" : "ignore"] });
  const ready = new Promise((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error("oidc-provider did not print READY within 10s")), 10_000);
    child.stdout.on("data", (d) => {
      out += d;
      const m = out.match(/^READY (\S+)$/m);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`oidc-provider exited early with ${code}`));
    });
  });
  return { child, ready };
}

async function tokenRequest(endpoint, params, headers = {}) {
  const res = await fetch(endpoint, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded", accept: "application/json", ...headers },
    body: new URLSearchParams(params),
  });
  return { status: res.status, json: await res.json() };
}

async function verifyIdToken(idToken, jwksUri) {
  const [h, p, s] = idToken.split(".");
  const header = JSON.parse(Buffer.from(h, "base64url"));
  const { keys } = await (await fetch(jwksUri)).json();
  const jwk = keys.find((k) => k.kid === header.kid);
  check(header.alg === "RS256" && jwk, "ID token is RS256 with a key from jwks_uri", header);
  const ok = verify("sha256", Buffer.from(`${h}.${p}`), createPublicKey({ key: jwk, format: "jwk" }), Buffer.from(s, "base64url"));
  check(ok, "ID token signature verifies");
  return JSON.parse(Buffer.from(p, "base64url"));
}

async function main(issuer) {
  const meta = await (await fetch(`${issuer}/.well-known/openid-configuration`)).json();
  check(meta.issuer === issuer, "discovery issuer", meta.issuer);
  check(meta.code_challenge_methods_supported?.includes("S256"), "S256 advertised");

  // Authorization request, as an RP such as authgate builds it.
  const verifier = b64url(randomBytes(32));
  const state = b64url(randomBytes(16));
  const nonce = b64url(randomBytes(16));
  const authUrl = new URL(meta.authorization_endpoint);
  authUrl.search = new URLSearchParams({
    client_id: CLIENT_ID,
    response_type: "code",
    redirect_uri: REDIRECT_URI,
    scope: "openid email profile",
    state,
    nonce,
    code_challenge: b64url(createHash("sha256").update(verifier).digest()),
    code_challenge_method: "S256",
  });

  const { url, trail } = await browse(authUrl.href, {
    stopAt: REDIRECT_URI,
    fill: { login: "bob", password: "anything" },
    log: verbose,
  });
  const cb = new URL(url).searchParams;
  check(!cb.get("error"), "no error in callback", Object.fromEntries(cb));
  check(cb.get("code"), "callback has code");
  check(cb.get("state") === state, "callback state matches");
  check(cb.get("iss") === issuer, "callback iss is the issuer", cb.get("iss"));
  // start -> login page -> login POST -> resume -> consent page -> consent POST -> resume
  check(trail.some((t) => t.method === "POST" && t.url.includes("/interaction/")), "went through the dev interaction forms", trail);

  // Code exchange with client_secret_basic.
  const codeParams = { grant_type: "authorization_code", code: cb.get("code"), redirect_uri: REDIRECT_URI, code_verifier: verifier };
  const wrong = await tokenRequest(meta.token_endpoint, codeParams, { authorization: basic(CLIENT_ID, "wrong") });
  check(wrong.status === 401 && wrong.json.error === "invalid_client", "wrong secret is invalid_client", wrong);
  // (A failed client authentication does not consume the code.)
  const tok = await tokenRequest(meta.token_endpoint, codeParams, { authorization: basic(CLIENT_ID, CLIENT_SECRET) });
  check(tok.status === 200, "code exchange with client_secret_basic", tok);
  check(tok.json.token_type === "Bearer" && tok.json.access_token && tok.json.refresh_token, "access + refresh tokens issued", Object.keys(tok.json));

  const claims = await verifyIdToken(tok.json.id_token, meta.jwks_uri);
  check(claims.iss === issuer && claims.aud === CLIENT_ID && claims.nonce === nonce, "ID token iss/aud/nonce", claims);
  check(claims.sub === "bob", "ID token sub", claims.sub);
  check(claims.email === "bob@example.test" && claims.email_verified === true, "ID token email claims", claims);
  check(claims.name === "User bob", "ID token name claim", claims.name);
  check(Array.isArray(claims.groups) && claims.groups.includes("users"), "ID token groups claim", claims.groups);

  const userinfo = await (await fetch(meta.userinfo_endpoint, { headers: { authorization: `Bearer ${tok.json.access_token}` } })).json();
  check(userinfo.email === "bob@example.test", "userinfo email", userinfo);

  // Refresh with client_secret_post: the same client accepts either secret method.
  const ref = await tokenRequest(meta.token_endpoint, {
    grant_type: "refresh_token", refresh_token: tok.json.refresh_token, client_id: CLIENT_ID, client_secret: CLIENT_SECRET,
  });
  check(ref.status === 200 && ref.json.access_token, "refresh with client_secret_post", ref);

  // Last, since oidc-provider answers a replayed code by revoking the tokens issued for it.
  const replay = await tokenRequest(meta.token_endpoint, codeParams, { authorization: basic(CLIENT_ID, CLIENT_SECRET) });
  check(replay.status === 400 && replay.json.error === "invalid_grant", "code cannot be redeemed twice", replay);

  // A second login in a fresh browser (new cookie jar) works as well.
  const again = await browse(authUrl.href.replace(state, "second"), {
    stopAt: REDIRECT_URI, fill: { login: "carol", password: "x" }, log: verbose,
  });
  check(new URL(again.url).searchParams.get("code"), "second login in a fresh browser");
}

const port = await freePort();
const { child, ready } = startProvider(port);
let failed;
try {
  await main(await ready);
} catch (err) {
  failed = err;
} finally {
  child.kill("SIGTERM");
}
if (failed) {
  console.error(`selfcheck-oidc: FAILED: ${failed.stack ?? failed}`);
  process.exit(1);
}
console.log("selfcheck-oidc: ok");
