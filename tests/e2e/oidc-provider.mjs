// A real OpenID Connect provider (panva's oidc-provider) standing in for the upstream
// identity provider that authgate federates to in the end-to-end tests.
//
// Usage:
//   node oidc-provider.mjs --issuer http://<host>:<port> --client-id <id> --client-secret <secret>
//       --redirect-uri <uri> [--redirect-uri <uri2> ...] [--access-ttl <seconds>]
//       [--resource <URL> [--registration] [--rotate]]
//
// - issuer as given (discovery at /.well-known/openid-configuration); it listens on the
//   issuer's host and port, or on the socket inherited as fd $LISTEN_FD when set (the Rust
//   tests bind it first, so the port is known before the program starts and cannot be taken)
// - one confidential client; it may authenticate at the token endpoint with
//   client_secret_basic or client_secret_post (oidc-provider 9.x accepts either secret
//   method for a client registered with one of them)
// - grant types authorization_code + refresh_token; PKCE S256 is verified when sent
// - any login id is accepted with any password: sub = <login>, email = <login>@example.test,
//   email_verified = true, name = "User <login>", groups = ["users", "<login>-group"],
//   realm_access = { roles: ["reader", "<login>-role"] }
// - the built-in "dev interactions" serve the login form (fields: prompt=login hidden,
//   login, password) and the consent form (prompt=consent hidden, one unnamed submit button)
//
// - with --resource: the authorization server of a protected MCP server (RFC 8707): access
//   tokens for that resource are JWTs (RS256, aud = the resource, scope mcp:tools), the
//   resource granted at authorization is used at the token endpoint; --registration opens
//   dynamic client registration (RFC 7591); --rotate rotates every refresh token on use
//   (a reused one revokes the grant, as OAuth 2.1 recommends)
//
// Prints exactly one line `READY <issuer>` to stdout once listening; everything else
// (oidc-provider's notices and warnings, request errors) goes to stderr. Exits on SIGTERM/SIGINT.
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { parseArgs } from "node:util";
import Provider, { errors } from "oidc-provider";

// oidc-provider prints its "you SHOULD change..." notices with console.info, i.e. to stdout;
// keep stdout machine-readable for the Rust test that waits for the READY line.
console.info = (...args) => console.error(...args);

const { values: args } = parseArgs({
  options: {
    issuer: { type: "string" },
    "client-id": { type: "string" },
    "client-secret": { type: "string" },
    "redirect-uri": { type: "string", multiple: true },
    "access-ttl": { type: "string" },
    resource: { type: "string" },
    registration: { type: "boolean" },
    rotate: { type: "boolean" },
  },
});
for (const required of ["issuer", "client-id", "client-secret", "redirect-uri"]) {
  if (!args[required]) {
    console.error(`missing --${required}`);
    process.exit(2);
  }
}

const issuer = args.issuer.replace(/\/$/, "");
const issuerUrl = new URL(issuer);

// A fresh signing key per run instead of oidc-provider's built-in dev keystore (which it
// warns about); relying parties fetch it from jwks_uri anyway.
const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
// A kid of its own per run: a relying party that cached the last run's keys fetches anew.
const kid = `e2e-rs256-${randomBytes(4).toString("hex")}`;
const signingJwk = { ...privateKey.export({ format: "jwk" }), kid, alg: "RS256", use: "sig" };

function account(login) {
  return {
    accountId: login,
    // oidc-provider filters this down to the claims the granted scopes allow.
    async claims() {
      return {
        sub: login,
        email: `${login}@example.test`,
        email_verified: true,
        name: `User ${login}`,
        groups: ["users", `${login}-group`],
        // Keycloak's shape for realm roles: a nested claim (authgate's groups_claim path).
        realm_access: { roles: ["reader", `${login}-role`] },
      };
    },
  };
}

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: args["client-id"],
      client_secret: args["client-secret"],
      redirect_uris: args["redirect-uri"],
      grant_types: ["authorization_code", "refresh_token"],
      response_types: ["code"],
      token_endpoint_auth_method: "client_secret_basic",
    },
  ],
  jwks: { keys: [signingJwk] },
  cookies: {
    // Browsers key cookies by host, not port, and authgate runs on 127.0.0.1 too: prefixed
    // names keep this IdP's cookies from overwriting authgate's (e.g. a "_session").
    names: { session: "op_session", interaction: "op_interaction", resume: "op_interaction_resume" },
    // Signing keys; without them oidc-provider still works but warns. Cookies are only
    // marked Secure when the request itself is https, so plain http on 127.0.0.1 works.
    keys: [randomBytes(32).toString("hex")],
  },
  claims: {
    openid: ["sub"],
    email: ["email", "email_verified"],
    profile: ["name", "groups", "realm_access"],
  },
  scopes: ["openid", "offline_access", "email", "profile", ...(args.resource ? ["mcp:tools"] : [])],
  // By default, for response_type=code, scope-derived claims only go to userinfo; a
  // relying party that reads the email from the ID token (as authgate may) needs them there.
  conformIdTokenClaims: false,
  findAccount: async (_ctx, sub) => account(sub),
  // Default issues refresh tokens only with offline_access; the tests want them whenever
  // the client is allowed the grant, so an RP need not know about offline_access.
  issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed("refresh_token"),
  pkce: {
    // Verified when present (S256 only); not demanded from this confidential client.
    required: () => false,
  },
  features: {
    devInteractions: { enabled: true },
    revocation: { enabled: true },
    userinfo: { enabled: true },
    registration: { enabled: Boolean(args.registration) },
    resourceIndicators: {
      enabled: Boolean(args.resource),
      defaultResource: (_ctx, _client, oneOf) => oneOf ?? args.resource,
      useGrantedResource: () => true,
      getResourceServerInfo: (_ctx, indicator) => {
        if (indicator !== args.resource) throw new errors.InvalidTarget();
        return {
          scope: "mcp:tools",
          audience: indicator,
          accessTokenFormat: "jwt",
          accessTokenTTL: Number(args["access-ttl"] ?? 3600),
          jwt: { sign: { alg: "RS256" } },
        };
      },
    },
  },
  ...(args.rotate ? { rotateRefreshToken: true } : {}),
  ttl: {
    AccessToken: Number(args["access-ttl"] ?? 3600),
    AuthorizationCode: 600,
    IdToken: 3600,
    RefreshToken: 86400,
    Interaction: 3600,
    Session: 86400,
    Grant: 86400,
  },
  // Errors on the HTML pages: say what went wrong in the body so a test failure is legible.
  async renderError(ctx, out) {
    ctx.type = "html";
    ctx.body = `<!DOCTYPE html><html><body><h1>oidc-provider error</h1><pre>${
      JSON.stringify(out).replace(/[<>&]/g, (c) => `&#${c.charCodeAt(0)};`)
    }</pre></body></html>`;
  },
});

provider.on("server_error", (_ctx, err) => console.error("oidc-provider server_error:", err));
provider.on("grant.error", (_ctx, err) => console.error("oidc-provider grant.error:", err.message, err.error_description ?? ""));
provider.on("authorization.error", (_ctx, err) => console.error("oidc-provider authorization.error:", err.message, err.error_description ?? ""));

const where = process.env.LISTEN_FD
  ? [{ fd: Number(process.env.LISTEN_FD) }]
  : [Number(issuerUrl.port), issuerUrl.hostname];
const server = provider.listen(...where, () => {
  process.stdout.write(`READY ${issuer}\n`);
});
server.on("error", (err) => {
  console.error(`oidc-provider failed to listen on ${issuer}:`, err.message);
  process.exit(1);
});

function shutdown() {
  // Keep-alive connections from the tests would hold close() open; drop them.
  server.closeAllConnections?.();
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 1000).unref();
}
process.on("SIGTERM", shutdown);
process.on("SIGINT", shutdown);
