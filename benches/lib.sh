# Helpers the load scripts share (sourced by benches/load.sh and benches/replicas.sh).
# Needs: $work (a scratch directory), curl, python3.

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 never opened" >&2; return 1; }

# An access token for authgate's route at path $2 on port $3, whose public URL is on port $1,
# obtained as a client would: authorize → local login (bench / bench-password) → code →
# token, with the trusted client `bench` (redirect http://127.0.0.1/cb) and PKCE.
bench_token() { # $1: public port, $2: route path, $3: port to talk to (default $1)
  local public=$1 path=$2 port=${3:-$1}
  local jar=$work/jar-$port resource=http://127.0.0.1:$public$path login page flow csrf back code
  local verifier=dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk
  local challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM
  login=$(curl -s -c "$jar" -o /dev/null -w '%{redirect_url}' \
    "http://127.0.0.1:$port/authorize?response_type=code&client_id=bench&redirect_uri=http://127.0.0.1/cb&code_challenge=$challenge&code_challenge_method=S256&state=s&resource=$resource")
  page=$(curl -s -b "$jar" -c "$jar" "$login")
  flow=$(printf '%s' "$page" | sed -n 's/.*name="flow" value="\([^"]*\)".*/\1/p' | head -1)
  csrf=$(printf '%s' "$page" | sed -n 's/.*name="csrf" value="\([^"]*\)".*/\1/p' | head -1)
  back=$(curl -s -b "$jar" -c "$jar" -o /dev/null -w '%{redirect_url}' -X POST "http://127.0.0.1:$port/login/local" \
    --data-urlencode "flow=$flow" --data-urlencode "csrf=$csrf" -d username=bench -d password=bench-password)
  code=$(printf '%s' "$back" | sed -n 's/.*[?&]code=\([^&]*\).*/\1/p')
  curl -s -X POST "http://127.0.0.1:$port/token" -d grant_type=authorization_code -d "code=$code" \
    -d "code_verifier=$verifier" -d client_id=bench -d "resource=$resource" >"$work/token.json"
  python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])' <"$work/token.json" \
    || { echo "no token for $path on $port: login page $login, back $back, answer $(cat "$work/token.json")" >&2; return 1; }
}
