// An upstream that verifies authgate's signed identity assertion, with Node.js alone (no
// packages): the `X-Authgate-Assertion` JWT (EdDSA) is checked against the keys authgate
// publishes at <issuer>/.well-known/jwks.json, and its issuer, audience and expiry. Answers
// 200 with the verified claims, or 401 with why. Use it as a model for your own server.
//
//   ISSUER=https://gw.example.com AUDIENCE=https://gw.example.com/mcp PORT=3002 \
//     node examples/verify-assertion.mjs
//
// (or with the listening socket inherited as fd $LISTEN_FD, as authgate's tests start it)
import http from "node:http";
import { createPublicKey, verify } from "node:crypto";

const issuer = process.env.ISSUER;
const audience = process.env.AUDIENCE;
const header = (process.env.HEADER ?? "x-authgate-assertion").toLowerCase();
if (!issuer || !audience) {
  console.error("set ISSUER and AUDIENCE");
  process.exit(2);
}

// The JWKS, fetched again when an assertion names a key we do not have (after a rotation).
let keys = new Map();
async function key(kid) {
  if (!keys.has(kid)) {
    const r = await fetch(`${issuer}/.well-known/jwks.json`);
    const { keys: list } = await r.json();
    keys = new Map(list.map((k) => [k.kid, createPublicKey({ key: k, format: "jwk" })]));
  }
  return keys.get(kid);
}

const b64 = (s) => Buffer.from(s, "base64url");

async function check(jwt) {
  const parts = (jwt ?? "").split(".");
  if (parts.length !== 3) throw new Error("no assertion");
  const head = JSON.parse(b64(parts[0]));
  if (head.alg !== "EdDSA") throw new Error(`unexpected alg ${head.alg}`);
  const k = await key(head.kid);
  if (!k) throw new Error(`unknown key ${head.kid}`);
  if (!verify(null, Buffer.from(`${parts[0]}.${parts[1]}`), k, b64(parts[2]))) {
    throw new Error("bad signature");
  }
  const claims = JSON.parse(b64(parts[1]));
  const now = Math.floor(Date.now() / 1000);
  if (claims.iss !== issuer) throw new Error(`issuer ${claims.iss}`);
  if (claims.aud !== audience) throw new Error(`audience ${claims.aud}`);
  if (!(claims.exp > now)) throw new Error("expired");
  return claims;
}

const server = http.createServer(async (req, res) => {
  try {
    const claims = await check(req.headers[header]);
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ ok: true, claims }));
  } catch (e) {
    res.writeHead(401, { "content-type": "application/json" });
    res.end(JSON.stringify({ ok: false, error: e.message }));
  }
});
const where = process.env.LISTEN_FD
  ? [{ fd: Number(process.env.LISTEN_FD) }]
  : [Number(process.env.PORT ?? 3002), "127.0.0.1"];
server.listen(...where, () => console.log(`READY ${server.address().port}`));
