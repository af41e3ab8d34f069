#!/usr/bin/env bash
# Replicas benchmark: requests per second through one authgate and through two replicas on
# one PostgreSQL store, same machine, same upstream, one run, interleaved repetitions.
#
#   benches/replicas.sh                       # DURATION=10 CONNS=64 REPS=3 THREADS=1
#
# Targets (a POST of an MCP tools/call body with a valid bearer token, keep-alive; the
# upstream stand-in is nginx answering a fixed JSON body):
#   one_redb   wrk → one authgate on its embedded store
#   one_pg     wrk → one authgate on the PostgreSQL store
#   two_pg     two wrk (CONNS/2 connections each) → two authgate replicas on the same
#              PostgreSQL store, at once; the row is their sum
# Each authgate runs THREADS worker threads. The token is cached after its first use, so
# the store is not on the steady-state path: what the rows compare is the replicas' CPU.
# Output: a Markdown table on stdout; raw wrk output under $OUT (default target/replicas/<ts>).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

DURATION=${DURATION:-10}
CONNS=${CONNS:-64}
REPS=${REPS:-3}
THREADS=${THREADS:-1}
OUT=${OUT:-$root/target/replicas/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
target_dir=${CARGO_TARGET_DIR:-$root/target}

need=()
command -v wrk >/dev/null || need+=(wrk)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || command -v initdb >/dev/null || need+=(postgresql)
if [ ${#need[@]} -gt 0 ]; then
  echo "replicas: installing ${need[*]}" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >&2
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
cargo build --release --quiet --bin authgate
AUTHGATE=$target_dir/release/authgate

pids=()
pg_dir=
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -z "$pg_dir" ] || bash tests/pg.sh stop "$pg_dir" >/dev/null 2>&1 || true
}
trap cleanup EXIT INT TERM

source "$root/benches/lib.sh"

pg_env=$(bash tests/pg.sh start $$)
eval "$pg_env"
pg_dir=$AUTHGATE_TEST_POSTGRES_DIR
psql_bin=$(dirname "$(readlink -f "$(command -v initdb || ls /usr/lib/postgresql/*/bin/initdb | tail -1)")")/psql
[ -x "$psql_bin" ] || psql_bin=psql
"$psql_bin" -X -q -h "$AUTHGATE_TEST_POSTGRES_DIR" -U postgres -d postgres -c 'CREATE DATABASE bench' >/dev/null
database="$AUTHGATE_TEST_POSTGRES dbname=bench"

UP=$(free_port); ONE=$(free_port); P1=$(free_port); P2=$(free_port)
work=$(mktemp -d)
body='{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"Echo: hello from the upstream stand-in"}],"isError":false}}'
cat >"$work/up.conf" <<NGX
worker_processes 1; daemon off; pid $work/up.pid; error_log $work/up.err;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  server { listen 127.0.0.1:$UP; location / { default_type application/json; return 200 '$body'; } } }
NGX
"$NGINX" -c "$work/up.conf" & pids+=($!)

hash=$(printf 'bench-password' | "$AUTHGATE" hash-password)
key=$(head -c 32 /dev/urandom | base64)
conf() { # $1: port, $2: public port, $3: extra TOML
  cat >"$work/authgate-$1.toml" <<TOML
[server]
listen = ["127.0.0.1:$1"]
public_url = "http://127.0.0.1:$2"
data_dir = "$work/data-$1"
threads = $THREADS
[auth]
session_key = "$key"
[[scope]]
name = "mcp:tools"
[[upstream]]
name = "bench"
path = "/mcp"
url = "http://127.0.0.1:$UP/mcp"
scopes = ["mcp:tools"]
[[provider]]
id = "local"
kind = "local"
[[provider.users]]
username = "bench"
password_hash = "$hash"
[[client]]
client_id = "bench"
redirect_uris = ["http://127.0.0.1/cb"]
trusted = true
$3
TOML
}
store="[store]
kind = \"postgres\"
url = \"$database\""
conf "$ONE" "$ONE" ""
conf "$P1" "$P1" "$store"
conf "$P2" "$P1" "$store"
declare -A pid
for p in $ONE $P1 $P2; do
  RUST_LOG=warn "$AUTHGATE" run --config "$work/authgate-$p.toml" 2>"$work/authgate-$p.log" & pids+=($!)
  pid[$p]=$!
  wait_port "$p"
done
wait_port "$UP"

lua() { # $1: token
  cat <<LUA
wrk.method = "POST"
wrk.body = '{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hello"}}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
wrk.headers["Authorization"] = "Bearer $1"
wrk.headers["MCP-Protocol-Version"] = "2025-11-25"
LUA
}
lua "$(bench_token "$ONE" /mcp)" >"$work/one.lua"
lua "$(bench_token "$P1" /mcp)" >"$work/pg.lua"   # issued by P1, honoured by P2 (one issuer)
for p in $ONE $P1 $P2; do
  s=$work/pg.lua; [ "$p" = "$ONE" ] && s=$work/one.lua
  status=$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$p/mcp" \
    -H "Authorization: Bearer $(sed -n 's/.*Bearer \(.*\)"$/\1/p' "$s")" -H 'Content-Type: application/json' -d '{}')
  [ "$status" = 200 ] || { echo "replicas: authgate on $p answered $status to a valid token" >&2; exit 1; }
done

req_s() { awk '/Requests\/sec/ {print $2}' "$1"; }
non2xx() { awk '/Non-2xx/ {print $NF}' "$1"; }
results=$OUT/results.tsv
printf 'target\trep\treq_s\tnon2xx\n' >"$results"
half=$((CONNS / 2))
for t in one_redb one_pg two_pg; do  # warm-up, unmeasured
  case $t in
    one_redb) wrk -t2 -c"$CONNS" -d2s -s "$work/one.lua" "http://127.0.0.1:$ONE/mcp" >/dev/null ;;
    one_pg) wrk -t2 -c"$CONNS" -d2s -s "$work/pg.lua" "http://127.0.0.1:$P1/mcp" >/dev/null ;;
    two_pg) wrk -t1 -c"$half" -d2s -s "$work/pg.lua" "http://127.0.0.1:$P2/mcp" >/dev/null ;;
  esac
done
for rep in $(seq 1 "$REPS"); do
  for t in one_redb one_pg two_pg; do
    raw=$OUT/$t-r$rep.txt
    case $t in
      one_redb) wrk -t2 -c"$CONNS" -d"${DURATION}s" -s "$work/one.lua" "http://127.0.0.1:$ONE/mcp" >"$raw" ;;
      one_pg) wrk -t2 -c"$CONNS" -d"${DURATION}s" -s "$work/pg.lua" "http://127.0.0.1:$P1/mcp" >"$raw" ;;
      two_pg)
        wrk -t1 -c"$half" -d"${DURATION}s" -s "$work/pg.lua" "http://127.0.0.1:$P1/mcp" >"$raw.a" &
        first=$!
        wrk -t1 -c"$half" -d"${DURATION}s" -s "$work/pg.lua" "http://127.0.0.1:$P2/mcp" >"$raw.b"
        wait "$first"
        { cat "$raw.a"; echo; cat "$raw.b"; } >"$raw"
        ;;
    esac
    if [ "$t" = two_pg ]; then
      r=$(awk -v a="$(req_s "$raw.a")" -v b="$(req_s "$raw.b")" 'BEGIN {printf "%.0f", a+b}')
      na=$(non2xx "$raw.a"); nb=$(non2xx "$raw.b"); n=$(( ${na:-0} + ${nb:-0} ))
    else
      r=$(req_s "$raw"); n=$(non2xx "$raw"); n=${n:-0}
    fi
    printf '%s\t%s\t%s\t%s\n' "$t" "$rep" "$r" "${n:-0}" >>"$results"
  done
done

echo "| target | req/s (median of $REPS) | min–max | vs one_redb |"
echo "|---|---|---|---|"
base=
for t in one_redb one_pg two_pg; do
  runs=$(awk -v t="$t" '$1==t {print $3}' "$results" | sort -n)
  med=$(printf '%s\n' "$runs" | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  lo=$(printf '%s\n' "$runs" | head -1); hi=$(printf '%s\n' "$runs" | tail -1)
  [ -n "$base" ] || base=$med
  printf '| %s | %.0f | %.0f–%.0f | %.2f× |\n' "$t" "$med" "$lo" "$hi" "$(awk -v a="$med" -v b="$base" 'BEGIN {print a/b}')"
done
bad=$(awk 'NR>1 && $4 > 0' "$results")
[ -z "$bad" ] || { echo "replicas: non-2xx answers during the runs:" >&2; echo "$bad" >&2; exit 1; }
echo "raw: $OUT" >&2
