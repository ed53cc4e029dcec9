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
#define AUDIT_REFUSED_SUFFIX ".refused"
#define AUDIT_RECONNECT_MS 1000
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
    int64_t connect_due_ms; /* no connection is tried before this while the database is down */
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

static size_t audit_lines(const char *data, size_t len)
{
    size_t count = 0;

    for (const char *p = data; (p = memchr(p, '\n', len - (size_t)(p - data))) != NULL; p++)
        count++;
    return count;
}

/* ---- The database and the spool --------------------------------------------------------- */

/* A connection when there is none, tried at most once a second; false while the database
 * cannot be reached. */
static bool audit_db_ready(struct audit_writer *w)
{
    int64_t now = audit_now_ms();

    if (w->db != NULL)
        return true;
    if (now < w->connect_due_ms)
        return false;
    w->db = db_new(w->cfg->database_url);
    if (w->db != NULL &&
        db_prepare(w->db, audit_writer_stmts,
                   sizeof(audit_writer_stmts) / sizeof(audit_writer_stmts[0])) != 0)
        db_destroy(&w->db);
    if (w->db == NULL)
        w->connect_due_ms = now + AUDIT_RECONNECT_MS;
    return w->db != NULL;
}

/* Stores `data` at `path`: written whole under a temporary name, synced, then renamed, so a
 * file of the spool is always whole rows. */
static int audit_file_store(const char *path, const char *data, size_t len)
{
    char tmp[AUDIT_PATH_MAX + 128];
    int fd;
    int rc = M360_EIO;

    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        goto done;
    if (write(fd, data, len) == (ssize_t)len && fsync(fd) == 0)
        rc = 0;
    close(fd);
    if (rc == 0 && rename(tmp, path) != 0)
        rc = M360_EIO;

done:
    if (rc != 0) {
        unlink(tmp);
        log_err(AUDIT_LOG_MODULE, "event=spool_write_failed events=%zu errno=%d",
                audit_lines(data, len), errno);
    }
    return rc;
}

/* Stores rows in a new file of the spool: `suffix` ".rows" to be written later, ".refused"
 * for rows the database refused, kept for an operator and never replayed. */
static int audit_spool_add(struct audit_writer *w, const char *data, size_t len, const char *suffix)
{
    char path[AUDIT_PATH_MAX + 64];

    snprintf(path, sizeof(path), "%s/%013lld-%06llu%s", w->spool_dir, (long long)audit_now_ms(),
             (unsigned long long)w->spool_seq++, suffix);
    return audit_file_store(path, data, len);
}

/*
 * Writes whole rows with one COPY. When the database refuses them (a malformed row), each
 * row is written alone instead, so one bad row costs only itself; refused rows are set
 * aside in the spool. Returns 0 when every row is written or set aside; otherwise the
 * database's code, and *done receives how many bytes from the start were (the rest waits).
 */
static int audit_write(struct audit_writer *w, const char *data, size_t len, size_t *done)
{
    struct audit_rows refused = {0};
    int rc;

    *done = 0;
    if (len == 0)
        return 0;
    rc = db_copy_in(w->db, AUDIT_ROWS_COPY_SQL, data, len);
    if (rc != M360_EINVAL) {
        *done = rc == 0 ? len : 0;
        return rc;
    }

    rc = 0;
    while (rc == 0 && *done < len) {
        const char *row = data + *done;
        size_t row_len = (size_t)((const char *)memchr(row, '\n', len - *done) - row) + 1;

        rc = db_copy_in(w->db, AUDIT_ROWS_COPY_SQL, row, row_len);
        if (rc == M360_EINVAL)
            rc = audit_rows_append(&refused, row, row_len) ? 0 : M360_ENOMEM;
        if (rc == 0)
            *done += row_len;
    }
    /* XXX: refused rows that cannot be stored either (disk full) are only counted in the log. */
    if (refused.count > 0) {
        log_err(AUDIT_LOG_MODULE, "event=rows_refused events=%zu kept=%s", refused.count,
                audit_spool_add(w, refused.data, refused.len, AUDIT_REFUSED_SUFFIX) == 0 ? "yes"
                                                                                         : "no");
    }
    audit_rows_release(&refused);
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

/* The spool's files still to write, oldest first (names sort by time); *count receives how
 * many. */
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

/* Writes one spool file: removed once its rows are in, or cut to the rows still to write. */
static int audit_spool_replay_file(struct audit_writer *w, const char *path, const char *name)
{
    struct audit_rows rows = {0};
    size_t done = 0;
    int rc = 0;

    if (!audit_spool_read(path, &rows)) {
        log_err(AUDIT_LOG_MODULE, "event=spool_file_unreadable file=%s", name);
    } else {
        rc = audit_write(w, rows.data, rows.len, &done);
        if (rc == 0) {
            unlink(path);
            log_notice(AUDIT_LOG_MODULE, "event=spool_replayed events=%zu", rows.count);
        } else if (done > 0 && audit_file_store(path, rows.data + done, rows.len - done) != 0) {
            /* XXX: the rows written before the failure will be written again. */
            log_err(AUDIT_LOG_MODULE, "event=spool_cut_failed file=%s", name);
        }
    }
    audit_rows_release(&rows);
    return rc;
}

/* Writes the spooled files, oldest first. Stops at the first failure: the rest wait for the
 * next turn. */
static int audit_spool_replay(struct audit_writer *w)
{
    size_t count;
    char **names = audit_spool_list(w, &count);
    int rc = 0;

    for (size_t i = 0; i < count; i++) {
        char path[AUDIT_PATH_MAX + 300];

        snprintf(path, sizeof(path), "%s/%s", w->spool_dir, names[i]);
        if (rc == 0)
            rc = audit_spool_replay_file(w, path, names[i]);
        free(names[i]);
    }
    free(names);
    return rc;
}

/* ---- Batches --------------------------------------------------------------------------- */

/* Keeps only the pending rows from byte `from` on. */
static void audit_pending_cut(struct audit_writer *w, size_t from)
{
    if (from == 0)
        return;
    memmove(w->pending.data, w->pending.data + from, w->pending.len - from);
    w->pending.len -= from;
    w->pending.count = audit_lines(w->pending.data, w->pending.len);
}

/*
 * Writes what waits: the spool first, then the pending rows. Whatever cannot be written now
 * goes to the spool at once, so that events wait in memory for one flush at most, and a
 * kill -9 while the database is down loses no more than that. Only when the spool cannot
 * be written either do the rows stay in memory.
 */
static void audit_flush(struct audit_writer *w)
{
    size_t done = 0;
    int rc = audit_db_ready(w) ? audit_spool_replay(w) : M360_EUNAVAILABLE;

    if (rc == 0)
        rc = audit_write(w, w->pending.data, w->pending.len, &done);
    w->writing = rc == 0;
    if (rc == 0 && w->pending.count > 0)
        log_info(AUDIT_LOG_MODULE, "event=batch_written events=%zu", w->pending.count);
    if (rc != 0 && w->pending.count > 0)
        log_warn(AUDIT_LOG_MODULE, "event=write_failed pending=%zu code=%s", w->pending.count,
                 err_str(rc));

    if (done < w->pending.len &&
        audit_spool_add(w, w->pending.data + done, w->pending.len - done, ".rows") == 0) {
        log_warn(AUDIT_LOG_MODULE, "event=spooled events=%zu",
                 audit_lines(w->pending.data + done, w->pending.len - done));
        done = w->pending.len;
    }
    audit_pending_cut(w, done);
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
            audit_flush(w);
        if (now >= w->retention_due_ms && audit_db_ready(w))
            audit_partitions_keep(w);
    }

    /* Whatever was pushed before the stop is taken, and written or spooled. */
    audit_receive(w, true);
    audit_flush(w);
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
