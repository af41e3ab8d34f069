#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints (benches compile), every test (unit,
# integration against the real binary, and end to end with real MCP software from npm), and
# a short run of every fuzz target.
set -euo pipefail
cd "$(dirname "$0")/.."

for tool in cmake node npm cargo chromium; do
  if ! command -v "$tool" >/dev/null; then
    echo "tests: '$tool' is missing (on Debian: apt-get install -y cmake nodejs npm chromium; Rust via rustup)" >&2
    exit 1
  fi
done

# The pinned npm packages the end-to-end tests run (MCP server, SDK client, OIDC provider).
if [ ! -f tests/e2e/node_modules/.package-lock.json ] \
  || [ tests/e2e/package-lock.json -nt tests/e2e/node_modules/.package-lock.json ]; then
  npm ci --prefix tests/e2e --no-audit --no-fund
fi

cargo fmt --check
# --all-targets compiles the benchmarks too: they keep compiling without a release build.
cargo clippy --all-targets --locked -- -D warnings
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --locked --no-fail-fast
else
  cargo test --locked --no-fail-fast
fi

# Every fuzz target for FUZZ_SECONDS (default 30) each; fuzz/run.sh runs them longer.
bash fuzz/run.sh "${FUZZ_SECONDS:-30}"
