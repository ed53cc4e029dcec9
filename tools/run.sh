#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The run command: installs what is missing, builds, starts a private PostgreSQL in var/pg,
# applies migrations and seed data, and runs manas360d in the foreground on PORT (5001).
# Ctrl-C stops the server and then the database it started.
set -euo pipefail
cd "$(dirname "$0")/.."

tools/bootstrap.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMANAS360_TESTS=OFF >/dev/null
cmake --build build -j "$(nproc)"

mkdir -p var
tools/pg.sh start var/pg
trap 'tools/pg.sh stop var/pg' EXIT
tools/pg.sh createdb var/pg manas360

export MANAS360_ENV=${MANAS360_ENV:-development}
export MANAS360_VAR_DIR=${MANAS360_VAR_DIR:-var}
export DATABASE_URL=${DATABASE_URL:-$(tools/pg.sh url var/pg manas360)}
build/manas360d migrate
build/manas360d serve
