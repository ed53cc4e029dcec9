#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The benchmark: builds manas360d in Release mode, runs it against a throwaway PostgreSQL, and
# drives it with wrk on 127.0.0.1 next to a bare civetweb server that answers `{}` (the
# ceiling). Prints req/s and p99 latency per scenario, each also as a ratio to the ceiling.
# Everything it starts is stopped on exit, failure or Ctrl-C.
#
#   tools/bench/run.sh [--duration 10] [--connections 32] [--threads 1]
set -euo pipefail
cd "$(dirname "$0")/../.."

readonly WRK_TIMEOUT_S=30       # wrk drops latency samples above this: keep it above login p99
readonly READY_TIMEOUT_S=30     # for each server to answer its first request
readonly CURL_TIMEOUT_S=30      # per setup request (a login costs one argon2id hash)
readonly HASH_RATE_SECONDS=5
readonly INGEST_EVENTS=300000   # pushed to the audit writer, and copied plainly
readonly HASH_RATE_THREADS=2
readonly STOP_TIMEOUT_S=10      # for a server to exit after SIGTERM before SIGKILL
readonly BENCH_EMAIL=bench@example.com
readonly BENCH_PASSWORD=bench-password-0123
readonly CFLAGS_BENCH="-std=c11 -O2 -Wall -Wextra -Werror -D_POSIX_C_SOURCE=200809L"

duration=10
connections=32
threads=1

work=""
pids=()
wrk_pid=""

die() { echo "bench: $*" >&2; exit 1; }
say() { echo "bench: $*" >&2; }

usage() {
    echo "usage: tools/bench/run.sh [--duration 10] [--connections 32] [--threads 1]" >&2
    exit 2
}

while [ $# -gt 0 ]; do
    case "$1" in
    --duration) [ $# -ge 2 ] || usage; duration=$2; shift 2 ;;
    --connections) [ $# -ge 2 ] || usage; connections=$2; shift 2 ;;
    --threads) [ $# -ge 2 ] || usage; threads=$2; shift 2 ;;
    -h | --help) usage ;;
    *) usage ;;
    esac
done
for value in "$duration" "$connections" "$threads"; do
    [[ "$value" =~ ^[1-9][0-9]{0,5}$ ]] || usage
done
[ "$connections" -le 1000 ] || die "--connections must be at most 1000 (HTTP_THREADS limit)"
[ "$connections" -ge "$threads" ] || die "--connections must be at least --threads"
for tool in wrk cmake cc curl python3 pkg-config psql; do
    command -v "$tool" >/dev/null || die "$tool is not installed"
done

# Stops the servers (SIGTERM, then SIGKILL after STOP_TIMEOUT_S), the cluster, and removes
# the work folder. Runs once, on every exit path.
cleanup() {
    local pid waited

    set +e
    trap - EXIT INT TERM
    [ -z "$wrk_pid" ] || pids+=("$wrk_pid")
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null
    done
    for pid in "${pids[@]}"; do
        waited=0
        while kill -0 "$pid" 2>/dev/null && [ "$waited" -lt $((STOP_TIMEOUT_S * 10)) ]; do
            sleep 0.1
            waited=$((waited + 1))
        done
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    if [ -n "$work" ]; then
        tools/pg.sh stop "$work"
        rm -rf "$work"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A short path: the cluster's unix socket lives in it.
work=$(mktemp -d /tmp/m360bench.XXXXXX)
mkdir -p "$work/bench/bin" "$work/var"
logs=$work/bench

# Runs a command with its output in a log; on failure shows the log's tail and exits.
quiet() {
    local log=$1
    shift
    if ! "$@" >"$log" 2>&1; then
        tail -n 30 "$log" >&2
        die "failed: $*"
    fi
}

# --- (a) build -------------------------------------------------------------------------

say "building manas360d (Release) in build-bench"
quiet "$logs/cmake.log" cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DMANAS360_TESTS=OFF
quiet "$logs/build.log" cmake --build build-bench -j2
say "building bare_server and hash_rate"
# shellcheck disable=SC2086 # CFLAGS_BENCH is a list of flags
quiet "$logs/cc.log" cc $CFLAGS_BENCH -o "$logs/bin/bare_server" tools/bench/bare_server.c \
    -lcivetweb -pthread
# shellcheck disable=SC2086,SC2046 # word lists on purpose
quiet "$logs/cc.log" cc $CFLAGS_BENCH -o "$logs/bin/hash_rate" tools/bench/hash_rate.c \
    $(pkg-config --cflags --libs libsodium) -lpthread
# shellcheck disable=SC2086,SC2046 # word lists on purpose
quiet "$logs/cc.log" cc $CFLAGS_BENCH -Iinclude -o "$logs/bin/audit_ingest" \
    tools/bench/audit_ingest.c src/common/audit_row.c $(pkg-config --cflags --libs libzmq jansson libpq)

# Measured before anything else runs, so it has both cores as a login would: after the
# login scenario the server is still hashing the logins wrk left queued.
say "measuring the argon2id hash rate for ${HASH_RATE_SECONDS}s"
hash_line=$("$logs/bin/hash_rate" --hash-rate "$HASH_RATE_SECONDS" "$HASH_RATE_THREADS")
hash_rate=${hash_line%% *}

# --- (b) database and manas360d --------------------------------------------------------

say "starting PostgreSQL in $work"
tools/pg.sh start "$work" --fast
tools/pg.sh createdb "$work" manas360
server_env=(
    "DATABASE_URL=$(tools/pg.sh url "$work" manas360)"
    MANAS360_ENV=development
    "MANAS360_VAR_DIR=$work/var"
    MIGRATIONS_DIR=migrations
    LOG_LEVEL=warning
)
quiet "$logs/migrate.log" env "${server_env[@]}" build-bench/manas360d migrate

# Two free ports, held open together so they differ.
read -r server_port bare_port ingest_port < <(python3 -c '
import socket
held = [socket.socket() for _ in range(3)]
for s in held:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in held))
')
server_url=http://127.0.0.1:$server_port
ingest_endpoint=tcp://127.0.0.1:$ingest_port
bare_url=http://127.0.0.1:$bare_port

# http_status METHOD URL [CURL ARGS...]: prints the status code (000 when nothing answers);
# the body goes to $logs/last.json.
http_status() {
    local method=$1 url=$2
    shift 2
    curl -s -o "$logs/last.json" -w '%{http_code}' --max-time "$CURL_TIMEOUT_S" \
        -X "$method" "$@" "$url" || true
}

# wait_ready PID URL LOG: waits until URL answers 200, or fails when PID exits first.
wait_ready() {
    local pid=$1 url=$2 log=$3 tries=0

    while [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$url" || true)" != 200 ]; do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 30 "$log" >&2
            die "the server exited before answering $url"
        fi
        tries=$((tries + 1))
        [ "$tries" -lt $((READY_TIMEOUT_S * 10)) ] || die "$url did not answer 200 in time"
        sleep 0.1
    done
}

say "starting manas360d on port $server_port"
env "${server_env[@]}" PORT="$server_port" HTTP_THREADS="$connections" \
    AUDIT_INGEST_ENDPOINT="$ingest_endpoint" \
    build-bench/manas360d serve >"$logs/manas360d.log" 2>&1 &
pids+=($!)
wait_ready "$!" "$server_url/healthz" "$logs/manas360d.log"

# --- (c) the ceiling -------------------------------------------------------------------

say "starting bare_server on port $bare_port"
"$logs/bin/bare_server" "$bare_port" "$connections" >"$logs/bare_server.log" 2>&1 &
pids+=($!)
wait_ready "$!" "$bare_url/" "$logs/bare_server.log"

# --- Lua scripts, one per scenario ------------------------------------------------------

cat >"$logs/get.lua" <<'EOF'
wrk.method = "GET"
EOF

cat >"$logs/profile.lua" <<'EOF'
wrk.method = "GET"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_ACCESS_TOKEN")
EOF

cat >"$logs/login.lua" <<'EOF'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = os.getenv("BENCH_LOGIN_BODY")
EOF

# Refresh tokens are single-use: sending one twice revokes its session. Each wrk thread keeps
# a queue of unused tokens; request() removes the token it sends, response() queues the
# rotated one from a 200 answer. A connection whose answer carried no token sends a
# placeholder from then on, which shows up as non-2xx rather than as a reused token.
cat >"$logs/refresh.lua" <<'EOF'
local queue, head, tail = {}, 1, 0
local threads_set_up = 0

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

local function push(token)
   tail = tail + 1
   queue[tail] = token
end

function setup(thread)
   thread:set("bench_index", threads_set_up)
   threads_set_up = threads_set_up + 1
end

-- Line 1 is a spare for thread 0: wrk calls request() once in thread 0 before the run to
-- check the request, and that token is never sent. The rest are dealt out in turn.
function init(args)
   local threads = tonumber(os.getenv("BENCH_THREADS"))
   local n = 0
   for line in io.lines(os.getenv("BENCH_TOKEN_FILE")) do
      if line ~= "" then
         local owner = n == 0 and 0 or (n - 1) % threads
         if owner == bench_index then
            push(line)
         end
         n = n + 1
      end
   end
end

function request()
   local token = "bench-no-token-left"
   if head <= tail then
      token = queue[head]
      queue[head] = nil
      head = head + 1
   end
   return wrk.format(nil, nil, nil, '{"refreshToken":"' .. token .. '"}')
end

function response(status, headers, body)
   if status == 200 then
      local token = body:match('"refreshToken"%s*:%s*"([^"]+)"')
      if token then
         push(token)
      end
   end
end
EOF

# --- (d) scenarios ---------------------------------------------------------------------

rows=()
bare_rps=""
bare_p99=""
login_rps=""

# run_wrk NAME URL SCRIPT [ENV...]: runs wrk and sets rps, p99_ms, non2xx and sockerr.
run_wrk() {
    local name=$1 url=$2 script=$3 out rc
    shift 3
    out="$logs/wrk-${name//[^a-z0-9]/_}.out"

    say "running $name for ${duration}s"
    # In the background and awaited: wrk catches SIGINT itself, and bash acts on a Ctrl-C
    # during a foreground command only when the command dies of it; `wait` returns at once.
    env "$@" timeout $((duration + WRK_TIMEOUT_S + 30)) \
        wrk -t"$threads" -c"$connections" -d"${duration}s" --latency \
        --timeout "${WRK_TIMEOUT_S}s" -s "$script" "$url" >"$out" 2>&1 &
    wrk_pid=$!
    rc=0
    wait "$wrk_pid" || rc=$?
    wrk_pid=""
    if [ "$rc" -ne 0 ]; then
        cat "$out" >&2
        die "wrk failed for $name (exit $rc)"
    fi
    read -r rps p99_ms non2xx sockerr < <(awk '
        /^Requests\/sec:/ { rps = $2 }
        /^ +99%/ { p99 = $2 }
        /Non-2xx or 3xx responses:/ { non2xx = $NF }
        /Socket errors:/ { gsub(",", ""); sockerr = $4 + $6 + $8 + $10 }
        END {
            value = p99 + 0
            unit = p99
            sub(/^[0-9.]+/, "", unit)
            scale = unit == "us" ? 0.001 : unit == "ms" ? 1 : unit == "s" ? 1000 : \
                unit == "m" ? 60000 : unit == "h" ? 3600000 : -1
            if (rps == "" || scale < 0)
                print "- - - -"
            else
                printf "%s %.3f %d %d\n", rps, value * scale, non2xx, sockerr
        }' "$out")
    [ "$rps" != "-" ] || { cat "$out" >&2; die "cannot read wrk's output for $name"; }
}

ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN {
        if (b <= 0)
            printf "-"
        else if (a / b >= 0.1)
            printf "%.2f", a / b
        else
            printf "%.2g", a / b
    }'
}

row_measured() {
    local name=$1

    rows+=("$(printf '%-36s %10.1f %7s %9.2f %7s %8d %8d' "$name" "$rps" \
        "$(ratio "$rps" "$bare_rps")" "$p99_ms" "$(ratio "$p99_ms" "$bare_p99")" \
        "$non2xx" "$sockerr")")
}

row_missing() {
    rows+=("$(printf '%-36s %s' "$1" "$2")")
}

# Why an auth scenario cannot run: the route is missing (404) or a prerequisite failed.
missing_reason() {
    local status=$1 detail=$2

    if [ "$status" = 404 ]; then
        echo "not available (404)"
    else
        echo "not available ($detail)"
    fi
}

json_field() {
    python3 -c '
import json, sys
try:
    value = json.load(open(sys.argv[1])).get(sys.argv[2])
except Exception:
    value = None
print(value if isinstance(value, str) else "")
' "$1" "$2"
}

run_wrk "bare {}" "$bare_url/" "$logs/get.lua"
bare_rps=$rps
bare_p99=$p99_ms
row_measured "bare {}"

run_wrk "GET /healthz" "$server_url/healthz" "$logs/get.lua"
row_measured "GET /healthz"

# A user to log in as; the database is fresh, so a fixed address is free.
login_body=$(printf '{"email":"%s","password":"%s"}' "$BENCH_EMAIL" "$BENCH_PASSWORD")
json=(-H "Content-Type: application/json")
register_status=$(http_status POST "$server_url/api/auth/register" "${json[@]}" -d "$login_body")
login_status=$(http_status POST "$server_url/api/auth/login" "${json[@]}" -d "$login_body")
access_token=""
probe_refresh=""
if [ "$login_status" = 200 ]; then
    access_token=$(json_field "$logs/last.json" accessToken)
    probe_refresh=$(json_field "$logs/last.json" refreshToken)
fi
login_detail="login answered $login_status, register $register_status"

name="GET /api/profile"
if [ -n "$access_token" ]; then
    status=$(http_status GET "$server_url/api/profile" -H "Authorization: Bearer $access_token")
    detail="answered $status with a fresh access token"
else
    status=$(http_status GET "$server_url/api/profile")
    detail="no access token: $login_detail"
fi
if [ "$status" = 200 ]; then
    run_wrk "$name" "$server_url/api/profile" "$logs/profile.lua" \
        BENCH_ACCESS_TOKEN="$access_token"
    row_measured "$name"
else
    row_missing "$name" "$(missing_reason "$status" "$detail")"
fi

# The metered route needs a Pro subscription whose quota outlasts the run: the bench user is
# moved to Pro in the database and Pro's monthly quota raised far above what wrk can send.
subscribed=no
if [ -n "$access_token" ]; then
    quiet "$logs/psql.log" psql -q -v ON_ERROR_STOP=1 \
    "$(tools/pg.sh url "$work" manas360)" -c "
        UPDATE subscription_plans SET max_api_requests_per_month = 1000000000000
         WHERE name = 'Pro';
        UPDATE user_subscriptions SET plan_id = (SELECT id FROM subscription_plans
                                                  WHERE name = 'Pro')
         WHERE status = 'active'
           AND user_id = (SELECT id FROM user_accounts WHERE email = '$BENCH_EMAIL');"
    subscribed=yes
fi
for route in /api/features/premium-dashboard /api/api/status; do
    name="GET $route"
    status=$(http_status GET "$server_url$route" -H "Authorization: Bearer $access_token")
    if [ "$subscribed" = yes ] && [ "$status" = 200 ]; then
        run_wrk "$name" "$server_url$route" "$logs/profile.lua" \
            BENCH_ACCESS_TOKEN="$access_token"
        row_measured "$name"
    else
        row_missing "$name" "$(missing_reason "$status" "answered $status; $login_detail")"
    fi
done

# Audit ingest: events pushed to the audit writer as a front end pushes them, until all are
# committed, against one plain COPY of as many rows, on a quiet server. Then the same push
# again while GET /api/profile runs, to see what the writer costs the front end's latency.
ingest_line="not measured (no access token: $login_detail)"
if [ -n "$access_token" ]; then
    db_url=$(tools/pg.sh url "$work" manas360)
    say "pushing $INGEST_EVENTS audit events, then copying as many"
    if "$logs/bin/audit_ingest" "$ingest_endpoint" "$db_url" "$INGEST_EVENTS" \
        >"$logs/ingest.out" 2>&1; then
        read -r _ ingest_eps _ copy_rps _ ingest_ratio <"$logs/ingest.out"
        ingest_line="$ingest_eps events/s end to end, plain COPY $copy_rps rows/s,"
        ingest_line="$ingest_line ratio $ingest_ratio"
    else
        ingest_line="failed: $(tail -n 1 "$logs/ingest.out")"
    fi

    "$logs/bin/audit_ingest" "$ingest_endpoint" "$db_url" "$INGEST_EVENTS" loaded \
        >"$logs/ingest-loaded.out" 2>&1 &
    ingest_pid=$!
    run_wrk "GET /api/profile, ingest" "$server_url/api/profile" "$logs/profile.lua" \
        BENCH_ACCESS_TOKEN="$access_token"
    row_measured "GET /api/profile during ingest"
    wait "$ingest_pid" || true
fi

name="POST /api/auth/refresh"
if [ -n "$probe_refresh" ]; then
    status=$(http_status POST "$server_url/api/auth/refresh" "${json[@]}" \
        -d "{\"refreshToken\":\"$probe_refresh\"}")
    detail="answered $status to a fresh refresh token"
else
    status=$(http_status POST "$server_url/api/auth/refresh" "${json[@]}" -d '{}')
    detail="no refresh token: $login_detail"
fi
seeded=no
if [ "$status" = 200 ]; then
    # One login per connection, plus the spare the Lua script gives to wrk's request check.
    say "logging in $((connections + 1)) times for refresh tokens"
    : >"$logs/refresh-tokens.txt"
    seeded=yes
    for _ in $(seq 0 "$connections"); do
        status=$(http_status POST "$server_url/api/auth/login" "${json[@]}" -d "$login_body")
        token=""
        [ "$status" != 200 ] || token=$(json_field "$logs/last.json" refreshToken)
        if [ -z "$token" ]; then
            detail="a seeding login answered $status without a refresh token"
            seeded=no
            break
        fi
        echo "$token" >>"$logs/refresh-tokens.txt"
    done
fi
if [ "$seeded" = yes ]; then
    run_wrk "$name" "$server_url/api/auth/refresh" "$logs/refresh.lua" \
        BENCH_TOKEN_FILE="$logs/refresh-tokens.txt" BENCH_THREADS="$threads"
    row_measured "$name"
else
    row_missing "$name" "$(missing_reason "$status" "$detail")"
fi

name="POST /api/auth/login"
if [ "$login_status" = 200 ]; then
    run_wrk "$name" "$server_url/api/auth/login" "$logs/login.lua" \
        BENCH_LOGIN_BODY="$login_body"
    login_rps=$rps
    row_measured "$name"
else
    row_missing "$name" "$(missing_reason "$login_status" "$login_detail")"
fi

# --- (e) report ------------------------------------------------------------------------

echo
echo "wrk -t$threads -c$connections -d${duration}s on 127.0.0.1, $(nproc) cores;" \
    "manas360d HTTP_THREADS=$connections, bare_server $connections threads"
printf '%-36s %10s %7s %9s %7s %8s %8s\n' scenario "req/s" "x bare" "p99 ms" "x bare" \
    non-2xx "sock err"
printf '%s\n' "${rows[@]}"
echo
echo "audit ingest ($INGEST_EVENTS events): $ingest_line"
echo "argon2id hash rate (libsodium interactive, $HASH_RATE_THREADS threads): $hash_rate hashes/s"
if [ -n "$login_rps" ]; then
    echo "login req/s / hash rate: $(ratio "$login_rps" "$hash_rate")"
else
    echo "login req/s / hash rate: - (login not measured)"
fi

# --- (f) the EXIT trap stops everything -------------------------------------------------
