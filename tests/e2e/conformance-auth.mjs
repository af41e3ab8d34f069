// Runs the official MCP conformance suite's `authorization` family against authgate and
// drives its login step: the suite prints an authorization URL and waits for the browser to
// come back to its callback server; headless Chromium (chromium.mjs) signs in and consents
// and lands on that callback. Prints one JSON object: { passed, failed, checks: [{ id, name, status, error }] }.
//
// Usage (with Node 22, which the suite needs):
//   node conformance-auth.mjs --issuer <URL> --client-id <id> --resource <URL> --port <P>
//       --fill '<json for chromium.mjs>'
// With LISTEN_FD set, the suite's callback server listens on that inherited socket (bound by
// the caller to 127.0.0.1:<P>) instead of binding <P> itself.
import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { signIn } from "./chromium.mjs";

const { values: a } = parseArgs({
  options: {
    issuer: { type: "string" },
    "client-id": { type: "string" },
    resource: { type: "string" },
    port: { type: "string" },
    fill: { type: "string", default: "{}" },
  },
});
const here = dirname(fileURLToPath(import.meta.url));
const suite = join(here, "node_modules/@modelcontextprotocol/conformance/dist/index.js");
const out = mkdtempSync(join(tmpdir(), "authgate-conformance-"));
const callback = `http://127.0.0.1:${a.port}/callback`;

const inherit = process.env.LISTEN_FD
  ? { args: ["--import", join(here, "../../examples/loopback-only.mjs")], fd: Number(process.env.LISTEN_FD) }
  : { args: [], fd: "ignore" };
const child = spawn(process.execPath, [
  ...inherit.args, suite, "authorization", "--url", a.issuer, "--client-id", a["client-id"],
  "--resource", a.resource, "--port", a.port, "-o", out,
], { stdio: ["ignore", "pipe", "pipe", inherit.fd] });

let log = "";
let browsing = null;
const onData = (chunk) => {
  log += chunk;
  // The suite prints the authorization URL on its own line, then waits for the callback.
  const m = log.match(new RegExp(`^(${a.issuer.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}/authorize\\?\\S+)$`, "m"));
  if (m && !browsing) {
    browsing = signIn(m[1], { stopAt: callback, fill: JSON.parse(a.fill) })
      .catch((e) => { log += `\nBROWSER ERROR: ${e.message}\n`; child.kill(); });
  }
};
child.stdout.on("data", onData);
child.stderr.on("data", (c) => { log += c; });
const timer = setTimeout(() => child.kill(), 120_000);
const code = await new Promise((resolve) => child.on("exit", resolve));
clearTimeout(timer);
if (browsing) await browsing.catch(() => {});

const checks = [];
for (const dir of readdirSync(out)) {
  for (const c of JSON.parse(readFileSync(join(out, dir, "checks.json"), "utf8"))) {
    checks.push({ scenario: dir.replace(/-\d{4}-\d\d-\d\dT.*$/, ""), id: c.id, name: c.name, status: c.status, error: c.errorMessage ?? null });
  }
}
const passed = checks.filter((c) => c.status === "SUCCESS").length;
const failed = checks.filter((c) => c.status === "FAILURE").length;
console.log(JSON.stringify({ exitCode: code, passed, failed, checks, log: failed || !checks.length ? log : undefined }));
