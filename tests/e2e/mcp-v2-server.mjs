// An MCP server built with the official TypeScript SDK v2 (`@modelcontextprotocol/server`),
// which serves the 2026-07-28 revision (stateless, per-request metadata) and falls back to
// stateless 2025-era serving. One tool, `echo`. Prints `READY <port>` when listening.
// Usage: PORT=<port> node mcp-v2-server.mjs (127.0.0.1), or with the listening socket
// inherited as fd $LISTEN_FD (how the Rust tests start it).
import http from "node:http";
import { createMcpHandler, McpServer } from "@modelcontextprotocol/server";
import { toNodeHandler } from "@modelcontextprotocol/node";
import * as z from "zod";

const handler = createMcpHandler(() => {
  const server = new McpServer({ name: "v2-echo", version: "1.0.0" });
  server.registerTool("echo", { description: "Echoes a message", inputSchema: { message: z.string() } }, async ({ message }) => ({
    content: [{ type: "text", text: `Echo: ${message}` }],
  }));
  return server;
});
const where = process.env.LISTEN_FD
  ? [{ fd: Number(process.env.LISTEN_FD) }]
  : [Number(process.env.PORT), "127.0.0.1"];
const server = http.createServer(toNodeHandler(handler));
server.listen(...where, () => console.log(`READY ${server.address().port}`));
