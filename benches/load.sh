#!/usr/bin/env bash
# Load benchmark: authgate against the alternatives, same machine, same upstream, same load
# generator, one run. Loopback only; bounded in time; every process it starts is stopped by
# PID on exit.
#
#   benches/load.sh                      # defaults below
#   DURATION=10 CONNS="32 256" REPS=3 PIN=1 benches/load.sh
#
# Targets (a request is a POST of an MCP tools/call body with a bearer token; the upstream
# stand-in is nginx answering a fixed 295-byte JSON body, keep-alive everywhere):
#   direct       wrk → upstream
#   pingora      wrk → bare Pingora passthrough (examples/passthrough.rs) → upstream
#   nginx        wrk → nginx reverse proxy → upstream
#   authgate     wrk → authgate, valid token (one hash + cache hit) → upstream
#   authgate_bad wrk → authgate, unknown token (answered 401 by authgate)
# With PIN=1 (default) the proxy runs on CPU 0 with 1 thread/worker, and wrk and the
# upstream on CPU 1, which is the cleaner comparison on a 2-core machine.
# Output: a Markdown table on stdout; raw wrk output under $OUT (default target/load/<ts>).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

DURATION=${DURATION:-10}
CONNS=${CONNS:-"32 256"}
REPS=${REPS:-3}
PIN=${PIN:-1}
OUT=${OUT:-$root/target/load/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
target_dir=${CARGO_TARGET_DIR:-$root/target}

need=()
command -v wrk >/dev/null || need+=(wrk)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
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

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 never opened" >&2; return 1; }

UP=$(free_port); NGX=$(free_port); PGR=$(free_port); AG=$(free_port)
work=$(mktemp -d)
body='{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"Echo: hello from the upstream stand-in, a fixed body of about three hundred bytes for every request. padding padding padding padding padding padding padding padding"}],"isError":false}}'

# The upstream stand-in (CPU 1) and the nginx reverse proxy (CPU 0), in one nginx config
# each so they can be pinned apart.
cat >"$work/up.conf" <<NGX
worker_processes 1; daemon off; pid $work/up.pid; error_log $work/up.err;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  server { listen 127.0.0.1:$UP; location / { default_type application/json; return 200 '$body'; } } }
NGX
cat >"$work/ngx.conf" <<NGX
worker_processes $proxy_threads; daemon off; pid $work/ngx.pid; error_log $work/ngx.err;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  upstream up { server 127.0.0.1:$UP; keepalive 512; }
  server { listen 127.0.0.1:$NGX; location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
NGX
"${load_cpu[@]}" "$NGINX" -c "$work/up.conf" & pids+=($!)
"${proxy_cpu[@]}" "$NGINX" -c "$work/ngx.conf" & pids+=($!)
"${proxy_cpu[@]}" "$PASSTHROUGH" "127.0.0.1:$PGR" "127.0.0.1:$UP" "$proxy_threads" 2>"$work/pingora.log" & pids+=($!)

# authgate: one protected upstream, a local user and a trusted client, so a token can be
# obtained the way a client would (authorize → login → code → token).
hash=$(printf 'bench-password' | "$AUTHGATE" hash-password)
cat >"$work/authgate.toml" <<TOML
[server]
listen = ["127.0.0.1:$AG"]
public_url = "http://127.0.0.1:$AG"
data_dir = "$work/data"
threads = $proxy_threads
[[scope]]
name = "mcp:tools"
[[upstream]]
name = "everything"
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
TOML
RUST_LOG=warn "${proxy_cpu[@]}" "$AUTHGATE" run --config "$work/authgate.toml" 2>"$work/authgate.log" & pids+=($!)
ag_pid=$!
for p in $UP $NGX $PGR $AG; do wait_port "$p"; done

verifier=dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk
challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM
jar=$work/jar
login=$(curl -s -c "$jar" -o /dev/null -w '%{redirect_url}' \
  "http://127.0.0.1:$AG/authorize?response_type=code&client_id=bench&redirect_uri=http://127.0.0.1/cb&code_challenge=$challenge&code_challenge_method=S256&state=s")
flow=$(curl -s -b "$jar" "$login" | sed -n 's/.*name="flow" value="\([^"]*\)".*/\1/p' | head -1)
back=$(curl -s -b "$jar" -c "$jar" -o /dev/null -w '%{redirect_url}' -X POST "http://127.0.0.1:$AG/login/local" \
  --data-urlencode "flow=$flow" -d username=bench -d password=bench-password)
code=$(printf '%s' "$back" | sed -n 's/.*[?&]code=\([^&]*\).*/\1/p')
token=$(curl -s -X POST "http://127.0.0.1:$AG/token" -d grant_type=authorization_code -d "code=$code" \
  -d "code_verifier=$verifier" -d client_id=bench | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
[ -n "$token" ] || { echo "could not obtain a token" >&2; exit 1; }

rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
idle_rss=$(rss_kb "$ag_pid")

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
lua "$token" >"$work/good.lua"
lua "ag_at_not_a_token_not_a_token_not_a_token_xxxxx" >"$work/bad.lua"

declare -A url=( [direct]="http://127.0.0.1:$UP/mcp" [pingora]="http://127.0.0.1:$PGR/mcp" [nginx]="http://127.0.0.1:$NGX/mcp"
                 [authgate]="http://127.0.0.1:$AG/mcp" [authgate_bad]="http://127.0.0.1:$AG/mcp" )
declare -A script=( [direct]=good [pingora]=good [nginx]=good [authgate]=good [authgate_bad]=bad )
ngx_master=$(cat "$work/ngx.pid")
declare -A proc=( [pingora]="${pids[2]}" [authgate]=$ag_pid [authgate_bad]=$ag_pid
                  [nginx]="$ngx_master $(pgrep -P "$ngx_master" | tr '\n' ' ')" [direct]="" )
targets=(direct pingora nginx authgate authgate_bad)

to_ms() { # wrk latency like 1.23ms / 450.00us / 1.2s → ms
  awk -v v="$1" 'BEGIN { n=v+0; if (v ~ /us$/) n/=1000; else if (v ~ /ms$/) n=n; else if (v ~ /s$/) n*=1000; printf "%.3f", n }'
}
results=$OUT/results.tsv
printf 'conns\ttarget\trep\treq_s\tp50_ms\tp99_ms\tnon2xx\tcpu_us_per_req\n' >"$results"
for c in $CONNS; do
  for rep in $(seq 1 "$REPS"); do
    for t in "${targets[@]}"; do
      before=0; for p in ${proc[$t]}; do before=$((before + $(cpu_ticks "$p"))); done
      raw=$OUT/$t-c$c-r$rep.txt
      "${load_cpu[@]}" wrk -t2 -c"$c" -d"${DURATION}s" --latency -s "$work/${script[$t]}.lua" "${url[$t]}" >"$raw" 2>&1
      after=0; for p in ${proc[$t]}; do after=$((after + $(cpu_ticks "$p"))); done
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

# Medians per (conns, target) and ratios to direct and pingora.
python3 - "$results" "$idle_rss" "$loaded_rss" "$PIN" "$DURATION" "$REPS" <<'PY'
import csv, statistics, sys
path, idle, loaded, pin, dur, reps = sys.argv[1:]
rows = list(csv.DictReader(open(path), delimiter="\t"))
med = {}
for r in rows:
    med.setdefault((r["conns"], r["target"]), []).append(r)
def m(rs, k):
    vals = [float(r[k]) for r in rs if r[k] not in ("", "-")]
    return statistics.median(vals) if vals else float("nan")
print(f"pinned={pin}, {dur}s per run, {reps} reps, medians; ratios are of req/s\n")
print("| conns | target | req/s | p50 ms | p99 ms | non-2xx | proxy CPU µs/req | vs direct | vs pingora |")
print("|---|---|---|---|---|---|---|---|---|")
for (c, t), rs in med.items():
    rps = m(rs, "req_s"); d = m(med[(c, "direct")], "req_s"); p = m(med[(c, "pingora")], "req_s")
    cpu = m(rs, "cpu_us_per_req")
    print(f"| {c} | {t} | {rps:,.0f} | {m(rs,'p50_ms'):.2f} | {m(rs,'p99_ms'):.2f} | {int(m(rs,'non2xx'))} | "
          f"{'-' if cpu != cpu else f'{cpu:.1f}'} | {rps/d:.3f} | {rps/p:.3f} |")
print(f"\nauthgate RSS: idle {int(idle)/1024:.1f} MiB, after the load {int(loaded)/1024:.1f} MiB")
PY
echo "raw output: $OUT" >&2
