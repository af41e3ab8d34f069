// The official TypeScript SDK client (v1) with a bearer token, through authgate with
// policies: lists the tools, calls an allowed tool, a denied one, and the allowed one again
// in the same session. Prints one JSON object with what it saw; the Rust test asserts on it.
// Usage: node policy-client.mjs <server URL> <bearer token> <allowed tool> <denied tool>
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const [url, token, allowed, denied] = process.argv.slice(2);
const requestInit = { headers: { Authorization: `Bearer ${token}` } };
const transport = new StreamableHTTPClientTransport(new URL(url), { requestInit });
const client = new Client({ name: "authgate-policy-e2e", version: "1.0.0" });

const out = {};
await client.connect(transport);
out.sessionId = transport.sessionId ?? null;
out.tools = (await client.listTools()).tools.map((t) => t.name);
const call = async (name) => {
  try {
    const r = await client.callTool({ name, arguments: { message: "hi" } });
    return { ok: true, text: r.content?.[0]?.text ?? null };
  } catch (e) {
    return { ok: false, code: e.code ?? null, message: String(e.message) };
  }
};
out.first = await call(allowed);
out.denied = await call(denied);
out.again = await call(allowed);
out.sessionAfter = transport.sessionId ?? null;
await transport.terminateSession();
await client.close();
console.log(JSON.stringify(out));
