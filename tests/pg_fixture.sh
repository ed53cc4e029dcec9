#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Starts (setup) or removes (cleanup) the test run's throwaway PostgreSQL cluster, and
# migrates the template database that every test copies.
#   tests/pg_fixture.sh setup DIR SERVER_BIN MIGRATIONS_DIR
#   tests/pg_fixture.sh cleanup DIR
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
pg="$here/../tools/pg.sh"
action=$1
dir=$2

case "$action" in
setup)
    "$pg" stop "$dir" 2>/dev/null || true
    rm -rf "$dir"
    "$pg" start "$dir" --fast
    "$pg" createdb "$dir" manas360_template
    DATABASE_URL=$("$pg" url "$dir" manas360_template) \
        MANAS360_ENV=development MANAS360_VAR_DIR="$dir/var" MIGRATIONS_DIR="$4" \
        LOG_LEVEL=warning "$3" migrate
    ;;
cleanup)
    "$pg" stop "$dir"
    rm -rf "$dir"
    ;;
*)
    echo "usage: tests/pg_fixture.sh setup|cleanup DIR ..." >&2
    exit 2
    ;;
esac
