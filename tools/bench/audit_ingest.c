/* SPDX-License-Identifier: MIT */
/*
 * Audit ingest rate, end to end against a plain COPY of the same rows.
 *
 *   audit_ingest ENDPOINT DATABASE_URL EVENTS [TAG]
 *
 * 1. Pushes EVENTS permission_denied events to the audit writer at ENDPOINT, rendered as a
 *    front end renders them (src/common/audit_row.c) in messages of the size it sends, as
 *    fast as ZeroMQ takes them, and waits until all are committed: the end-to-end rate.
 * 2. Writes the same number of rows with one COPY on its own connection: the plain rate.
 * Prints "ingest EPS copy RPS ratio R" on one line.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <libpq-fe.h>
#include <zmq.h>

#include "manas360/audit_row.h"

#define INGEST_MESSAGE_EVENTS 500
#define INGEST_WAIT_S 300
#define INGEST_ROW                                                                                 \
    "\\N\tpermission_denied\troute\t/api/admin/users\tGET\tfailure\t"                              \
    "{\"reason\":\"permission\",\"route\":\"/api/admin/users\",\"batch\":\"copy\"}"                \
    "\t127.0.0.1\tbench\t2026-12-03 12:00:00+00\n"

static long ingest_last;                  /* the number of the last event */
static const char *ingest_tag = "ingest"; /* details.batch of the pushed events */
static char ingest_sentinel[37];          /* user_id of the last event: found by index */

static double ingest_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static bool ingest_sentinel_found(PGconn *conn)
{
    const char *params[] = {ingest_sentinel};
    PGresult *res = PQexecParams(conn, "SELECT 1 FROM audit_logs WHERE user_id = $1", 1, NULL,
                                 params, NULL, NULL, 0);
    bool found = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) > 0;

    PQclear(res);
    return found;
}

static long ingest_count(PGconn *conn, const char *batch)
{
    const char *params[] = {batch};
    PGresult *res =
        PQexecParams(conn, "SELECT count(*) FROM audit_logs WHERE details->>'batch' = $1", 1, NULL,
                     params, NULL, NULL, 0);
    long n = PQresultStatus(res) == PGRES_TUPLES_OK ? strtol(PQgetvalue(res, 0, 0), NULL, 10) : -1;

    PQclear(res);
    return n;
}

/* One message of events, rendered as the front end renders them. */
static char *ingest_message(long first, size_t *len)
{
    struct audit_rows rows = {0};

    for (long i = 0; i < INGEST_MESSAGE_EVENTS; i++) {
        json_t *event = json_pack(
            "{s:s, s:s, s:s, s:s, s:s, s:{s:s, s:s, s:s, s:I}, s:s, s:s, s:I}", "event_type",
            "permission_denied", "resource_type", "route", "resource_id", "/api/admin/users",
            "action", "GET", "status", "failure", "details", "reason", "permission", "route",
            "/api/admin/users", "batch", ingest_tag, "n", (json_int_t)(first + i), "ip_address",
            "127.0.0.1", "user_agent", "bench", "at_ms", (json_int_t)time(NULL) * 1000);

        if (first + i == ingest_last)
            json_object_set_new(event, "user_id", json_string(ingest_sentinel));
        audit_rows_add(&rows, event);
        json_decref(event);
    }
    *len = rows.len;
    return rows.failed ? (free(rows.data), NULL) : rows.data;
}

/* Renders every message first, so that the time measured is the writer's, not this
 * process's: a front end renders its events one by one, off its request path. */
static double ingest_pushed(const char *endpoint, PGconn *conn, long events)
{
    long nmessages = (events + INGEST_MESSAGE_EVENTS - 1) / INGEST_MESSAGE_EVENTS;
    char **messages = calloc((size_t)nmessages, sizeof(*messages));
    size_t *lens = calloc((size_t)nmessages, sizeof(*lens));
    void *ctx = zmq_ctx_new();
    void *push = zmq_socket(ctx, ZMQ_PUSH);
    int linger = 10000;
    double rate = -1;
    double started;

    ingest_last = nmessages * INGEST_MESSAGE_EVENTS - 1;
    snprintf(ingest_sentinel, sizeof(ingest_sentinel), "00000000-0000-4000-8000-%012lx",
             (unsigned long)time(NULL));
    zmq_setsockopt(push, ZMQ_LINGER, &linger, sizeof(linger));
    if (messages == NULL || lens == NULL || zmq_connect(push, endpoint) != 0)
        goto done;
    for (long m = 0; m < nmessages; m++) {
        messages[m] = ingest_message(m * INGEST_MESSAGE_EVENTS, &lens[m]);
        if (messages[m] == NULL)
            goto done;
    }

    started = ingest_now();
    for (long m = 0; m < nmessages; m++)
        zmq_send(push, messages[m], lens[m], 0);
    /* One writer writes in arrival order: once the last event is in, all are. */
    while (!ingest_sentinel_found(conn)) {
        if (ingest_now() - started > INGEST_WAIT_S)
            goto done;
        nanosleep(&(struct timespec){0, 5 * 1000 * 1000}, NULL);
    }
    rate = (double)(nmessages * INGEST_MESSAGE_EVENTS) / (ingest_now() - started);
    if (ingest_count(conn, ingest_tag) != nmessages * INGEST_MESSAGE_EVENTS) {
        fprintf(stderr, "audit_ingest: events were lost or written twice\n");
        rate = -1;
    }

done:
    for (long m = 0; messages != NULL && m < nmessages; m++)
        free(messages[m]);
    free(messages);
    free(lens);
    zmq_close(push);
    zmq_ctx_term(ctx);
    return rate;
}

static double ingest_copied(PGconn *conn, long events)
{
    static const char row[] = INGEST_ROW;
    size_t len = (size_t)events * (sizeof(row) - 1);
    char *data = malloc(len);
    double started;
    PGresult *res;
    int ok;

    if (data == NULL)
        return -1;
    for (long i = 0; i < events; i++)
        memcpy(data + (size_t)i * (sizeof(row) - 1), row, sizeof(row) - 1);

    started = ingest_now();
    res = PQexec(conn, "COPY audit_logs (user_id, event_type, resource_type, resource_id, action,"
                       " status, details, ip_address, user_agent, created_at) FROM STDIN");
    ok = PQresultStatus(res) == PGRES_COPY_IN;
    PQclear(res);
    ok = ok && PQputCopyData(conn, data, (int)len) == 1 && PQputCopyEnd(conn, NULL) == 1;
    res = PQgetResult(conn);
    ok = ok && PQresultStatus(res) == PGRES_COMMAND_OK;
    PQclear(res);
    while ((res = PQgetResult(conn)) != NULL)
        PQclear(res);
    free(data);
    return ok ? (double)events / (ingest_now() - started) : -1;
}

int main(int argc, char **argv)
{
    PGconn *conn;
    long events;
    double pushed;
    double copied;

    if (argc < 4 || argc > 5 || (events = strtol(argv[3], NULL, 10)) <= 0) {
        fprintf(stderr, "usage: audit_ingest ENDPOINT DATABASE_URL EVENTS [TAG]\n");
        return 2;
    }
    if (argc == 5)
        ingest_tag = argv[4];
    conn = PQconnectdb(argv[2]);
    if (PQstatus(conn) != CONNECTION_OK) {
        fprintf(stderr, "audit_ingest: %s", PQerrorMessage(conn));
        return 1;
    }
    pushed = ingest_pushed(argv[1], conn, events);
    copied = ingest_copied(conn, events);
    PQfinish(conn);
    if (pushed <= 0 || copied <= 0) {
        fprintf(stderr, "audit_ingest: a measurement failed\n");
        return 1;
    }
    printf("ingest %.0f copy %.0f ratio %.2f\n", pushed, copied, pushed / copied);
    return 0;
}
