#!/bin/sh
# A throwaway PostgreSQL server for tests and benchmarks: its own data directory, listening
# only on a unix socket in that directory (no TCP port, no clash with a system server), trust
# authentication, fsync and synchronous_commit on (the defaults: commits are durable), and
# max_prepared_transactions = 100 (PostgreSQL's default is 0, which refuses the PREPARE
# TRANSACTION of XA branches).
#
#   scripts/pg-throwaway.sh fresh   DIR [PORT]  wipe DIR, initdb, start; prints the conninfo
#   scripts/pg-throwaway.sh start   DIR [PORT]  start an existing DIR (after stop)
#   scripts/pg-throwaway.sh stop    DIR         stop (fast: sessions are disconnected)
#   scripts/pg-throwaway.sh destroy DIR         stop and delete DIR
#
# As root it runs the server as the `postgres` user (PostgreSQL refuses to run as root).
set -eu
cmd=${1:?usage: pg-throwaway.sh fresh|start|stop|destroy DIR [PORT]}
dir=${2:?usage: pg-throwaway.sh fresh|start|stop|destroy DIR [PORT]}
port=${3:-5432}
bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
if [ -z "$bindir" ]; then
  echo "pg-throwaway: PostgreSQL server binaries not found (apt-get install postgresql)" >&2
  exit 1
fi

as_pg() {
  if [ "$(id -u)" = 0 ]; then
    setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"
  else
    "$@"
  fi
}

stop() {
  if [ -f "$dir/data/postmaster.pid" ]; then
    as_pg "$bindir/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null 2>&1 ||
      as_pg "$bindir/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
}

start() {
  as_pg "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-k $dir -p $port -c listen_addresses= -c max_connections=300 -c max_prepared_transactions=100 -c fsync=on -c synchronous_commit=on" \
    start >/dev/null
  echo "host=$dir port=$port user=postgres dbname=postgres"
}

case "$cmd" in
  fresh)
    stop
    rm -rf "$dir"
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres:postgres "$dir"
    chmod 700 "$dir"
    as_pg "$bindir/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --no-sync >/dev/null
    start
    ;;
  start) start ;;
  stop) stop ;;
  destroy)
    stop
    rm -rf "$dir"
    ;;
  *)
    echo "pg-throwaway: unknown command '$cmd'" >&2
    exit 2
    ;;
esac
