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
# PostgreSQL's server binaries (Debian's postgresql package): the shared-store tests run a
# real server (tests/pg.sh, tests/common/postgres.rs).
if ! command -v initdb >/dev/null && ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then
  echo "tests: PostgreSQL's 'initdb' is missing (on Debian: apt-get install -y postgresql)" >&2
  exit 1
fi

# The pinned npm packages the end-to-end tests run (MCP server, SDK client, OIDC provider).
if [ ! -f tests/e2e/node_modules/.package-lock.json ] \
  || [ tests/e2e/package-lock.json -nt tests/e2e/node_modules/.package-lock.json ]; then
  npm ci --prefix tests/e2e --no-audit --no-fund
fi

cargo fmt --check
# --all-targets compiles the benchmarks too: they keep compiling without a release build.
cargo clippy --all-targets --locked -- -D warnings
# One PostgreSQL server for the whole run, on a unix socket in /tmp: each test that needs
# one gets a fresh database in it (AUTHGATE_TEST_POSTGRES). Stopped on exit, or by its
# watcher should this script be killed.
# (Assigned first: `eval "$(...)"` alone would not stop `set -e` when it fails.)
pg_env=$(bash tests/pg.sh start $$)
eval "$pg_env"
trap 'bash tests/pg.sh stop "$AUTHGATE_TEST_POSTGRES_DIR"' EXIT
# The OAuth suites run a second time with the shared PostgreSQL store under the gateway
# (tests/common/config.rs adds [store] when AUTHGATE_TEST_BACKEND=postgres): every flow,
# token, API key and connected account then lives in PostgreSQL. The suites about the
# embedded file itself (modes, damage, backup, offline commands) run on redb only.
pg_suites='oauth oauth_e2e api_keys cimd cli_login connected_account credentials mcp_sdk policy signed_identity upstream_oauth user_account'
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --locked --no-fail-fast
  filter=$(printf 'binary(%s) | ' $pg_suites)
  AUTHGATE_TEST_BACKEND=postgres cargo nextest run --locked --no-fail-fast \
    -E "(${filter% | }) & !test(=api_keys_are_made_offline_on_a_stopped_gateways_store)"
else
  cargo test --locked --no-fail-fast
  for suite in $pg_suites; do
    AUTHGATE_TEST_BACKEND=postgres cargo test --locked --no-fail-fast --test "$suite" -- \
      --skip api_keys_are_made_offline_on_a_stopped_gateways_store
  done
fi
bash tests/pg.sh stop "$AUTHGATE_TEST_POSTGRES_DIR"
trap - EXIT

# Every fuzz target for FUZZ_SECONDS (default 30) each; fuzz/run.sh runs them longer.
bash fuzz/run.sh "${FUZZ_SECONDS:-30}"
