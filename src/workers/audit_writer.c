/* SPDX-License-Identifier: MIT */
/* The audit writer: batches pushed events into audit_logs with COPY, spooling while the
 * database is down, and keeps the monthly partitions. */
#include "manas360/audit.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <zmq.h>

#include "manas360/db.h"
#include "manas360/err.h"
#include "manas360/log.h"

#define AUDIT_LOG_MODULE "audit"
#define AUDIT_POLL_MS 50
#define AUDIT_SPOOL_DIR "audit-spool"
#define AUDIT_PATH_MAX 1024
#define AUDIT_COPY_SQL                                                                             \
    "COPY audit_logs (user_id, event_type, resource_type, resource_id, action, status, details,"   \
    " ip_address, user_agent, created_at) FROM STDIN"

/* clang-format off */
static const struct db_stmt audit_writer_stmts[] = {
    {"audit_partition_ensure",
     "SELECT audit_logs_ensure_partition("
     "  (date_trunc('month', now() AT TIME ZONE 'UTC') + make_interval(months => $1::int))::date)",
     1},
    {"audit_partitions_drop", "SELECT audit_logs_drop_expired($1::int)", 1},
};
/* clang-format on */

struct audit_writer {
    const struct cfg *cfg;
    void *pull;
    struct db *db; /* NULL while the database cannot be reached */
    pthread_t thread;
    bool started;
    atomic_bool stopping;
    json_t *pending; /* events received and not yet written, oldest first */
    int64_t pending_since_ms;
    int64_t retention_due_ms;
    char spool_dir[AUDIT_PATH_MAX];
    uint64_t spool_seq;
};

static int64_t audit_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- COPY text ------------------------------------------------------------------------- */

/* A growing buffer; `failed` once an allocation failed. */
struct audit_text {
    char *data;
    size_t len;
    size_t cap;
    bool failed;
};

static void audit_text_put(struct audit_text *t, const char *bytes, size_t n)
{
    if (t->failed)
        return;
    if (t->len + n + 1 > t->cap) {
        size_t cap = t->cap > 0 ? t->cap : 65536;
        char *grown;

        while (t->len + n + 1 > cap)
            cap *= 2;
        grown = realloc(t->data, cap);
        if (grown == NULL) {
            t->failed = true;
            return;
        }
        t->data = grown;
        t->cap = cap;
    }
    memcpy(t->data + t->len, bytes, n);
    t->len += n;
}

/* One column in the COPY text format: \N for NULL, the escapes for what would break a row. */
static void audit_text_column(struct audit_text *t, const char *value, bool last)
{
    if (value == NULL) {
        audit_text_put(t, "\\N", 2);
    } else {
        for (const char *p = value; *p != '\0'; p++) {
            const char *escaped = *p == '\\'   ? "\\\\"
                                  : *p == '\t' ? "\\t"
                                  : *p == '\n' ? "\\n"
                                  : *p == '\r' ? "\\r"
                                               : NULL;

            if (escaped != NULL)
                audit_text_put(t, escaped, 2);
            else
                audit_text_put(t, p, 1);
        }
    }
    audit_text_put(t, last ? "\n" : "\t", 1);
}

/* One event as one COPY row; false when it is not an object with an event type. */
static bool audit_text_row(struct audit_text *t, const json_t *event)
{
    static const char *const text_columns[] = {"user_id",     "event_type", "resource_type",
                                               "resource_id", "action",     "status"};
    const json_t *details = json_object_get(event, "details");
    json_int_t at_ms = json_integer_value(json_object_get(event, "at_ms"));
    char *details_text;
    char created[48];
    time_t seconds;
    struct tm tm;

    if (!json_is_object(event) || json_string_value(json_object_get(event, "event_type")) == NULL)
        return false;
    for (size_t i = 0; i < sizeof(text_columns) / sizeof(text_columns[0]); i++) {
        const char *value = json_string_value(json_object_get(event, text_columns[i]));

        if (i == 5 && value == NULL)
            value = "success";
        audit_text_column(t, value, false);
    }

    details_text = json_is_object(details) ? json_dumps(details, JSON_COMPACT) : NULL;
    audit_text_column(t, details_text != NULL ? details_text : "{}", false);
    free(details_text);
    audit_text_column(t, json_string_value(json_object_get(event, "ip_address")), false);
    audit_text_column(t, json_string_value(json_object_get(event, "user_agent")), false);

    if (at_ms <= 0)
        at_ms = audit_now_ms();
    seconds = (time_t)(at_ms / 1000);
    gmtime_r(&seconds, &tm);
    snprintf(created, sizeof(created), "%04d-%02d-%02d %02d:%02d:%02d.%03d+00", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(at_ms % 1000));
    audit_text_column(t, created, true);
    return true;
}

/* Writes `events` (an array) with one COPY. Rows that are not events are logged and left out. */
static int audit_copy(struct audit_writer *w, const json_t *events)
{
    struct audit_text text = {0};
    size_t skipped = 0;
    size_t i;
    json_t *event;
    int rc;

    json_array_foreach(events, i, event)
    {
        if (!audit_text_row(&text, event))
            skipped++;
    }
    if (skipped > 0)
        log_err(AUDIT_LOG_MODULE, "event=malformed_events_skipped events=%zu", skipped);
    if (text.failed) {
        free(text.data);
        return M360_ENOMEM;
    }
    if (text.len == 0)
        return 0;

    rc = db_copy_in(w->db, AUDIT_COPY_SQL, text.data, text.len);
    free(text.data);
    return rc;
}

/* ---- The database and the spool --------------------------------------------------------- */

/* A connection when there is none; false while the database cannot be reached. */
static bool audit_db_ready(struct audit_writer *w)
{
    if (w->db != NULL)
        return true;
    w->db = db_new(w->cfg->database_url);
    if (w->db != NULL &&
        db_prepare(w->db, audit_writer_stmts,
                   sizeof(audit_writer_stmts) / sizeof(audit_writer_stmts[0])) != 0)
        db_destroy(&w->db);
    return w->db != NULL;
}

/* Writes `events` to a new spool file: written whole under a temporary name, then renamed. */
static int audit_spool_write(struct audit_writer *w, const json_t *events)
{
    char tmp[AUDIT_PATH_MAX + 128];
    char path[AUDIT_PATH_MAX + 64];
    int fd;
    int rc = M360_EIO;

    snprintf(path, sizeof(path), "%s/%013lld-%06llu.json", w->spool_dir, (long long)audit_now_ms(),
             (unsigned long long)w->spool_seq++);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        goto done;
    if (json_dumpfd(events, fd, JSON_COMPACT) == 0 && fsync(fd) == 0)
        rc = 0;
    close(fd);
    if (rc == 0 && rename(tmp, path) != 0)
        rc = M360_EIO;

done:
    if (rc != 0) {
        unlink(tmp);
        log_err(AUDIT_LOG_MODULE, "event=spool_write_failed events=%zu errno=%d",
                json_array_size(events), errno);
    } else {
        log_warn(AUDIT_LOG_MODULE, "event=spooled events=%zu", json_array_size(events));
    }
    return rc;
}

static int audit_name_compare(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The spool's file names, oldest first (names sort by time); *count receives how many. */
static char **audit_spool_list(const struct audit_writer *w, size_t *count)
{
    DIR *dir = opendir(w->spool_dir);
    char **names = NULL;
    size_t cap = 0;
    struct dirent *entry;

    *count = 0;
    while (dir != NULL && (entry = readdir(dir)) != NULL) {
        size_t len = strlen(entry->d_name);

        if (len < 6 || strcmp(entry->d_name + len - 5, ".json") != 0)
            continue;
        if (*count == cap) {
            char **grown = realloc(names, (cap = cap > 0 ? cap * 2 : 16) * sizeof(*names));

            if (grown == NULL)
                break;
            names = grown;
        }
        names[*count] = strdup(entry->d_name);
        if (names[*count] != NULL)
            (*count)++;
    }
    if (dir != NULL)
        closedir(dir);
    if (*count > 0)
        qsort(names, *count, sizeof(*names), audit_name_compare);
    return names;
}

/* Writes the spooled files, oldest first, removing each once committed. Stops at the first
 * failure: the rest wait for the next turn. */
static int audit_spool_replay(struct audit_writer *w)
{
    size_t count;
    char **names = audit_spool_list(w, &count);
    int rc = 0;

    for (size_t i = 0; i < count; i++) {
        char path[AUDIT_PATH_MAX + 300];
        json_t *events;

        snprintf(path, sizeof(path), "%s/%s", w->spool_dir, names[i]);
        events = rc == 0 ? json_load_file(path, 0, NULL) : NULL;
        if (rc == 0 && !json_is_array(events)) {
            log_err(AUDIT_LOG_MODULE, "event=spool_file_unreadable file=%s", names[i]);
        } else if (rc == 0) {
            rc = audit_copy(w, events);
            if (rc == 0) {
                unlink(path);
                log_notice(AUDIT_LOG_MODULE, "event=spool_replayed events=%zu",
                           json_array_size(events));
            }
        }
        json_decref(events);
        free(names[i]);
    }
    free(names);
    return rc;
}

/* ---- Batches --------------------------------------------------------------------------- */

/* `count` pending events from `first`, as a new array. */
static json_t *audit_pending_slice(struct audit_writer *w, size_t first, size_t count)
{
    json_t *batch = json_array();

    for (size_t i = first; batch != NULL && i < first + count; i++)
        json_array_append(batch, json_array_get(w->pending, i));
    return batch;
}

/* Forgets the first `n` pending events (written or spooled). */
static void audit_pending_drop(struct audit_writer *w, size_t n)
{
    json_t *rest;

    if (n == 0)
        return;
    rest = audit_pending_slice(w, n, json_array_size(w->pending) - n);
    if (rest == NULL)
        return;
    json_decref(w->pending);
    w->pending = rest;
}

/*
 * Writes what waits: the spool first, then the pending events in batches. When the database
 * is down and more than AUDIT_WRITER_MEMORY_MAX events wait (or `spool_all`, at stop), the
 * pending events go to the spool instead.
 */
static void audit_flush(struct audit_writer *w, bool spool_all)
{
    int rc = audit_db_ready(w) ? audit_spool_replay(w) : M360_EUNAVAILABLE;
    size_t total = json_array_size(w->pending);
    size_t done = 0;

    while (rc == 0 && done < total) {
        size_t n = total - done < AUDIT_WRITER_BATCH ? total - done : AUDIT_WRITER_BATCH;
        json_t *batch = audit_pending_slice(w, done, n);

        rc = batch != NULL ? audit_copy(w, batch) : M360_ENOMEM;
        if (rc == M360_EINVAL) {
            /* The database refuses these rows and always will: keep them where an operator
             * can read them, and go on with the rest. */
            log_err(AUDIT_LOG_MODULE, "event=batch_refused events=%zu", n);
            rc = audit_spool_write(w, batch);
        } else if (rc == 0) {
            log_info(AUDIT_LOG_MODULE, "event=batch_written events=%zu", n);
        }
        if (rc == 0)
            done += n;
        json_decref(batch);
    }
    audit_pending_drop(w, done);

    if (rc != 0 && json_array_size(w->pending) > 0) {
        log_warn(AUDIT_LOG_MODULE, "event=write_failed pending=%zu code=%s",
                 json_array_size(w->pending), err_str(rc));
        if ((spool_all || json_array_size(w->pending) > AUDIT_WRITER_MEMORY_MAX) &&
            audit_spool_write(w, w->pending) == 0)
            audit_pending_drop(w, json_array_size(w->pending));
    }
    w->pending_since_ms = audit_now_ms();
}

/* Adds the events of one message; a message that is not an array of events is logged. */
static void audit_receive(struct audit_writer *w, const char *data, size_t len)
{
    json_t *events = json_loadb(data, len, 0, NULL);

    if (!json_is_array(events)) {
        log_err(AUDIT_LOG_MODULE, "event=malformed_message bytes=%zu", len);
    } else {
        if (json_array_size(w->pending) == 0)
            w->pending_since_ms = audit_now_ms();
        json_array_extend(w->pending, events);
    }
    json_decref(events);
}

/* Takes the messages waiting on the socket, without blocking, until a batch is full (or all
 * of them, when `all`). */
static void audit_drain_socket(struct audit_writer *w, bool all)
{
    zmq_msg_t msg;

    zmq_msg_init(&msg);
    while ((all || json_array_size(w->pending) < AUDIT_WRITER_BATCH) &&
           zmq_msg_recv(&msg, w->pull, ZMQ_DONTWAIT) >= 0)
        audit_receive(w, zmq_msg_data(&msg), zmq_msg_size(&msg));
    zmq_msg_close(&msg);
}

/* ---- Partitions ------------------------------------------------------------------------ */

/* Creates the partitions of this month and the coming ones, and drops the expired ones. Each
 * creation runs in a transaction of its own, as the function asks. */
static void audit_partitions_keep(struct audit_writer *w)
{
    char text[16];
    const char *params[1] = {text};
    PGresult *res = NULL;

    w->retention_due_ms = audit_now_ms() + AUDIT_WRITER_RETENTION_MS;
    for (int m = 0; m <= AUDIT_WRITER_MONTHS_AHEAD; m++) {
        snprintf(text, sizeof(text), "%d", m);
        if (db_exec(w->db, "audit_partition_ensure", 1, params, NULL) != 0)
            return;
    }

    snprintf(text, sizeof(text), "%d", w->cfg->audit_retention_days);
    if (db_exec(w->db, "audit_partitions_drop", 1, params, &res) == 0) {
        log_info(AUDIT_LOG_MODULE, "event=partitions_kept dropped=%s retention_days=%d",
                 PQgetvalue(res, 0, 0), w->cfg->audit_retention_days);
        PQclear(res);
    }
}

/* ---- The thread ------------------------------------------------------------------------- */

static void *audit_writer_main(void *arg)
{
    struct audit_writer *w = arg;
    zmq_pollitem_t item = {w->pull, 0, ZMQ_POLLIN, 0};

    while (!atomic_load(&w->stopping)) {
        int64_t now;

        zmq_poll(&item, 1, AUDIT_POLL_MS);
        audit_drain_socket(w, false);

        now = audit_now_ms();
        if (json_array_size(w->pending) >= AUDIT_WRITER_BATCH ||
            now - w->pending_since_ms >= AUDIT_WRITER_FLUSH_MS)
            audit_flush(w, false);
        if (now >= w->retention_due_ms && audit_db_ready(w))
            audit_partitions_keep(w);
    }

    /* Whatever was pushed before the stop is taken, and written or spooled. */
    audit_drain_socket(w, true);
    audit_flush(w, true);
    return NULL;
}

struct audit_writer *audit_writer_new(void *zmq_ctx, const struct cfg *cfg)
{
    struct audit_writer *w = calloc(1, sizeof(*w));
    int linger = 0;

    if (w == NULL)
        return NULL;
    w->cfg = cfg;
    atomic_init(&w->stopping, false);
    w->pending = json_array();
    snprintf(w->spool_dir, sizeof(w->spool_dir), "%s/%s", cfg->var_dir, AUDIT_SPOOL_DIR);
    if (mkdir(w->spool_dir, 0700) != 0 && errno != EEXIST)
        log_warn(AUDIT_LOG_MODULE, "event=spool_dir_failed errno=%d", errno);

    w->pull = zmq_socket(zmq_ctx, ZMQ_PULL);
    if (w->pull == NULL || w->pending == NULL)
        goto fail;
    zmq_setsockopt(w->pull, ZMQ_LINGER, &linger, sizeof(linger));
    if (zmq_bind(w->pull, cfg->audit_ingest_endpoint) != 0) {
        log_err(AUDIT_LOG_MODULE, "event=bind_failed endpoint=%s reason=%s",
                cfg->audit_ingest_endpoint, zmq_strerror(zmq_errno()));
        goto fail;
    }
    if (audit_db_ready(w))
        audit_partitions_keep(w);
    if (pthread_create(&w->thread, NULL, audit_writer_main, w) != 0)
        goto fail;
    w->started = true;
    log_notice(AUDIT_LOG_MODULE, "event=writer_started endpoint=%s", cfg->audit_ingest_endpoint);
    return w;

fail:
    audit_writer_destroy(&w);
    return NULL;
}

void audit_writer_destroy(struct audit_writer **writer)
{
    struct audit_writer *w = writer != NULL ? *writer : NULL;

    if (w == NULL)
        return;
    atomic_store(&w->stopping, true);
    if (w->started)
        pthread_join(w->thread, NULL);
    if (w->pull != NULL)
        zmq_close(w->pull);
    db_destroy(&w->db);
    json_decref(w->pending);
    free(w);
    *writer = NULL;
}
