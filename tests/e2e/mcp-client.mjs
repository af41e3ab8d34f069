// Drives an MCP server through authgate with the official TypeScript SDK client:
// initialize -> tools/list -> tools/call echo -> a streamed tools/call with progress
// notifications. Prints one JSON object with what it saw; the Rust test asserts on it.
// Usage: node mcp-client.mjs <server URL> [bearer token]
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const [url, token] = process.argv.slice(2);
const requestInit = token ? { headers: { Authorization: `Bearer ${token}` } } : undefined;
const transport = new StreamableHTTPClientTransport(new URL(url), { requestInit });
const client = new Client({ name: "authgate-e2e", version: "1.0.0" });

const out = {};
await client.connect(transport);
out.sessionId = transport.sessionId ?? null;
out.protocolVersion = transport.protocolVersion ?? null;
out.serverName = client.getServerVersion()?.name ?? null;

const tools = await client.listTools();
out.tools = tools.tools.map((t) => t.name);

const echo = await client.callTool({ name: "echo", arguments: { message: "hello through authgate" } });
out.echo = echo.content?.[0]?.text ?? null;

const t0 = Date.now();
const progress = [];
const long = await client.callTool(
  { name: "trigger-long-running-operation", arguments: { duration: 2, steps: 4 } },
  undefined,
  { onprogress: (p) => progress.push({ progress: p.progress, at: Date.now() - t0 }) },
);
out.long = { text: long.content?.[0]?.text ?? null, doneAt: Date.now() - t0, progress };

await transport.terminateSession();
await client.close();
console.log(JSON.stringify(out));
