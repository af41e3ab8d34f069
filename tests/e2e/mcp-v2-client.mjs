// The official TypeScript SDK v2 client (`@modelcontextprotocol/client`): tools/list and
// tools/call `echo`, either pinned to the 2026-07-28 revision (stateless requests with
// `Mcp-Method`/`Mcp-Name`) or with default negotiation. Prints one JSON object: the tools,
// the echo text, and the protocol headers of every HTTP request it sent.
// Usage: node mcp-v2-client.mjs <server URL> [2026]
import { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";

const [url, revision] = process.argv.slice(2);
const requests = [];
const recordingFetch = async (input, init) => {
  const h = new Headers(init?.headers);
  requests.push({
    method: init?.method ?? "GET",
    version: h.get("mcp-protocol-version"),
    mcpMethod: h.get("mcp-method"),
    mcpName: h.get("mcp-name"),
    session: h.get("mcp-session-id"),
  });
  return fetch(input, init);
};
const options = revision === "2026" ? { versionNegotiation: { mode: { pin: "2026-07-28" } } } : undefined;
const client = new Client({ name: "authgate-e2e-v2", version: "1.0.0" }, options);
await client.connect(new StreamableHTTPClientTransport(new URL(url), { fetch: recordingFetch }));
const tools = await client.listTools();
const echo = await client.callTool({ name: "echo", arguments: { message: "hi" } });
console.log(JSON.stringify({ tools: tools.tools.map((t) => t.name), echo: echo.content?.[0]?.text ?? null, requests }));
await client.close();
