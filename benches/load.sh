#!/usr/bin/env bash
# Load benchmark: authgate against the alternatives, same machine, same upstream, same load
# generator, one run. Loopback only; bounded in time; every process it starts is stopped by
# PID on exit.
#
#   benches/load.sh                      # defaults below
#   DURATION=10 CONNS="32 256" REPS=3 PIN=1 benches/load.sh
#   PROFILE=authgate benches/load.sh     # also a perf profile (and flamegraph) of one target
#
# Targets (a request is a POST of an MCP tools/call body with a bearer token; the upstream
# stand-in is nginx answering a fixed 295-byte JSON body, keep-alive everywhere):
#   direct       wrk → upstream
#   pingora      wrk → bare Pingora passthrough (examples/passthrough.rs) → upstream
#   nginx        wrk → nginx reverse proxy → upstream
#   nginx_authreq wrk → nginx with auth_request → upstream; each request first asks an auth
#                service (a stand-in: an nginx location on CPU 1 comparing the bearer token to
#                the valid one, the cheapest auth service there is) — the oauth2-proxy setup
#   authgate     wrk → authgate, valid token (one hash + cache hit) → upstream
#   authgate_public wrk → authgate, a route without auth (authgate's path minus the bearer check)
#   authgate_bad wrk → authgate, unknown token (answered 401 by authgate)
# And an MCP row pair against a real MCP server (server-everything, Streamable HTTP, its
# `echo` tool answered as SSE), one session each, at the same connection counts:
#   mcp_direct   wrk → server-everything
#   mcp_authgate wrk → authgate, valid token for that route → server-everything
# and the cost of policies on that route (a copy of it with two rules: one tool denied to
# everyone, the rest allowed to the bench user, so every call is decided and every tool list
# filtered):
#   mcp_call_policy  tools/call echo through the policy route (compare with mcp_authgate)
#   mcp_list         tools/list through authgate, no policy
#   mcp_list_policy  tools/list through the policy route: the SSE result filtered
# (MCP=0 skips them; they need `npm ci --prefix tests/e2e`, which tests/run.sh does.)
# With PIN=1 (default) the proxy runs on CPU 0 with 1 thread/worker, and wrk and the
# upstream on CPU 1, which is the cleaner comparison on a 2-core machine.
#   authgate_<alloc> with ALLOCATORS="glibc jemalloc mimalloc": authgate, valid token, that malloc
# ONLY="direct pingora authgate" runs a subset (direct and pingora are the ratios' bases;
# mcp_direct for the MCP rows).
# Output: a Markdown table on stdout; raw wrk output under $OUT (default target/load/<ts>).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

DURATION=${DURATION:-10}
CONNS=${CONNS:-"32 256"}
REPS=${REPS:-3}
PIN=${PIN:-1}
MCP=${MCP:-1}
WARMUP=${WARMUP:-2}
OUT=${OUT:-$root/target/load/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
target_dir=${CARGO_TARGET_DIR:-$root/target}

need=()
command -v wrk >/dev/null || need+=(wrk)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
for a in ${ALLOCATORS:-}; do
  case $a in
    jemalloc) ls /usr/lib/*/libjemalloc.so.2 >/dev/null 2>&1 || need+=(libjemalloc2) ;;
    mimalloc) ls /usr/lib/*/libmimalloc.so.2 >/dev/null 2>&1 || need+=(libmimalloc2.0) ;;
  esac
done
command -v perf >/dev/null || [ -z "${PROFILE:-}" ] || need+=(linux-perf)
if [ ${#need[@]} -gt 0 ]; then
  echo "load: installing ${need[*]}" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >&2
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

cargo build --release --quiet --bin authgate --example passthrough
AUTHGATE=$target_dir/release/authgate
PASSTHROUGH=$target_dir/release/examples/passthrough

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

if [ "$PIN" = 1 ]; then
  proxy_cpu=(taskset -c 0); load_cpu=(taskset -c 1); proxy_threads=1
else
  proxy_cpu=(); load_cpu=(); proxy_threads=2
fi

source "$root/benches/lib.sh"

UP=$(free_port); NGX=$(free_port); PGR=$(free_port); AG=$(free_port); NAR=$(free_port); EV=$(free_port)
work=$(mktemp -d)
body='{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"Echo: hello from the upstream stand-in, a fixed body of about three hundred bytes for every request. padding padding padding padding padding padding padding padding"}],"isError":false}}'

# The upstream stand-in (CPU 1) and the nginx reverse proxy (CPU 0), in one nginx config
# each so they can be pinned apart.
cat >"$work/up.conf" <<NGX
worker_processes 1; daemon off; pid $work/up.pid; error_log $work/up.err;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  server { listen 127.0.0.1:$UP;
    location = /auth { if (\$http_authorization != "Bearer \$valid_token") { return 401; } return 204; }
    include $work/token.conf;
    location / { default_type application/json; return 200 '$body'; } } }
NGX
cat >"$work/ngx.conf" <<NGX
worker_processes $proxy_threads; daemon off; pid $work/ngx.pid; error_log $work/ngx.err;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  upstream up { server 127.0.0.1:$UP; keepalive 512; }
  server { listen 127.0.0.1:$NGX; location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; } }
  server { listen 127.0.0.1:$NAR;
    location / { auth_request /_auth; proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; }
    location = /_auth { internal; proxy_pass http://up/auth; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_pass_request_body off; proxy_set_header Content-Length ""; } } }
NGX
echo 'set $valid_token "none-yet";' >"$work/token.conf"
"${load_cpu[@]}" "$NGINX" -c "$work/up.conf" & pids+=($!)
"${proxy_cpu[@]}" "$NGINX" -c "$work/ngx.conf" & pids+=($!)
"${proxy_cpu[@]}" "$PASSTHROUGH" "127.0.0.1:$PGR" "127.0.0.1:$UP" "$proxy_threads" 2>"$work/pingora.log" & pids+=($!)

# authgate: one protected upstream, a local user and a trusted client, so a token can be
# obtained the way a client would (authorize → login → code → token).
hash=$(printf 'bench-password' | "$AUTHGATE" hash-password)
cat >"$work/policy.toml" <<'TOML'
[[rule]]
name = "nobody reads the environment"
effect = "deny"
upstreams = ["everything_policy"]
tools = ["get-env"]

[[rule]]
name = "the bench user uses the tools"
effect = "allow"
upstreams = ["everything_policy"]
users = ["local:bench"]
tools = ["*"]
TOML
authgate_conf() { # $1: port → the config of an authgate on it, with its own store
  cat >"$work/authgate-$1.toml" <<TOML
[server]
listen = ["127.0.0.1:$1"]
public_url = "http://127.0.0.1:$1"
data_dir = "$work/data-$1"
threads = $proxy_threads
[[scope]]
name = "mcp:tools"
[[upstream]]
name = "bench"
path = "/mcp"
url = "http://127.0.0.1:$UP/mcp"
scopes = ["mcp:tools"]
[[upstream]]
name = "public"
path = "/public"
url = "http://127.0.0.1:$UP/mcp"
auth = "none"
[[upstream]]
name = "everything"
path = "/everything"
url = "http://127.0.0.1:$EV/mcp"
scopes = ["mcp:tools"]
[[upstream]]
name = "everything_policy"
path = "/everything-policy"
url = "http://127.0.0.1:$EV/mcp"
scopes = ["mcp:tools"]
[policy]
files = ["$work/policy.toml"]
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
TOML
}
authgate_conf "$AG"
RUST_LOG=warn "${proxy_cpu[@]}" "$AUTHGATE" run --config "$work/authgate-$AG.toml" 2>"$work/authgate.log" & pids+=($!)
ag_pid=$!
# The same authgate under other allocators (ALLOCATORS="glibc jemalloc mimalloc", preloaded
# from Debian's libjemalloc2 / libmimalloc2.0; "glibc" is a fresh plain process serving only
# its own target, the fair control): an interleaved A/B of malloc implementations.
declare -A alloc_port alloc_pid
for a in ${ALLOCATORS:-}; do
  lib=
  if [ "$a" != glibc ]; then  # "glibc": a second plain process, the A/B's control
    lib=$(ls /usr/lib/*/lib"$a".so.2 2>/dev/null | head -1)
    [ -n "$lib" ] || { echo "load: lib$a.so.2 not found (apt-get install libjemalloc2 libmimalloc2.0)" >&2; exit 1; }
  fi
  alloc_port[$a]=$(free_port)
  authgate_conf "${alloc_port[$a]}"
  LD_PRELOAD=$lib RUST_LOG=warn "${proxy_cpu[@]}" "$AUTHGATE" run --config "$work/authgate-${alloc_port[$a]}.toml" \
    2>"$work/authgate-$a.log" & pids+=($!)
  alloc_pid[$a]=$!
done
for p in $UP $NGX $PGR $AG "${alloc_port[@]}"; do wait_port "$p"; done

token_for() { # $1: the route's path, $2: authgate's port; a token bound to it
  local port=${2:-$AG}
  bench_token "$port" "$1"
}
token=$(token_for /mcp)
[ -n "$token" ] || { echo "could not obtain a token" >&2; exit 1; }
# The auth_request stand-in accepts exactly this token.
printf 'set $valid_token "%s";\n' "$token" >"$work/token.conf"
"$NGINX" -c "$work/up.conf" -s reload
sleep 1

rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
idle_rss=$(rss_kb "$ag_pid")

call='{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hello"}}}'
lua() { # $1: token, $2: extra header lines, $3: MCP revision, $4: body (a tools/call)
  cat <<LUA
wrk.method = "POST"
wrk.body = '${4:-$call}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
wrk.headers["Authorization"] = "Bearer $1"
wrk.headers["MCP-Protocol-Version"] = "${3:-2025-11-25}"
${2:-}
LUA
}
lua "$token" >"$work/good.lua"
lua "ag_at_not_a_token_not_a_token_not_a_token_xxxxx" >"$work/bad.lua"

declare -A url=( [direct]="http://127.0.0.1:$UP/mcp" [pingora]="http://127.0.0.1:$PGR/mcp" [nginx]="http://127.0.0.1:$NGX/mcp"
                 [nginx_authreq]="http://127.0.0.1:$NAR/mcp"
                 [authgate]="http://127.0.0.1:$AG/mcp" [authgate_public]="http://127.0.0.1:$AG/public"
                 [authgate_bad]="http://127.0.0.1:$AG/mcp" )
declare -A script=( [direct]=good [pingora]=good [nginx]=good [nginx_authreq]=good [authgate]=good
                    [authgate_public]=good [authgate_bad]=bad )
ngx_master=$(cat "$work/ngx.pid")
ngx_procs="$ngx_master $(pgrep -P "$ngx_master" | tr '\n' ' ')"
declare -A proc=( [pingora]="${pids[2]}" [authgate]=$ag_pid [authgate_public]=$ag_pid [authgate_bad]=$ag_pid
                  [nginx]="$ngx_procs" [nginx_authreq]="$ngx_procs" [direct]="" )
targets=(direct pingora nginx nginx_authreq authgate authgate_public authgate_bad)
for a in ${ALLOCATORS:-}; do
  lua "$(token_for /mcp "${alloc_port[$a]}")" >"$work/good-$a.lua"
  url[authgate_$a]="http://127.0.0.1:${alloc_port[$a]}/mcp"; script[authgate_$a]=good-$a; proc[authgate_$a]=${alloc_pid[$a]}
  targets+=("authgate_$a")
done


if [ "$MCP" = 1 ]; then
  # A real MCP server (on the load CPU, like the upstream stand-in), one session through
  # authgate and one direct.
  everything=$root/tests/e2e/node_modules/@modelcontextprotocol/server-everything/dist/index.js
  [ -f "$everything" ] || npm ci --prefix "$root/tests/e2e" --no-audit --no-fund >&2
  PORT=$EV "${load_cpu[@]}" node "$everything" streamableHttp >"$work/everything.log" 2>&1 & pids+=($!)
  wait_port "$EV"
  session_for() { # $1: MCP endpoint, $2: token or "" → an initialized session's id
    local auth=() sid
    [ -n "$2" ] && auth=(-H "Authorization: Bearer $2")
    sid=$(curl -s --max-time 10 -D - -o /dev/null -X POST "$1" "${auth[@]}" -H 'Content-Type: application/json' \
      -H 'Accept: application/json, text/event-stream' \
      -d '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"load","version":"1"}}}' \
      | tr -d '\r' | awk -F': ' 'tolower($1)=="mcp-session-id" {print $2}')
    [ -n "$sid" ] || { echo "no MCP session from $1" >&2; return 1; }
    curl -s --max-time 10 -o /dev/null -X POST "$1" "${auth[@]}" -H 'Content-Type: application/json' \
      -H 'Accept: application/json, text/event-stream' -H "Mcp-Session-Id: $sid" -H 'MCP-Protocol-Version: 2025-06-18' \
      -d '{"jsonrpc":"2.0","method":"notifications/initialized"}'
    echo "$sid"
  }
  mcp_token=$(token_for /everything)
  sid=$(session_for "http://127.0.0.1:$EV/mcp" "")
  lua "none" "wrk.headers[\"Mcp-Session-Id\"] = \"$sid\"" 2025-06-18 >"$work/mcp_direct.lua"
  sid=$(session_for "http://127.0.0.1:$AG/everything" "$mcp_token")
  lua "$mcp_token" "wrk.headers[\"Mcp-Session-Id\"] = \"$sid\"" 2025-06-18 >"$work/mcp_authgate.lua"
  # The answer is an SSE event carrying the echo.
  curl -s --max-time 10 -X POST "http://127.0.0.1:$AG/everything" -H "Authorization: Bearer $mcp_token" \
    -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
    -H "Mcp-Session-Id: $sid" -H 'MCP-Protocol-Version: 2025-06-18' \
    -d '{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hello"}}}' \
    | grep -q '^data: .*Echo: hello' || { echo "tools/call through authgate did not answer an SSE echo" >&2; exit 1; }
  url[mcp_direct]="http://127.0.0.1:$EV/mcp"; script[mcp_direct]=mcp_direct; proc[mcp_direct]=""
  url[mcp_authgate]="http://127.0.0.1:$AG/everything"; script[mcp_authgate]=mcp_authgate; proc[mcp_authgate]=$ag_pid
  targets+=(mcp_direct mcp_authgate)
  # Policies: the same server behind a route with rules; tools/list with and without them.
  list='{"jsonrpc":"2.0","id":3,"method":"tools/list","params":{}}'
  lua "$mcp_token" "wrk.headers[\"Mcp-Session-Id\"] = \"$sid\"" 2025-06-18 "$list" >"$work/mcp_list.lua"
  policy_token=$(token_for /everything-policy)
  psid=$(session_for "http://127.0.0.1:$AG/everything-policy" "$policy_token")
  lua "$policy_token" "wrk.headers[\"Mcp-Session-Id\"] = \"$psid\"" 2025-06-18 >"$work/mcp_call_policy.lua"
  lua "$policy_token" "wrk.headers[\"Mcp-Session-Id\"] = \"$psid\"" 2025-06-18 "$list" >"$work/mcp_list_policy.lua"
  listed=$(curl -s --max-time 10 -X POST "http://127.0.0.1:$AG/everything-policy" -H "Authorization: Bearer $policy_token" \
    -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
    -H "Mcp-Session-Id: $psid" -H 'MCP-Protocol-Version: 2025-06-18' -d "$list")
  { printf '%s' "$listed" | grep -q '"echo"' && ! printf '%s' "$listed" | grep -q '"get-env"'; } \
    || { echo "tools/list through the policy route was not filtered: $listed" >&2; exit 1; }
  for t in mcp_list mcp_call_policy mcp_list_policy; do script[$t]=$t; proc[$t]=$ag_pid; done
  url[mcp_list]="http://127.0.0.1:$AG/everything"
  url[mcp_call_policy]="http://127.0.0.1:$AG/everything-policy"; url[mcp_list_policy]=${url[mcp_call_policy]}
  targets+=(mcp_call_policy mcp_list mcp_list_policy)
fi

if [ -n "${ONLY:-}" ]; then  # ONLY="direct pingora authgate": a subset of the targets
  kept=(); for t in "${targets[@]}"; do [[ " $ONLY " == *" $t "* ]] && kept+=("$t"); done
  targets=("${kept[@]}")
fi

to_ms() { # wrk latency like 1.23ms / 450.00us / 1.2s → ms
  awk -v v="$1" 'BEGIN { n=v+0; if (v ~ /us$/) n/=1000; else if (v ~ /ms$/) n=n; else if (v ~ /s$/) n*=1000; printf "%.3f", n }'
}
results=$OUT/results.tsv
printf 'conns\ttarget\trep\treq_s\tp50_ms\tp99_ms\tnon2xx\tcpu_us_per_req\n' >"$results"
for c in $CONNS; do
  # An unmeasured warm-up of every target first (connection pools, node's JIT).
  for t in "${targets[@]}"; do
    "${load_cpu[@]}" wrk -t2 -c"$c" -d"${WARMUP}s" -s "$work/${script[$t]}.lua" "${url[$t]}" >/dev/null 2>&1
  done
  for rep in $(seq 1 "$REPS"); do
    for t in "${targets[@]}"; do
      before=0; for p in ${proc[$t]}; do before=$((before + $(cpu_ticks "$p"))); done
      raw=$OUT/$t-c$c-r$rep.txt
      if [ "${PROFILE:-}" = "$t" ] && [ "$rep" = 1 ]; then
        # A CPU profile of the proxy during this run (DWARF call graphs: release builds keep
        # no frame pointers); folded stacks and a flamegraph SVG if inferno is installed.
        perf record -q -F 499 --call-graph dwarf,32768 -o "$OUT/$t-c$c.perf" -p "${proc[$t]// /,}" \
          -- sleep "$DURATION" 2>/dev/null &
        perf_pid=$!
      fi
      "${load_cpu[@]}" wrk -t2 -c"$c" -d"${DURATION}s" --latency -s "$work/${script[$t]}.lua" "${url[$t]}" >"$raw" 2>&1
      after=0; for p in ${proc[$t]}; do after=$((after + $(cpu_ticks "$p"))); done
      if [ -n "${perf_pid:-}" ]; then
        wait "$perf_pid" || true; perf_pid=
        if command -v inferno-collapse-perf >/dev/null; then
          perf script -i "$OUT/$t-c$c.perf" 2>/dev/null | inferno-collapse-perf >"$OUT/$t-c$c.folded"
          inferno-flamegraph --title "$t, $c connections" <"$OUT/$t-c$c.folded" >"$OUT/$t-c$c.svg"
        fi
      fi
      rps=$(awk '/Requests\/sec/ {print $2}' "$raw")
      p50=$(to_ms "$(awk '$1=="50%" {print $2}' "$raw")")
      p99=$(to_ms "$(awk '$1=="99%" {print $2}' "$raw")")
      non2xx=$(awk '/Non-2xx/ {print $5}' "$raw"); non2xx=${non2xx:-0}
      total=$(awk '/requests in/ {print $1}' "$raw")
      hz=$(getconf CLK_TCK)
      cpu=$(awk -v d=$((after - before)) -v n="$total" -v hz="$hz" 'BEGIN { if (n>0 && d>0) printf "%.1f", d/hz*1e6/n; else print "-" }')
      printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$c" "$t" "$rep" "$rps" "$p50" "$p99" "$non2xx" "$cpu" >>"$results"
      echo "load: c=$c rep=$rep $t: $rps req/s p99 ${p99}ms" >&2
    done
  done
done
loaded_rss=$(rss_kb "$ag_pid")

# Medians per (conns, target), the spread of req/s over reps, and ratios to direct (for the
# MCP rows: to server-everything direct) and to the bare Pingora passthrough.
python3 - "$results" "$idle_rss" "$loaded_rss" "$PIN" "$DURATION" "$REPS" <<'PY'
import csv, statistics, sys
path, idle, loaded, pin, dur, reps = sys.argv[1:]
rows = list(csv.DictReader(open(path), delimiter="\t"))
med = {}
for r in rows:
    med.setdefault((r["conns"], r["target"]), []).append(r)
def vals(rs, k):
    return [float(r[k]) for r in rs if r[k] not in ("", "-")]
def m(rs, k):
    v = vals(rs, k)
    return statistics.median(v) if v else float("nan")
print(f"pinned={pin}, {dur}s per run, {reps} reps, medians (req/s also min–max); ratios are of req/s\n")
print("| conns | target | req/s | req/s min–max | p50 ms | p99 ms | non-2xx | proxy CPU µs/req | vs direct | vs pingora |")
print("|---|---|---|---|---|---|---|---|---|---|")
for (c, t), rs in med.items():
    rps = m(rs, "req_s"); v = vals(rs, "req_s")
    base = "mcp_direct" if t.startswith("mcp_") else "direct"
    d = m(med[(c, base)], "req_s")
    p = "-" if t.startswith("mcp_") else f"{rps / m(med[(c, 'pingora')], 'req_s'):.3f}"
    cpu = m(rs, "cpu_us_per_req")
    print(f"| {c} | {t} | {rps:,.0f} | {min(v):,.0f}–{max(v):,.0f} | {m(rs,'p50_ms'):.2f} | {m(rs,'p99_ms'):.2f} | "
          f"{int(m(rs,'non2xx'))} | {'-' if cpu != cpu else f'{cpu:.1f}'} | {rps/d:.3f} | {p} |")
print(f"\nauthgate RSS: idle {int(idle)/1024:.1f} MiB, after the load {int(loaded)/1024:.1f} MiB")
PY
echo "raw output: $OUT" >&2
