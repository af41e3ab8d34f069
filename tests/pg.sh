#!/usr/bin/env bash
# One PostgreSQL server for a whole test run (tests/run.sh): initdb in a new directory in
# /tmp, the server listening only on a unix socket there (no TCP port), as the `postgres`
# user (else `nobody`) when run as root, since initdb and postgres refuse root. Tests find
# it through AUTHGATE_TEST_POSTGRES (tests/common/postgres.rs: shared_url).
#
#   pg_env=$(bash tests/pg.sh start [PID]) && eval "$pg_env"
#       prints the exports of AUTHGATE_TEST_POSTGRES='host=<dir> port=5432 user=postgres'
#       and AUTHGATE_TEST_POSTGRES_DIR=<dir>; with PID, the server is also stopped once that
#       process is gone, should its caller be killed before it can stop it. (Assign, then
#       eval: `eval "$(bash tests/pg.sh start)"` alone hides a failure from `set -e`.)
#   bash tests/pg.sh stop "$AUTHGATE_TEST_POSTGRES_DIR"
#       stops it and removes the directory; nothing to do when it is gone already.
#
# Only the export lines go to stdout; everything else goes to stderr. Fails with exit 1
# and a message when the server cannot start. Uses Debian's postgresql package: initdb on
# PATH, else the highest /usr/lib/postgresql/*/bin.
set -euo pipefail

die() {
  echo "tests/pg.sh: $*" >&2
  exit 1
}
self=$(readlink -f "$0")
install_hint="install Debian's postgresql package: apt-get install -y postgresql"

bin_dir() {
  local initdb dir best=""
  if initdb=$(command -v initdb 2>/dev/null); then
    dir=$(dirname "$(readlink -f "$initdb")")
    if [ -x "$dir/postgres" ] && [ -x "$dir/pg_ctl" ]; then
      echo "$dir"
      return
    fi
  fi
  for dir in $(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V); do
    if [ -x "$dir/initdb" ] && [ -x "$dir/postgres" ] && [ -x "$dir/pg_ctl" ]; then
      best=$dir
    fi
  done
  [ -n "$best" ] || die "no PostgreSQL server binaries (no initdb on PATH nor in /usr/lib/postgresql/*/bin): $install_hint"
  echo "$best"
}

# as: the command prefix that runs the server's programs as an unprivileged user when root.
as=()
run_as_uid=""
run_as_gid=""
if [ "$(id -u)" = 0 ]; then
  for user in postgres nobody; do
    if id -u "$user" >/dev/null 2>&1 && [ "$(id -u "$user")" != 0 ]; then
      run_as_uid=$(id -u "$user")
      run_as_gid=$(id -g "$user")
      break
    fi
  done
  [ -n "$run_as_uid" ] || die "running as root and there is no postgres or nobody user to run the server as: $install_hint"
  if command -v setpriv >/dev/null; then
    as=(setpriv "--reuid=$run_as_uid" "--regid=$run_as_gid" --clear-groups --)
  elif command -v runuser >/dev/null; then
    as=(runuser -u "$user" --)
  else
    die "running as root and neither setpriv nor runuser (util-linux) is there to drop to $user"
  fi
fi

start() {
  local watch=${1:-} bin dir
  bin=$(bin_dir)
  dir=$(mktemp -d /tmp/authgate-pg.XXXXXX)
  chmod 755 "$dir"
  if [ -n "$run_as_uid" ]; then
    chown "$run_as_uid:$run_as_gid" "$dir"
  fi
  cd "$dir"
  if ! "${as[@]}" "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C \
    --no-sync >"$dir/initdb.log" 2>&1; then
    cat "$dir/initdb.log" >&2
    rm -rf -- "$dir"
    die "initdb failed (output above): $install_hint"
  fi
  if ! "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 30 \
    -o "-k $dir -p 5432 -c listen_addresses='' -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
    start >&2; then
    tail -n 40 "$dir/postgres.log" >&2 || true
    "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf -- "$dir"
    die "the server did not start (its log above): $install_hint"
  fi
  local answer
  if ! answer=$("$bin/psql" -X -A -t -w -h "$dir" -p 5432 -U postgres -d postgres -c 'select 1+1' 2>&1) \
    || [ "$answer" != 2 ]; then
    echo "$answer" >&2
    tail -n 40 "$dir/postgres.log" >&2 || true
    stop "$dir"
    die "the server started but does not answer on $dir"
  fi
  if [ -n "$watch" ]; then
    # Detached (own session, no stdout), so neither $(...) nor Ctrl-C waits for or ends it.
    setsid bash -c 'while kill -0 "$1" 2>/dev/null; do sleep 2; done; exec bash "$2" stop "$3"' \
      pg-watch "$watch" "$self" "$dir" </dev/null >/dev/null 2>&1 &
  fi
  echo "tests/pg.sh: $("$bin/postgres" --version) on unix socket $dir" >&2
  printf "export AUTHGATE_TEST_POSTGRES='host=%s port=5432 user=postgres'\n" "$dir"
  printf "export AUTHGATE_TEST_POSTGRES_DIR='%s'\n" "$dir"
}

stop() {
  local dir=${1:-}
  [ -n "$dir" ] || die "usage: $0 stop DIR"
  case "$dir" in
    /tmp/authgate-pg.*) ;;
    *) die "refusing to stop and remove $dir: not a directory this script made" ;;
  esac
  [ -d "$dir" ] || return 0
  if [ -f "$dir/data/postmaster.pid" ]; then
    local bin
    bin=$(bin_dir)
    (cd "$dir" && "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop >&2) \
      || (cd "$dir" && "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -m immediate -w -t 30 stop >&2) \
      || true
  fi
  rm -rf -- "$dir"
}

case "${1:-}" in
  start) start "${2:-}" ;;
  stop) stop "${2:-}" ;;
  *) die "usage: eval \"\$(bash $0 start [PID])\" | bash $0 stop DIR" ;;
esac
