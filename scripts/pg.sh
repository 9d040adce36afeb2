#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests: `initdb` + `pg_ctl` on a temporary
# directory, listening on 127.0.0.1 only, on a fixed high port.
#
#   bash scripts/pg.sh start    # creates and starts it; prints the URL on stdout
#   bash scripts/pg.sh url      # prints the URL of the running cluster
#   bash scripts/pg.sh stop     # stops it and removes its directory
#   bash scripts/pg.sh halt     # stops it at once (-m immediate: a crash), keeping its data
#   bash scripts/pg.sh resume   # starts a halted cluster again on its data
#   bash scripts/pg.sh crash-restart   # pg_ctl restart -m immediate (crash recovery)
#
# Then: export BASALT_TEST_PG_URL="$(bash scripts/pg.sh url)" and run the tests.
# PostgreSQL refuses to run as root: as root the cluster belongs to the `postgres` OS user
# (Debian's package creates it); otherwise to the calling user.
# Settings: BASALT_PG_DIR (default /tmp/basalt-test-pg), BASALT_PG_PORT (default 55432).
set -euo pipefail

dir="${BASALT_PG_DIR:-/tmp/basalt-test-pg}"
port="${BASALT_PG_PORT:-55432}"
db=basalt_test
user=basalt
url="postgres://$user@127.0.0.1:$port/$db"

bindir() {
  local d
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    [ -x "$d/pg_ctl" ] && { echo "$d"; return; }
  done
  command -v pg_ctl >/dev/null && { dirname "$(command -v pg_ctl)"; return; }
  echo "error: PostgreSQL is not installed (Debian: apt-get install postgresql)" >&2
  exit 1
}

# Runs a PostgreSQL program as the cluster's owner.
as_owner() {
  if [ "$(id -u)" = 0 ]; then
    # runuser keeps no tty and needs no password; the owner has no login shell on Debian.
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

start() {
  local bin
  bin="$(bindir)"
  if [ -f "$dir/data/postmaster.pid" ] && as_owner "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
    echo "$url"
    return
  fi
  rm -rf "$dir"
  mkdir -p "$dir"
  [ "$(id -u)" = 0 ] && chown postgres: "$dir"
  # C locale: text compares and sorts by bytes, as SQLite's BINARY collation does.
  as_owner "$bin/initdb" -D "$dir/data" -U "$user" --auth=trust --encoding=UTF8 \
    --locale=C --no-sync >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
  # The unix socket lives in the cluster's directory: nothing outside it is touched.
  as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start \
    -o "$(server_opts)" >/dev/null || { cat "$dir/server.log" >&2; exit 1; }
  as_owner "$bin/createdb" -h 127.0.0.1 -p "$port" -U "$user" "$db"
  echo "$url"
}

stop() {
  local bin
  bin="$(bindir)"
  if [ -d "$dir/data" ]; then
    as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$dir"
}

# The server's options, the same at every start.
server_opts() {
  echo "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c full_page_writes=off -c max_connections=200"
}

halt() {
  as_owner "$(bindir)/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null
}

resume() {
  as_owner "$(bindir)/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start \
    -o "$(server_opts)" >/dev/null || { cat "$dir/server.log" >&2; exit 1; }
}

crash_restart() {
  as_owner "$(bindir)/pg_ctl" -D "$dir/data" -l "$dir/server.log" -m immediate -w -t 60 \
    restart -o "$(server_opts)" >/dev/null || { cat "$dir/server.log" >&2; exit 1; }
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  halt) halt ;;
  resume) resume ;;
  crash-restart) crash_restart ;;
  url) echo "$url" ;;
  *) echo "usage: $0 start|stop|halt|resume|crash-restart|url" >&2; exit 2 ;;
esac
