// The MCP authorization scenario against authgate, driven by the official TypeScript SDK
// (@modelcontextprotocol/sdk) as a real MCP client would run it: a loopback callback server
// as its redirect URI, and headless Chromium (chromium.mjs) as the user's browser, clicking
// the real buttons of every page. Prints ONE JSON object to stdout; the Rust test asserts on it.
//
// Usage:
//   node oauth-flow.mjs --server <MCP URL behind authgate> [--fill '<json>'] [--shots DIR]
//       [--verbose]
//   --fill     what the person types and chooses (see chromium.mjs), e.g.
//              '{"__provider":"Local account","username":"alice","password":"pw"}' or, through
//              the upstream oidc-provider, '{"__provider":"Corp SSO","login":"bob","password":"x"}'
//   --shots    save a screenshot of every page the browser shows into DIR
//   --verbose  trace the browser's pages on stderr
//   --refresh-delay-ms  wait before the refresh step (e.g. for the gateway's reverify_every)
//
// Steps, in order:
//   1. unauthenticated  raw POST of an MCP initialize without a token
//   2. authorize        client.connect() with an OAuthClientProvider: the SDK discovers the
//                       protected resource + AS metadata, registers (DCR), and redirects the
//                       "browser" to the authorization URL; browse() logs in and consents
//   3. callback/token   transport.finishAuth(code) exchanges the code (PKCE); a new
//                       client+transport connects with the token: tools/list, echo
//   4. refresh          refreshAuthorization() with the refresh token; echo with the new
//                       access token on a transport that has no auth provider (no silent retry)
//   5. revoke           raw check that the current token works, RFC 7009 revocation, raw
//                       check that it no longer works
//   6. old refresh token reuse (reported as refresh.oldRefreshReuse) runs after the revoke:
//                       a server that revokes the whole token family on reuse (OAuth 2.1
//                       §4.3.1) would otherwise make the revoke step prove nothing
//
// Output (tokens are never printed, only the first 12 hex chars of their SHA-256):
// {
//   "unauthenticated": { "status": 401, "wwwAuthenticate": "Bearer resource_metadata=\"...\"" },
//   "discovery": { "authorizationServer", "issuer", "resource", "scopesSupported",
//                  "registrationEndpoint", "tokenEndpoint", "revocationEndpoint" },
//   "registration": { "clientId", "tokenEndpointAuthMethod", "hasClientSecret" },
//   "authorize": { "endpoint", "clientIdMatches", "responseType", "redirectUriMatches",
//                  "resource", "scope", "codeChallengeMethod", "hasCodeChallenge", "hasState" },
//   "browser": [ { "method", "url", "status" }, ... ]   (the browser's top-level requests,
//                                                        redirects included, query stripped)
//   "pages": [ { "url", "status", "title", "action" }, ... ]  (what it showed and what was clicked)
//   "callback": { "hasCode", "stateMatches", "iss", "issMatches", "error" },
//   "token": { "accessHash", "tokenType", "expiresIn", "hasRefresh", "refreshHash", "scope" },
//   "mcp": { "serverName", "tools": [..names], "reauthorized": false },
//   "echo": "Echo: hi",
//   "refresh": { "newAccess": true, "newRefresh": true, "accessHash", "refreshHash",
//                "tokenType", "expiresIn", "scope", "echo": "Echo: hi",
//                "oldRefreshReuse": { "status": 400, "error": "invalid_grant" } },
//   "revoke": { "before": { "status": 200 }, "status": 200,
//               "after": { "status": 401, "wwwAuthenticate": "Bearer error=\"invalid_token\"..." } }
// }
// On failure: the same object so far plus { "error": "<message>", "step": "<step>" }, exit 1.
import { createHash, randomBytes } from "node:crypto";
import { parseArgs } from "node:util";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { UnauthorizedError, refreshAuthorization } from "@modelcontextprotocol/sdk/client/auth.js";
import { LATEST_PROTOCOL_VERSION } from "@modelcontextprotocol/sdk/types.js";
import { callbackServer, signIn } from "./chromium.mjs";

// stdout carries exactly one JSON object; anything a library logs goes to stderr.
console.log = (...a) => console.error(...a);
console.info = (...a) => console.error(...a);

const out = {};
let step = "args";

function finish(code) {
  // Exit explicitly: an SSE stream the SDK left open must not keep the process alive.
  process.stdout.write(`${JSON.stringify(out)}\n`, () => process.exit(code));
}

function describe(err) {
  // Node's fetch hides the reason ("fetch failed") in `cause`.
  const cause = err?.cause ? `: ${err.cause.message ?? err.cause}` : "";
  return `${err?.message ?? String(err)}${cause}`;
}

let args;
try {
  ({ values: args } = parseArgs({
    options: {
      server: { type: "string" },
      fill: { type: "string", default: "{}" },
      shots: { type: "string" },
      verbose: { type: "boolean", default: false },
      // Wait this long before refreshing (lets the gateway's reverify_every come due).
      "refresh-delay-ms": { type: "string", default: "0" },
    },
  }));
} catch (err) {
  out.error = describe(err);
  out.step = step;
  finish(2);
}

const hash = (token) => (token ? createHash("sha256").update(token).digest("hex").slice(0, 12) : null);

/** In-memory OAuthClientProvider: one "session" of an MCP client app. */
class MemoryOAuthProvider {
  constructor(redirectUrl, fill, verbose, shots) {
    this._redirectUrl = redirectUrl;
    this._fill = fill;
    this._verbose = verbose;
    this._shots = shots;
    this._client = undefined;
    this._tokens = undefined;
    this._verifier = undefined;
    this._discovery = undefined;
    this.lastState = undefined;
    this.authorizationUrl = undefined;
    this.callbackUrl = undefined;
    this.trail = [];
    this.pages = [];
    this.redirects = 0;
  }

  get redirectUrl() {
    return this._redirectUrl;
  }

  get clientMetadata() {
    return {
      client_name: "authgate e2e",
      redirect_uris: [this._redirectUrl],
      grant_types: ["authorization_code", "refresh_token"],
      response_types: ["code"],
      token_endpoint_auth_method: "none",
    };
  }

  state() {
    this.lastState = randomBytes(16).toString("base64url");
    return this.lastState;
  }

  // The SDK stamps client information and tokens with the AS URL (`issuer`) and refuses to
  // present them elsewhere; they must be stored exactly as received.
  clientInformation() {
    return this._client;
  }

  saveClientInformation(info) {
    this._client = info;
  }

  tokens() {
    return this._tokens;
  }

  saveTokens(tokens) {
    this._tokens = tokens;
  }

  saveCodeVerifier(verifier) {
    this._verifier = verifier;
  }

  codeVerifier() {
    if (!this._verifier) throw new Error("no PKCE code verifier saved");
    return this._verifier;
  }

  saveDiscoveryState(state) {
    this._discovery = state;
  }

  discoveryState() {
    return this._discovery;
  }

  invalidateCredentials(scope) {
    if (scope === "all" || scope === "client") this._client = undefined;
    if (scope === "all" || scope === "tokens") this._tokens = undefined;
    if (scope === "all" || scope === "verifier") this._verifier = undefined;
    if (scope === "all" || scope === "discovery") this._discovery = undefined;
  }

  // "Open the browser": the person signs in and consents in Chromium until the browser lands
  // on our redirect URI; the app picks the code up from there.
  async redirectToAuthorization(url) {
    this.redirects += 1;
    this.authorizationUrl = new URL(url);
    const { url: callback, trail, requests } = await signIn(this.authorizationUrl.href, {
      stopAt: this._redirectUrl,
      fill: this._fill,
      log: this._verbose,
      shots: this._shots,
    });
    this.callbackUrl = new URL(callback);
    this.trail = requests;
    this.pages = trail;
  }
}

// A raw MCP initialize POST, to observe exactly what authgate answers (status, challenge).
async function rawInitialize(serverUrl, token) {
  const headers = { "content-type": "application/json", accept: "application/json, text/event-stream" };
  if (token) headers.authorization = `Bearer ${token}`;
  const res = await fetch(serverUrl, {
    method: "POST",
    headers,
    body: JSON.stringify({
      jsonrpc: "2.0",
      id: 1,
      method: "initialize",
      params: { protocolVersion: LATEST_PROTOCOL_VERSION, capabilities: {}, clientInfo: { name: "authgate-e2e-raw", version: "1.0.0" } },
    }),
  });
  // A successful initialize may answer with an SSE stream: only the status matters here.
  await res.body?.cancel().catch(() => {});
  return { status: res.status, wwwAuthenticate: res.headers.get("www-authenticate") };
}

async function postForm(url, params) {
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded", accept: "application/json" },
    body: new URLSearchParams(params),
  });
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, json, text };
}

async function closeQuietly(client, transport) {
  await transport.terminateSession().catch(() => {});
  await client.close().catch(() => {});
}

async function echo(client) {
  const res = await client.callTool({ name: "echo", arguments: { message: "hi" } });
  return res.content?.[0]?.text ?? null;
}

function tokenSummary(tokens) {
  return {
    accessHash: hash(tokens.access_token),
    tokenType: tokens.token_type ?? null,
    expiresIn: tokens.expires_in ?? null,
    hasRefresh: Boolean(tokens.refresh_token),
    refreshHash: hash(tokens.refresh_token),
    scope: tokens.scope ?? null,
  };
}

async function run() {
  if (!args.server) throw new Error("--server is required");
  const serverUrl = new URL(args.server);
  const fill = JSON.parse(args.fill);
  const callback = await callbackServer();
  const redirectUrl = callback.url;

  step = "unauthenticated";
  out.unauthenticated = await rawInitialize(serverUrl);

  step = "authorize";
  const provider = new MemoryOAuthProvider(redirectUrl, fill, args.verbose, args.shots);
  {
    const client = new Client({ name: "authgate-e2e", version: "1.0.0" });
    const transport = new StreamableHTTPClientTransport(serverUrl, { authProvider: provider });
    let connected = false;
    try {
      await client.connect(transport);
      connected = true;
    } catch (err) {
      // The SDK signals "the user was sent to the authorization server" this way.
      if (!(err instanceof UnauthorizedError)) throw err;
    } finally {
      await client.close().catch(() => {});
    }
    if (connected) throw new Error("connected without authorization");
  }
  const discovery = provider.discoveryState();
  const asMeta = discovery?.authorizationServerMetadata;
  out.discovery = {
    authorizationServer: discovery?.authorizationServerUrl ?? null,
    issuer: asMeta?.issuer ?? null,
    resource: discovery?.resourceMetadata?.resource ?? null,
    scopesSupported: discovery?.resourceMetadata?.scopes_supported ?? null,
    registrationEndpoint: asMeta?.registration_endpoint ?? null,
    tokenEndpoint: asMeta?.token_endpoint ?? null,
    revocationEndpoint: asMeta?.revocation_endpoint ?? null,
  };
  const clientInfo = provider.clientInformation();
  if (!clientInfo) throw new Error("no client registration happened");
  out.registration = {
    clientId: clientInfo.client_id,
    tokenEndpointAuthMethod: clientInfo.token_endpoint_auth_method ?? null,
    hasClientSecret: Boolean(clientInfo.client_secret),
  };
  if (!provider.authorizationUrl) throw new Error("the SDK never redirected to the authorization server");
  const q = provider.authorizationUrl.searchParams;
  out.authorize = {
    endpoint: provider.authorizationUrl.origin + provider.authorizationUrl.pathname,
    clientIdMatches: q.get("client_id") === clientInfo.client_id,
    responseType: q.get("response_type"),
    redirectUriMatches: q.get("redirect_uri") === redirectUrl,
    resource: q.get("resource"),
    scope: q.get("scope"),
    codeChallengeMethod: q.get("code_challenge_method"),
    hasCodeChallenge: Boolean(q.get("code_challenge")),
    hasState: Boolean(q.get("state")),
  };
  out.browser = provider.trail;
  out.pages = provider.pages;

  step = "callback";
  const cb = provider.callbackUrl.searchParams;
  out.callback = {
    hasCode: Boolean(cb.get("code")),
    stateMatches: cb.get("state") === provider.lastState,
    iss: cb.get("iss"),
    issMatches: cb.get("iss") !== null && cb.get("iss") === asMeta?.issuer,
    error: cb.get("error"),
  };
  if (!cb.get("code")) throw new Error(`no code in callback: error=${cb.get("error")} ${cb.get("error_description") ?? ""}`);
  // RFC 6749 §10.12 / RFC 9207: a client must not redeem a code that came back for another request.
  if (!out.callback.stateMatches) throw new Error("state in callback does not match the request");

  step = "token";
  {
    const transport = new StreamableHTTPClientTransport(serverUrl, { authProvider: provider });
    await transport.finishAuth(cb.get("code"));
  }
  const firstTokens = provider.tokens();
  if (!firstTokens?.access_token) throw new Error("finishAuth saved no access token");
  out.token = tokenSummary(firstTokens);

  step = "mcp";
  {
    const redirectsBefore = provider.redirects;
    const client = new Client({ name: "authgate-e2e", version: "1.0.0" });
    const transport = new StreamableHTTPClientTransport(serverUrl, { authProvider: provider });
    await client.connect(transport);
    const tools = await client.listTools();
    out.mcp = {
      serverName: client.getServerVersion()?.name ?? null,
      tools: tools.tools.map((t) => t.name),
      // True if the SDK had to refresh or re-run the authorization because the fresh
      // token was refused: the test should then fail.
      reauthorized: provider.redirects !== redirectsBefore || provider.tokens()?.access_token !== firstTokens.access_token,
    };
    out.echo = await echo(client);
    await closeQuietly(client, transport);
  }

  step = "refresh";
  if (!firstTokens.refresh_token) throw new Error("no refresh token was issued");
  await new Promise((r) => setTimeout(r, Number(args["refresh-delay-ms"])));
  const current = provider.tokens();
  const refreshed = await refreshAuthorization(discovery.authorizationServerUrl, {
    metadata: asMeta,
    clientInformation: provider.clientInformation(),
    refreshToken: current.refresh_token,
    // The protected resource's identifier exactly as advertised, as auth() sends it.
    resource: discovery.resourceMetadata?.resource,
  });
  // Stamped like auth() stamps what it saves, so the SDK keeps trusting these tokens.
  provider.saveTokens({ ...refreshed, issuer: String(discovery.authorizationServerUrl) });
  out.refresh = {
    newAccess: refreshed.access_token !== current.access_token,
    // refreshAuthorization() keeps the old refresh token when none came back.
    newRefresh: refreshed.refresh_token !== current.refresh_token,
    ...tokenSummary(refreshed),
  };
  delete out.refresh.hasRefresh;
  {
    // No auth provider: a refused token must fail here, not be silently refreshed.
    const client = new Client({ name: "authgate-e2e", version: "1.0.0" });
    const transport = new StreamableHTTPClientTransport(serverUrl, {
      requestInit: { headers: { Authorization: `Bearer ${refreshed.access_token}` } },
    });
    await client.connect(transport);
    out.refresh.echo = await echo(client);
    await closeQuietly(client, transport);
  }

  step = "revoke";
  if (!asMeta?.revocation_endpoint) throw new Error("AS metadata has no revocation_endpoint");
  const accessToken = refreshed.access_token;
  const before = await rawInitialize(serverUrl, accessToken);
  const revoked = await postForm(asMeta.revocation_endpoint, {
    token: accessToken,
    token_type_hint: "access_token",
    client_id: clientInfo.client_id,
  });
  const after = await rawInitialize(serverUrl, accessToken);
  out.revoke = { before: { status: before.status }, status: revoked.status, after };

  step = "oldRefreshReuse";
  const reuse = await postForm(asMeta.token_endpoint, {
    grant_type: "refresh_token",
    refresh_token: current.refresh_token,
    client_id: clientInfo.client_id,
  });
  out.refresh.oldRefreshReuse = { status: reuse.status, error: reuse.json?.error ?? null };
}

if (args) {
  try {
    await run();
    finish(0);
  } catch (err) {
    out.error = describe(err);
    out.step = step;
    if (args.verbose) console.error(err);
    finish(1);
  }
}
