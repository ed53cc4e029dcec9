/* SPDX-License-Identifier: MIT */
/*
 * The sender: a thread that claims due outbox rows, renders and delivers each, and records
 * the outcome. A claim sets 'sending' and moves next_attempt_at past the time the batch can
 * take, under FOR UPDATE SKIP LOCKED, so several senders never hold one row at once and a
 * row whose sender died becomes due again by itself. Failures are retried with exponential
 * backoff; a row that keeps failing ends 'dead' and stays in the table.
 */
#include "notify_internal.h"

#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <sodium.h>

#include "manas360/db.h"
#include "manas360/err.h"
#include "manas360/log.h"
#include "manas360/notify.h"
#include "row.h"

#define NOTIFY_POLL_MS 1000 /* due rows are looked for this often, announced or not */
#define NOTIFY_RECONNECT_MS 1000
#define NOTIFY_BATCH 4
/* A claim covers sending its whole batch, and a margin for recording the outcomes. */
#define NOTIFY_CLAIM_S (NOTIFY_BATCH * NOTIFY_SEND_TIMEOUT_S + 30)
/* With the default 5 s base: 5,115 s of doubling delays, then 25 hours at the cap, so a
 * verification message is retried for longer than its 24-hour token lives. */
#define NOTIFY_ATTEMPTS_MAX 36
#define NOTIFY_RETRY_CAP_S 3600
#define NOTIFY_INT_TEXT_BYTES 24
#define NOTIFY_LOG_VALUE_BYTES 300

/* The columns of notify_claim. */
enum notify_claim_col {
    NOTIFY_COL_ID,
    NOTIFY_COL_TO,
    NOTIFY_COL_NAME,
    NOTIFY_COL_TEMPLATE,
    NOTIFY_COL_PAYLOAD,
    NOTIFY_COL_ATTEMPTS,
};

/* Rows of a crashed sender are claimed again once their claim runs out. */
static const struct db_stmt notify_sender_stmts[] = {
    {"notify_claim",
     "WITH due AS ("
     "  SELECT id FROM email_outbox"
     "   WHERE status IN ('pending', 'sending') AND next_attempt_at <= now()"
     "   ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED)"
     " UPDATE email_outbox o SET status = 'sending', attempts = o.attempts + 1,"
     "        next_attempt_at = now() + make_interval(secs => $2)"
     "   FROM due WHERE o.id = due.id"
     " RETURNING o.id, o.to_address, o.to_name, o.template, o.payload::text, o.attempts",
     2},
    /* Each outcome applies only to the claim it answers (same attempt, still 'sending'). */
    {"notify_sent",
     "UPDATE email_outbox SET status = 'sent', sent_at = now(), last_error = NULL,"
     "       payload = payload - 'token'"
     " WHERE id = $1 AND status = 'sending' AND attempts = $2",
     2},
    {"notify_retry",
     "UPDATE email_outbox SET status = CASE WHEN $3::boolean THEN 'dead' ELSE 'pending' END,"
     "       next_attempt_at = now() + make_interval(secs => $4), last_error = $5,"
     "       payload = CASE WHEN $3::boolean THEN payload - 'token' ELSE payload END"
     " WHERE id = $1 AND status = 'sending' AND attempts = $2",
     5},
    /* A row claimed but not tried when the sender stops: due again at once, uncounted. */
    {"notify_release",
     "UPDATE email_outbox SET status = 'pending', attempts = attempts - 1,"
     "       next_attempt_at = now()"
     " WHERE id = $1 AND status = 'sending' AND attempts = $2",
     2},
};

struct notify_sender {
    const struct cfg *cfg;
    pthread_t thread;
    atomic_bool stopping;
    int wake[2];      /* a pipe: a byte written to wake[1] ends the thread's wait */
    struct db *db;    /* the claims and outcomes; owned by the thread */
    PGconn *listen;   /* LISTEN NOTIFY_CHANNEL; NULL while down; owned by the thread */
    int64_t retry_ms; /* when to try connecting again */
};

static int64_t notify_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void notify_int_text(char out[NOTIFY_INT_TEXT_BYTES], int64_t value)
{
    snprintf(out, NOTIFY_INT_TEXT_BYTES, "%" PRId64, value);
}

/* The delay before the attempt after `attempts` failed ones: base * 2^(attempts-1), capped. */
static int64_t notify_backoff_s(const struct cfg *cfg, int64_t attempts)
{
    int64_t delay = cfg->notify_retry_base_s > 0 ? cfg->notify_retry_base_s : 1;

    for (int64_t i = 1; i < attempts && delay < NOTIFY_RETRY_CAP_S; i++)
        delay *= 2;
    return delay < NOTIFY_RETRY_CAP_S ? delay : NOTIFY_RETRY_CAP_S;
}

/* ---- Connections --------------------------------------------------------------------- */

static void notify_sender_connect(struct notify_sender *s)
{
    if (notify_now_ms() < s->retry_ms)
        return;
    s->retry_ms = notify_now_ms() + NOTIFY_RECONNECT_MS;

    if (s->db == NULL) {
        s->db = db_new(s->cfg->database_url);
        if (s->db != NULL &&
            db_prepare(s->db, notify_sender_stmts,
                       sizeof(notify_sender_stmts) / sizeof(notify_sender_stmts[0])) != 0)
            db_destroy(&s->db);
    }
    if (s->listen == NULL) {
        PGconn *conn = PQconnectdb(s->cfg->database_url);
        PGresult *res =
            PQstatus(conn) == CONNECTION_OK ? PQexec(conn, "LISTEN " NOTIFY_CHANNEL) : NULL;

        if (PQresultStatus(res) == PGRES_COMMAND_OK) {
            s->listen = conn;
            conn = NULL;
            log_notice(NOTIFY_LOG_MODULE, "event=listening channel=" NOTIFY_CHANNEL);
        }
        PQclear(res);
        PQfinish(conn);
    }
}

/*
 * Waits up to NOTIFY_POLL_MS for an announcement or a stop. Announcements are only wake-up
 * calls: they are consumed, and the claim that follows finds whatever is due.
 */
static void notify_sender_wait(struct notify_sender *s)
{
    struct pollfd fds[2] = {{s->wake[0], POLLIN, 0}, {-1, POLLIN, 0}};
    PGnotify *note;
    char byte;

    if (s->listen != NULL)
        fds[1].fd = PQsocket(s->listen);
    if (poll(fds, 2, NOTIFY_POLL_MS) <= 0)
        return;
    if (fds[0].revents != 0)
        (void)!read(s->wake[0], &byte, 1);
    if (s->listen == NULL || fds[1].revents == 0)
        return;

    if (PQconsumeInput(s->listen) == 0 || PQstatus(s->listen) != CONNECTION_OK) {
        log_warn(NOTIFY_LOG_MODULE, "event=listen_connection_lost action=polling");
        PQfinish(s->listen);
        s->listen = NULL;
        return;
    }
    while ((note = PQnotifies(s->listen)) != NULL)
        PQfreemem(note);
}

/* ---- One row ------------------------------------------------------------------------- */

static void notify_outcome_log(const struct notify_row *row, const char *attempts, bool dead,
                               int64_t delay_s, const char *error)
{
    char quoted[NOTIFY_LOG_VALUE_BYTES];

    log_quote(quoted, sizeof(quoted), error);
    if (dead)
        log_err(NOTIFY_LOG_MODULE, "event=mail_dead outbox_id=%s template=%s attempts=%s error=%s",
                row->id, row->template, attempts, quoted);
    else
        log_warn(NOTIFY_LOG_MODULE,
                 "event=mail_retry outbox_id=%s template=%s attempts=%s retry_in_s=%" PRId64
                 " error=%s",
                 row->id, row->template, attempts, delay_s, quoted);
}

/* A failed attempt: retried after the backoff, or dead when it can never or may no more. */
static void notify_sender_fail(struct notify_sender *s, const struct notify_row *row,
                               const char *attempts, bool permanent, const char *error)
{
    bool dead = permanent || atoll(attempts) >= NOTIFY_ATTEMPTS_MAX;
    int64_t delay_s = notify_backoff_s(s->cfg, atoll(attempts));
    char delay[NOTIFY_INT_TEXT_BYTES];
    const char *params[] = {row->id, attempts, dead ? "t" : "f", delay, error};
    int rc;

    notify_int_text(delay, delay_s);
    rc = db_exec(s->db, "notify_retry", 5, params, NULL);
    if (rc != 0)
        log_err(NOTIFY_LOG_MODULE, "event=outcome_not_recorded outbox_id=%s code=%s", row->id,
                err_str(rc));
    notify_outcome_log(row, attempts, dead, delay_s, error);
}

static void notify_sender_release(struct notify_sender *s, const struct notify_row *row,
                                  const char *attempts)
{
    const char *params[] = {row->id, attempts};

    if (db_exec(s->db, "notify_release", 2, params, NULL) == 0)
        log_info(NOTIFY_LOG_MODULE, "event=mail_released outbox_id=%s reason=stopping", row->id);
}

static void notify_sender_succeed(struct notify_sender *s, const struct notify_row *row,
                                  const char *attempts)
{
    const char *params[] = {row->id, attempts};
    int rc = db_exec(s->db, "notify_sent", 2, params, NULL);

    /* XXX: a message delivered but not recorded is sent again once its claim runs out. */
    if (rc != 0)
        log_err(NOTIFY_LOG_MODULE, "event=outcome_not_recorded outbox_id=%s code=%s", row->id,
                err_str(rc));
    log_info(NOTIFY_LOG_MODULE, "event=mail_sent outbox_id=%s template=%s attempts=%s transport=%s",
             row->id, row->template, attempts, notify_transport_name(s->cfg));
}

/* Renders, delivers and records one claimed row. */
static void notify_sender_send(struct notify_sender *s, const PGresult *res, int i)
{
    const char *attempts = PQgetvalue(res, i, NOTIFY_COL_ATTEMPTS);
    json_t *payload = json_loads(PQgetvalue(res, i, NOTIFY_COL_PAYLOAD), 0, NULL);
    struct notify_row row = {PQgetvalue(res, i, NOTIFY_COL_ID), PQgetvalue(res, i, NOTIFY_COL_TO),
                             row_text(res, i, NOTIFY_COL_NAME),
                             PQgetvalue(res, i, NOTIFY_COL_TEMPLATE), payload};
    struct notify_mail mail = {0};
    char error[NOTIFY_ERROR_MAX_BYTES] = "out of memory";
    int rc = payload != NULL ? 0 : M360_ENOMEM;

    if (rc == 0)
        rc = notify_render(s->cfg, &row, (int64_t)time(NULL), &mail, error);
    if (rc == 0)
        rc = notify_deliver(s->cfg, &row, &mail, &s->stopping, error);

    if (rc == 0)
        notify_sender_succeed(s, &row, attempts);
    else if (atomic_load(&s->stopping))
        notify_sender_release(s, &row, attempts);
    else
        notify_sender_fail(s, &row, attempts, rc == M360_EINVAL, error);

    if (mail.text != NULL)
        sodium_memzero(mail.text, mail.len);
    free(mail.text);
    json_decref(payload);
}

/* Claims up to a batch and works through it; returns the number claimed (0 on error). */
static int notify_sender_round(struct notify_sender *s)
{
    char limit[NOTIFY_INT_TEXT_BYTES];
    char claim[NOTIFY_INT_TEXT_BYTES];
    const char *params[] = {limit, claim};
    PGresult *res = NULL;
    int claimed = 0;
    int rc;

    notify_int_text(limit, NOTIFY_BATCH);
    notify_int_text(claim, NOTIFY_CLAIM_S);
    rc = db_exec(s->db, "notify_claim", 2, params, &res);
    if (rc != 0) {
        log_warn(NOTIFY_LOG_MODULE, "event=claim_failed code=%s", err_str(rc));
        return 0;
    }

    claimed = PQntuples(res);
    for (int i = 0; i < claimed; i++) {
        if (atomic_load(&s->stopping)) {
            const char *id = PQgetvalue(res, i, NOTIFY_COL_ID);
            struct notify_row row = {.id = id};

            notify_sender_release(s, &row, PQgetvalue(res, i, NOTIFY_COL_ATTEMPTS));
            continue;
        }
        notify_sender_send(s, res, i);
    }
    PQclear(res);
    return claimed;
}

static void *notify_sender_main(void *arg)
{
    struct notify_sender *s = arg;

    while (!atomic_load(&s->stopping)) {
        if (s->db == NULL || s->listen == NULL)
            notify_sender_connect(s);
        /* A full batch suggests more are due: claim again before waiting. */
        if (s->db != NULL) {
            while (notify_sender_round(s) == NOTIFY_BATCH && !atomic_load(&s->stopping))
                ;
        }
        if (!atomic_load(&s->stopping))
            notify_sender_wait(s);
    }

    PQfinish(s->listen);
    s->listen = NULL;
    db_destroy(&s->db);
    return NULL;
}

/* ---- Lifecycle ----------------------------------------------------------------------- */

static int notify_pipe_open(int fds[2])
{
    if (pipe(fds) != 0)
        return M360_EIO;
    for (int i = 0; i < 2; i++) {
        if (fcntl(fds[i], F_SETFL, O_NONBLOCK) != 0 || fcntl(fds[i], F_SETFD, FD_CLOEXEC) != 0) {
            close(fds[0]);
            close(fds[1]);
            fds[0] = fds[1] = -1;
            return M360_EIO;
        }
    }
    return 0;
}

struct notify_sender *notify_sender_new(const struct cfg *cfg)
{
    struct notify_sender *s = calloc(1, sizeof(*s));

    if (s == NULL)
        return NULL;
    s->cfg = cfg;
    s->wake[0] = s->wake[1] = -1;
    atomic_init(&s->stopping, false);
    if (notify_transport_init() != 0 || notify_pipe_open(s->wake) != 0)
        goto fail;
    if (pthread_create(&s->thread, NULL, notify_sender_main, s) != 0)
        goto fail;
    log_notice(NOTIFY_LOG_MODULE, "event=sender_started transport=%s retry_base_s=%" PRId64,
               notify_transport_name(cfg), cfg->notify_retry_base_s);
    return s;

fail:
    log_err(NOTIFY_LOG_MODULE, "event=sender_start_failed");
    if (s->wake[0] >= 0) {
        close(s->wake[0]);
        close(s->wake[1]);
    }
    notify_transport_cleanup();
    free(s);
    return NULL;
}

void notify_sender_destroy(struct notify_sender **sender)
{
    struct notify_sender *s;

    if (sender == NULL || *sender == NULL)
        return;
    s = *sender;
    atomic_store(&s->stopping, true);
    (void)!write(s->wake[1], "x", 1);
    pthread_join(s->thread, NULL);
    close(s->wake[0]);
    close(s->wake[1]);
    notify_transport_cleanup();
    free(s);
    *sender = NULL;
    log_notice(NOTIFY_LOG_MODULE, "event=sender_stopped");
}
