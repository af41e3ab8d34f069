// An MCP server protected by its own OAuth authorization server, as the MCP authorization
// spec has it: without a valid token it answers 401 with
// `WWW-Authenticate: Bearer resource_metadata="…"`, serves its RFC 9728 protected resource
// metadata naming the authorization server (oidc-provider.mjs with --resource), and accepts
// only that server's JWT access tokens issued for this resource (signature checked at the
// server's JWKS, audience = this resource). MCP itself is the official TypeScript SDK v2.
// One tool, `whoami`: the token's subject, client and the token itself (so the test can
// check that the store never holds it in clear).
//
// Usage: node protected-mcp-server.mjs --issuer <authorization server> --resource <this
//   server's MCP URL> [--scope mcp:tools], with the listening socket inherited as fd
//   $LISTEN_FD. Prints `READY <resource>`.
import http from "node:http";
import { parseArgs } from "node:util";
import { createRemoteJWKSet, jwtVerify } from "jose";
import { createMcpHandler, McpServer } from "@modelcontextprotocol/server";
import { toNodeHandler } from "@modelcontextprotocol/node";

const { values: args } = parseArgs({
  options: { issuer: { type: "string" }, resource: { type: "string" }, scope: { type: "string" } },
});
const resource = new URL(args.resource);
const scope = args.scope ?? "mcp:tools";
const prmPath = `/.well-known/oauth-protected-resource${resource.pathname}`;
const prmUrl = `${resource.origin}${prmPath}`;
// Fetched again at once for a key id it has not seen (its server may have restarted).
const jwks = createRemoteJWKSet(new URL(`${args.issuer}/jwks`), { cooldownDuration: 0 });

function mcpFor(claims, token) {
  return toNodeHandler(
    createMcpHandler(() => {
      const server = new McpServer({ name: "protected-whoami", version: "1.0.0" });
      server.registerTool("whoami", { description: "Who the access token names" }, async () => ({
        content: [{ type: "text", text: JSON.stringify({ sub: claims.sub, client_id: claims.client_id, token }) }],
      }));
      return server;
    }),
  );
}

const server = http.createServer(async (req, res) => {
  if (req.url === prmPath || req.url === "/.well-known/oauth-protected-resource") {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({
      resource: args.resource,
      authorization_servers: [args.issuer],
      scopes_supported: [scope],
      bearer_methods_supported: ["header"],
    }));
    return;
  }
  const challenge = (error) => {
    const e = error ? `error="${error}", ` : "";
    res.writeHead(401, {
      "www-authenticate": `Bearer ${e}resource_metadata="${prmUrl}", scope="${scope}"`,
      "content-type": "application/json",
    });
    res.end(JSON.stringify({ error: error ?? "invalid_token", error_description: "authentication required" }));
  };
  const auth = req.headers.authorization ?? "";
  if (!auth.startsWith("Bearer ")) return challenge();
  const token = auth.slice(7);
  let claims;
  try {
    ({ payload: claims } = await jwtVerify(token, jwks, { issuer: args.issuer, audience: args.resource }));
  } catch (e) {
    console.error("token refused:", e.message);
    return challenge("invalid_token");
  }
  return mcpFor(claims, token)(req, res);
});

server.listen({ fd: Number(process.env.LISTEN_FD) }, () => {
  process.stdout.write(`READY ${args.resource}\n`);
});
process.on("SIGTERM", () => {
  server.closeAllConnections?.();
  server.close(() => process.exit(0));
});
