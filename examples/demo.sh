#!/usr/bin/env bash
# Starts the demo: the unmodified MCP "everything" server (Streamable HTTP, 127.0.0.1:3001
# only, so nothing reaches it around the gateway) and authgate in front of it on port 8080
# with examples/demo.toml (OAuth, local user demo/demo). Ctrl-C stops both.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

if ! command -v cmake >/dev/null; then
  echo "demo: cmake is needed to build pingora (apt-get install -y cmake)" >&2
  exit 1
fi
if [ ! -x tests/e2e/node_modules/.bin/mcp-server-everything ]; then
  echo "demo: installing the pinned MCP server from npm (tests/e2e)..." >&2
  npm ci --prefix tests/e2e --silent
fi
cargo build --quiet --bin authgate

PORT=3001 node --import ./examples/loopback-only.mjs \
  tests/e2e/node_modules/@modelcontextprotocol/server-everything/dist/index.js streamableHttp \
  >"${TMPDIR:-/tmp}/authgate-demo-mcp.log" 2>&1 &
mcp_pid=$!
trap 'kill $mcp_pid 2>/dev/null || true' EXIT INT TERM

for _ in $(seq 1 50); do
  (exec 3<>/dev/tcp/127.0.0.1/3001) 2>/dev/null && break
  sleep 0.2
done

# The URL must be the config's public_url exactly: clients compare the protected resource
# the gateway names with the URL they were given, and `localhost` is not `127.0.0.1`.
public_url=$(sed -n 's/^public_url = "\(.*\)"/\1/p' examples/demo.toml)
cat <<MSG

  authgate demo
  MCP server URL for your client:  ${public_url}/mcp
                                   (exactly this: http://localhost:8080/mcp will not work)
  sign in as:                      demo / demo
  health:                          ${public_url}/healthz

MSG
target="${CARGO_TARGET_DIR:-$root/target}"
"$target/debug/authgate" run --config examples/demo.toml
