// A client of authgate's TLS listener, trusting only the test CA: one request over HTTP/1.1
// and, on one HTTP/2 connection (ALPN), the authorization server metadata and an SSE stream
// read as it arrives. Prints one JSON object with what was negotiated and received, and the
// certificate's fingerprint (so a test sees a reloaded certificate).
// Usage: node tls-client.mjs <https base URL> <CA PEM file> <SSE path>
import http2 from "node:http2";
import https from "node:https";
import tls from "node:tls";
import { once } from "node:events";
import { readFileSync } from "node:fs";

const [base, caPath, ssePath] = process.argv.slice(2);
const ca = readFileSync(caPath);
// The test certificates name localhost; the gateway listens on another loopback address.
const opts = { ca, servername: "localhost", checkServerIdentity: (_h, cert) => tls.checkServerIdentity("localhost", cert) };

const h1 = await new Promise((resolve, reject) => {
  https
    .get(`${base}/healthz`, { ...opts, ALPNProtocols: ["http/1.1"], agent: false }, (res) => {
      const alpn = res.socket.alpnProtocol;
      const fingerprint = res.socket.getPeerCertificate().fingerprint256;
      let body = "";
      res.on("data", (c) => (body += c));
      res.on("end", () => resolve({ status: res.statusCode, alpn, fingerprint, body }));
    })
    .on("error", reject);
});

const session = http2.connect(base, opts);
await once(session, "connect");
function request(headers) {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const req = session.request(headers);
    const chunks = [];
    let status = 0;
    req.on("response", (h) => (status = h[":status"]));
    req.on("data", (c) => chunks.push({ at: Date.now() - started, text: c.toString() }));
    req.on("end", () => resolve({ status, chunks, endedAt: Date.now() - started }));
    req.on("error", reject);
    req.end();
  });
}
const metadata = await request({ ":path": "/.well-known/oauth-authorization-server" });
const sse = await request({ ":path": ssePath, accept: "text/event-stream" });
const out = {
  h1,
  h2: {
    alpn: session.alpnProtocol,
    metadata: { status: metadata.status, body: JSON.parse(metadata.chunks.map((c) => c.text).join("")) },
    sse: {
      status: sse.status,
      events: sse.chunks.map((c) => c.text).join("").split("\n").filter((l) => l.startsWith("data:")),
      firstAt: sse.chunks[0]?.at ?? null,
      endedAt: sse.endedAt,
    },
  },
};
session.close();
console.log(JSON.stringify(out));
