/* SPDX-License-Identifier: MIT */
/* The LISTEN thread that keeps the front end's caches true across processes. */
#include "manas360/watch.h"

#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "manas360/log.h"

#define WATCH_POLL_MS 250
#define WATCH_RECONNECT_MS 1000
#define WATCH_PROBE_MS 1000         /* a quiet connection is asked this often if it lives */
#define WATCH_PROBE_TIMEOUT_MS 2000 /* an unanswered probe counts as a lost connection */
#define WATCH_APPLICATION_NAME "manas360-watch"
#define WATCH_LOG_MODULE "watch"

struct watch {
    const struct cfg *cfg;
    struct watch_channel channels[WATCH_CHANNELS_MAX];
    int count;
    watch_reconnect_fn on_reconnect;
    void *reconnect_arg;
    pthread_t thread;
    atomic_bool stopping;
    atomic_bool connected;
    int64_t probe_sent_ms; /* when the probe under way was sent; 0 when none is */
    int64_t probe_due_ms;  /* when the next probe goes out */
};

static int64_t watch_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Connects and LISTENs on every channel; NULL when the database cannot be reached. The
 * connection is named, so operators can find it, and TCP keepalives are on where they
 * apply. */
static PGconn *watch_connect(struct watch *watch)
{
    static const char *const keys[] = {"dbname",
                                       "application_name",
                                       "keepalives",
                                       "keepalives_idle",
                                       "keepalives_interval",
                                       "keepalives_count",
                                       NULL};
    const char *values[] = {
        watch->cfg->database_url, WATCH_APPLICATION_NAME, "1", "5", "1", "3", NULL};
    PGconn *conn = PQconnectdbParams(keys, values, 1);
    char sql[128];

    if (PQstatus(conn) != CONNECTION_OK) {
        PQfinish(conn);
        return NULL;
    }
    for (int i = 0; i < watch->count; i++) {
        PGresult *res;
        bool ok;

        snprintf(sql, sizeof(sql), "LISTEN %s", watch->channels[i].name);
        res = PQexec(conn, sql);
        ok = PQresultStatus(res) == PGRES_COMMAND_OK;
        PQclear(res);
        if (!ok) {
            PQfinish(conn);
            return NULL;
        }
    }
    return conn;
}

/*
 * Keeps a probe going: a connection that went away without a word (a network cut, a
 * frozen server) would otherwise look idle, and its silence would pass for "nothing
 * changed". False when the connection is lost.
 */
static bool watch_probe(struct watch *watch, PGconn *conn)
{
    int64_t now = watch_now_ms();

    if (watch->probe_sent_ms != 0 && !PQisBusy(conn)) {
        PGresult *res;

        while ((res = PQgetResult(conn)) != NULL)
            PQclear(res);
        watch->probe_sent_ms = 0;
        watch->probe_due_ms = now + WATCH_PROBE_MS;
    }
    if (watch->probe_sent_ms != 0)
        return now - watch->probe_sent_ms < WATCH_PROBE_TIMEOUT_MS;
    if (now >= watch->probe_due_ms) {
        if (PQsendQuery(conn, "SELECT 1") != 1)
            return false;
        watch->probe_sent_ms = now;
    }
    return true;
}

/* Hands every arrived notification to its channel; false when the connection is lost. */
static bool watch_drain(struct watch *watch, PGconn *conn)
{
    struct pollfd pfd = {PQsocket(conn), POLLIN, 0};
    PGnotify *note;

    if (poll(&pfd, 1, WATCH_POLL_MS) < 0)
        return true;
    if (PQconsumeInput(conn) == 0 || PQstatus(conn) != CONNECTION_OK)
        return false;
    if (!watch_probe(watch, conn))
        return false;
    while ((note = PQnotifies(conn)) != NULL) {
        for (int i = 0; i < watch->count; i++) {
            if (strcmp(note->relname, watch->channels[i].name) == 0)
                watch->channels[i].on_notify(watch->channels[i].arg, note->extra);
        }
        PQfreemem(note);
    }
    return true;
}

static void *watch_main(void *arg)
{
    struct watch *watch = arg;
    PGconn *conn = NULL;

    while (!atomic_load(&watch->stopping)) {
        if (conn == NULL) {
            conn = watch_connect(watch);
            if (conn == NULL) {
                poll(NULL, 0, WATCH_RECONNECT_MS);
                continue;
            }
            watch->probe_sent_ms = 0;
            watch->probe_due_ms = watch_now_ms() + WATCH_PROBE_MS;
            /* Whatever changed while nobody listened is unknown. */
            watch->on_reconnect(watch->reconnect_arg);
            atomic_store(&watch->connected, true);
            log_notice(WATCH_LOG_MODULE, "event=listening channels=%d", watch->count);
        }
        if (!watch_drain(watch, conn)) {
            atomic_store(&watch->connected, false);
            watch->on_reconnect(watch->reconnect_arg);
            log_warn(WATCH_LOG_MODULE, "event=listen_connection_lost action=caches_flushed");
            PQfinish(conn);
            conn = NULL;
        }
    }
    PQfinish(conn);
    return NULL;
}

struct watch *watch_new(const struct cfg *cfg, const struct watch_channel *channels, int count,
                        watch_reconnect_fn on_reconnect, void *reconnect_arg)
{
    struct watch *watch = calloc(1, sizeof(*watch));

    if (watch == NULL || count > WATCH_CHANNELS_MAX) {
        free(watch);
        return NULL;
    }
    watch->cfg = cfg;
    memcpy(watch->channels, channels, sizeof(*channels) * (size_t)count);
    watch->count = count;
    watch->on_reconnect = on_reconnect;
    watch->reconnect_arg = reconnect_arg;
    atomic_init(&watch->stopping, false);
    atomic_init(&watch->connected, false);
    if (pthread_create(&watch->thread, NULL, watch_main, watch) != 0) {
        free(watch);
        return NULL;
    }
    return watch;
}

void watch_destroy(struct watch **watch)
{
    if (watch == NULL || *watch == NULL)
        return;
    atomic_store(&(*watch)->stopping, true);
    pthread_join((*watch)->thread, NULL);
    free(*watch);
    *watch = NULL;
}

bool watch_connected(struct watch *watch)
{
    return atomic_load(&watch->connected);
}
