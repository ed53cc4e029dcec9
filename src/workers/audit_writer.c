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

#include <zmq.h>

#include "manas360/audit_row.h"
#include "manas360/db.h"
#include "manas360/err.h"
#include "manas360/log.h"

#define AUDIT_LOG_MODULE "audit"
#define AUDIT_POLL_MS 50
#define AUDIT_SPOOL_DIR "audit-spool"
#define AUDIT_PATH_MAX 1024

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
    struct audit_rows pending; /* rows received and not yet written, oldest first */
    bool writing;              /* the last write worked: take a batch at a time */
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

/* Writes `rows` with one COPY. */
static int audit_copy(struct audit_writer *w, const struct audit_rows *rows)
{
    if (rows->len == 0)
        return 0;
    return db_copy_in(w->db, AUDIT_ROWS_COPY_SQL, rows->data, rows->len);
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

/* Writes `rows` to a new spool file: written whole under a temporary name, then renamed. */
static int audit_spool_write(struct audit_writer *w, const struct audit_rows *rows)
{
    char tmp[AUDIT_PATH_MAX + 128];
    char path[AUDIT_PATH_MAX + 64];
    int fd;
    int rc = M360_EIO;

    snprintf(path, sizeof(path), "%s/%013lld-%06llu.rows", w->spool_dir, (long long)audit_now_ms(),
             (unsigned long long)w->spool_seq++);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        goto done;
    if (write(fd, rows->data, rows->len) == (ssize_t)rows->len && fsync(fd) == 0)
        rc = 0;
    close(fd);
    if (rc == 0 && rename(tmp, path) != 0)
        rc = M360_EIO;

done:
    if (rc != 0) {
        unlink(tmp);
        log_err(AUDIT_LOG_MODULE, "event=spool_write_failed events=%zu errno=%d", rows->count,
                errno);
    } else {
        log_warn(AUDIT_LOG_MODULE, "event=spooled events=%zu", rows->count);
    }
    return rc;
}

/* Reads a spool file into `rows`; false when it cannot be read, or is not whole rows. */
static bool audit_spool_read(const char *path, struct audit_rows *rows)
{
    FILE *file = fopen(path, "rb");
    char *data = NULL;
    long size = -1;
    bool ok = false;

    if (file != NULL && fseek(file, 0, SEEK_END) == 0)
        size = ftell(file);
    if (size > 0 && fseek(file, 0, SEEK_SET) == 0)
        data = malloc((size_t)size);
    if (data != NULL && fread(data, 1, (size_t)size, file) == (size_t)size)
        ok = audit_rows_append(rows, data, (size_t)size);
    free(data);
    if (file != NULL)
        fclose(file);
    return ok;
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

        if (len < 6 || strcmp(entry->d_name + len - 5, ".rows") != 0)
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
        struct audit_rows rows = {0};

        snprintf(path, sizeof(path), "%s/%s", w->spool_dir, names[i]);
        if (rc == 0 && !audit_spool_read(path, &rows)) {
            log_err(AUDIT_LOG_MODULE, "event=spool_file_unreadable file=%s", names[i]);
        } else if (rc == 0) {
            rc = audit_copy(w, &rows);
            if (rc == 0) {
                unlink(path);
                log_notice(AUDIT_LOG_MODULE, "event=spool_replayed events=%zu", rows.count);
            }
        }
        audit_rows_release(&rows);
        free(names[i]);
    }
    free(names);
    return rc;
}

/* ---- Batches --------------------------------------------------------------------------- */

/*
 * Writes what waits: the spool first, then the pending rows. When the database is down and
 * more than AUDIT_WRITER_MEMORY_MAX rows wait (or `spool_all`, at stop), they go to the spool
 * instead. Rows the database refuses outright are spooled for an operator.
 */
static void audit_flush(struct audit_writer *w, bool spool_all)
{
    int rc = audit_db_ready(w) ? audit_spool_replay(w) : M360_EUNAVAILABLE;

    if (rc == 0)
        rc = audit_copy(w, &w->pending);
    w->writing = rc == 0;
    if (rc == 0 && w->pending.count > 0)
        log_info(AUDIT_LOG_MODULE, "event=batch_written events=%zu", w->pending.count);
    if (rc == M360_EINVAL)
        log_err(AUDIT_LOG_MODULE, "event=batch_refused events=%zu", w->pending.count);
    if (rc != 0 && w->pending.count > 0 && rc != M360_EINVAL)
        log_warn(AUDIT_LOG_MODULE, "event=write_failed pending=%zu code=%s", w->pending.count,
                 err_str(rc));

    if (rc == 0 ||
        ((rc == M360_EINVAL || spool_all || w->pending.count > AUDIT_WRITER_MEMORY_MAX) &&
         w->pending.count > 0 && audit_spool_write(w, &w->pending) == 0))
        audit_rows_reset(&w->pending);
    w->pending_since_ms = audit_now_ms();
}

/* Takes the messages waiting on the socket, without blocking: a batch at a time while writes
 * work, everything while they do not (or when `all`), so producers never wait on a database
 * that is down. */
static void audit_receive(struct audit_writer *w, bool all)
{
    zmq_msg_t msg;

    zmq_msg_init(&msg);
    while ((all || !w->writing || w->pending.count < AUDIT_WRITER_BATCH) &&
           zmq_msg_recv(&msg, w->pull, ZMQ_DONTWAIT) >= 0) {
        if (w->pending.count == 0)
            w->pending_since_ms = audit_now_ms();
        if (!audit_rows_append(&w->pending, zmq_msg_data(&msg), zmq_msg_size(&msg)))
            log_err(AUDIT_LOG_MODULE, "event=malformed_message bytes=%zu", zmq_msg_size(&msg));
    }
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
        audit_receive(w, false);

        now = audit_now_ms();
        if (w->pending.count >= AUDIT_WRITER_BATCH ||
            now - w->pending_since_ms >= AUDIT_WRITER_FLUSH_MS)
            audit_flush(w, false);
        if (now >= w->retention_due_ms && audit_db_ready(w))
            audit_partitions_keep(w);
    }

    /* Whatever was pushed before the stop is taken, and written or spooled. */
    audit_receive(w, true);
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
    w->writing = true;
    snprintf(w->spool_dir, sizeof(w->spool_dir), "%s/%s", cfg->var_dir, AUDIT_SPOOL_DIR);
    if (mkdir(w->spool_dir, 0700) != 0 && errno != EEXIST)
        log_warn(AUDIT_LOG_MODULE, "event=spool_dir_failed errno=%d", errno);

    w->pull = zmq_socket(zmq_ctx, ZMQ_PULL);
    if (w->pull == NULL)
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
    audit_rows_release(&w->pending);
    free(w);
    *writer = NULL;
}
