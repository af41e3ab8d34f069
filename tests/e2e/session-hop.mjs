// One MCP session hopping between gateways: the official TypeScript SDK client initializes
// through the first URL, then each round reconnects to the same session (the transport's
// `sessionId`) through the next URL in turn and calls `echo`; the last one ends the session.
// Behind the gateways, the session must reach the upstream replica that created it every
// time, or the server answers "session not found" and the SDK throws.
// Usage: node session-hop.mjs <url A> <url B> [rounds]. Prints one JSON object.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const [a, b, roundsArg] = process.argv.slice(2);
const urls = [a, b];
const rounds = Number(roundsArg ?? 6);

const first = new StreamableHTTPClientTransport(new URL(a));
const client = new Client({ name: "authgate-session-hop", version: "1.0.0" });
await client.connect(first);
const sessionId = first.sessionId;
const out = { sessionId, tools: (await client.listTools()).tools.length, echoes: [] };

let last = first;
for (let i = 1; i <= rounds; i++) {
  const url = urls[i % 2];
  const transport = new StreamableHTTPClientTransport(new URL(url), { sessionId });
  const hop = new Client({ name: "authgate-session-hop", version: "1.0.0" });
  await hop.connect(transport); // a known session id: no new initialization
  const r = await hop.callTool({ name: "echo", arguments: { message: `hop ${i}` } });
  out.echoes.push({ via: i % 2 === 0 ? "A" : "B", text: r.content?.[0]?.text ?? null, session: transport.sessionId });
  last = transport;
}
await last.terminateSession();
out.terminated = true;
console.log(JSON.stringify(out));
process.exit(0);
