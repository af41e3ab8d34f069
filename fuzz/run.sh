#!/usr/bin/env bash
# Builds the fuzz targets with libFuzzer's coverage instrumentation (stable Rust: the flags
# cargo-fuzz passes, without a sanitizer) and runs each for N seconds (default 30) from the
# seeds in fuzz/seeds plus what earlier runs found (fuzz/corpus, not committed). A crash or
# panic stops the run with the input saved under fuzz/artifacts/<target>/.
#
#   fuzz/run.sh            # every target, 30 s each
#   fuzz/run.sh 3600 oauth_request   # one target for an hour
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-30}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(config oauth_request cimd_document sealed_cookie mcp_check)

# An explicit --target keeps the instrumentation out of build scripts and proc macros.
host=$(rustc -vV | sed -n 's/^host: //p')
export RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares"
export CARGO_TARGET_DIR=${FUZZ_TARGET_DIR:-$PWD/target}
# Not --locked: the lock follows the main crate's dependencies, which tests/run.sh pins.
cargo build --release --target "$host" --bins

for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t"
  echo "fuzz: $t for ${seconds}s"
  "$CARGO_TARGET_DIR/$host/release/$t" "corpus/$t" "seeds/$t" \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 \
    -artifact_prefix="artifacts/$t/" -print_final_stats=1 2>"artifacts/$t/log" \
    || { tail -n 60 "artifacts/$t/log"; echo "fuzz: $t failed; the input is in fuzz/artifacts/$t/" >&2; exit 1; }
  grep -E "^stat::number_of_executed_units|^#[0-9]+.*DONE" "artifacts/$t/log" | tail -n 2
done
