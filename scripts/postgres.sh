#!/usr/bin/env bash
# Starts (or stops) a throw-away PostgreSQL cluster on loopback for the tests.
#   scripts/postgres.sh start   -> prints the DSN to export as LIENTHONG_POSTGRES_DSN
#   scripts/postgres.sh stop
# Uses Debian's postgresql packages (.ci/run installs them). Runs the server as
# the 'postgres' user because initdb refuses root. Trust auth, loopback only.
set -euo pipefail
PGPORT=${LIENTHONG_PG_PORT:-55432}
PGDATA=${LIENTHONG_PG_DATA:-/tmp/lienthong-pg}
bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -n "$bindir" ] || { echo "postgres.sh: no PostgreSQL server under /usr/lib/postgresql (apt-get install postgresql)" >&2; exit 1; }
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
dsn="postgres://postgres@127.0.0.1:${PGPORT}/postgres?sslmode=disable"
case "${1:-start}" in
start)
  if as_pg "$bindir/pg_isready" -q -h 127.0.0.1 -p "$PGPORT"; then echo "$dsn"; exit 0; fi
  if [ ! -f "$PGDATA/PG_VERSION" ]; then
    mkdir -p "$PGDATA"; [ "$(id -u)" = 0 ] && chown postgres:postgres "$PGDATA"
    as_pg "$bindir/initdb" -D "$PGDATA" -U postgres --auth=trust -E UTF8 >/dev/null
  fi
  as_pg "$bindir/pg_ctl" -D "$PGDATA" -l "$PGDATA/server.log" -w \
    -o "-h 127.0.0.1 -p $PGPORT -k /tmp -c max_connections=200 -c fsync=off" start >/dev/null
  echo "$dsn"
  ;;
stop)
  as_pg "$bindir/pg_ctl" -D "$PGDATA" -m fast stop >/dev/null 2>&1 || true
  ;;
*) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
