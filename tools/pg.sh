#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# A private PostgreSQL 15 cluster in a folder: no system service, no TCP port, a unix socket
# inside the folder. initdb refuses to run as root, so as root the cluster runs as the
# `postgres` account that Debian's package creates.
#
#   tools/pg.sh start DIR [--fast]   create the cluster on first use, then start it
#   tools/pg.sh stop DIR             stop it (fast shutdown)
#   tools/pg.sh status DIR           exit 0 when it runs
#   tools/pg.sh url DIR [DATABASE]   print a libpq URL for a database of the cluster
#   tools/pg.sh createdb DIR NAME    create a database unless it exists
#
# --fast turns off fsync and full page writes: for throwaway test clusters only.
set -euo pipefail

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
PG_USER=manas360

die() { echo "pg.sh: $*" >&2; exit 1; }

[ $# -ge 2 ] || die "usage: tools/pg.sh start|stop|status|url|createdb DIR [ARG]"
cmd=$1
dir=$2
shift 2
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

# Runs a command as the cluster's owner.
as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

url() {
    local db=${1:-manas360}
    echo "postgresql:///$db?host=$dir&user=$PG_USER"
}

start() {
    local fast=()
    if [ "${1:-}" = "--fast" ]; then
        fast=(-c fsync=off -c full_page_writes=off -c synchronous_commit=off)
    fi
    [ -x "$PG_BIN/initdb" ] || die "PostgreSQL 15 is not installed: run tools/bootstrap.sh"
    [ ${#dir} -lt 90 ] || die "$dir is too long for a unix socket path; use a shorter folder"

    if [ "$(id -u)" -eq 0 ]; then
        chown postgres "$dir"
        chmod 0700 "$dir"
        runuser -u postgres -- test -w "$dir" ||
            die "the postgres account cannot reach $dir (a parent folder is not searchable)"
    fi
    if [ ! -f "$dir/data/PG_VERSION" ]; then
        as_owner "$PG_BIN/initdb" -D "$dir/data" -U "$PG_USER" --auth=trust \
            --encoding=UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
            die "initdb failed; see $dir/initdb.log"
    fi
    if as_owner "$PG_BIN/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
        return 0
    fi
    as_owner "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-c listen_addresses='' -c unix_socket_directories='$dir' -c max_connections=200 ${fast[*]}" \
        start >/dev/null || die "the cluster did not start; see $dir/server.log"
}

stop() {
    [ -f "$dir/data/PG_VERSION" ] || return 0
    as_owner "$PG_BIN/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
}

createdb() {
    local name=$1
    [[ "$name" =~ ^[a-z_][a-z0-9_]*$ ]] || die "bad database name: $name"
    if ! psql "$(url postgres)" -Atqc "SELECT 1 FROM pg_database WHERE datname = '$name'" |
        grep -q 1; then
        psql "$(url postgres)" -qc "CREATE DATABASE $name" >/dev/null
    fi
}

case "$cmd" in
start) start "$@" ;;
stop) stop ;;
status) as_owner "$PG_BIN/pg_ctl" -D "$dir/data" status >/dev/null 2>&1 ;;
url) url "$@" ;;
createdb) [ $# -eq 1 ] || die "usage: tools/pg.sh createdb DIR NAME"; createdb "$1" ;;
*) die "unknown command: $cmd" ;;
esac
