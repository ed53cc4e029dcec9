/* SPDX-License-Identifier: MIT */
/*
 * The subscription sweep: a thread of the process that runs the billing pool. On a timer it
 * expires active subscriptions whose end has passed (the role follows, an email and an audit
 * row go with it, all in one transaction) and warns owners of subscriptions that end within
 * three days. Several processes may sweep at once: an expiry takes the owner's lock and
 * re-checks the row, and each warning has a dedupe key in the outbox, so nothing happens
 * twice.
 */
#include "billing_internal.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "manas360/billing.h"
#include "manas360/err.h"
#include "manas360/log.h"
#include "manas360/notify.h"

#define BILLING_SWEEP_BATCH 100 /* rows looked at per statement; a full batch sweeps again */
#define BILLING_SWEEP_TEXT(n) #n
#define BILLING_SWEEP_LIMIT(n) " LIMIT " BILLING_SWEEP_TEXT(n)
#define BILLING_SWEEP_KEY_BYTES 128

/* Columns of billing_sweep_expire. */
enum billing_sweep_expired_col {
    SWEEP_EXPIRED_ID,
    SWEEP_EXPIRED_PLAN,
    SWEEP_EXPIRED_ENDS_AT,
    SWEEP_EXPIRED_TRIAL,
};

/* Columns of billing_sweep_expiring. */
enum billing_sweep_expiring_col {
    SWEEP_EXPIRING_KEY,
    SWEEP_EXPIRING_EMAIL,
    SWEEP_EXPIRING_NAME,
    SWEEP_EXPIRING_PLAN,
    SWEEP_EXPIRING_ENDS_AT,
};

/* clang-format off */
static const struct db_stmt billing_sweep_stmts[] = {
    {"billing_sweep_ended",
     "SELECT id, user_id FROM user_subscriptions"
     " WHERE status = 'active' AND ends_at <= now()"
     " ORDER BY ends_at" BILLING_SWEEP_LIMIT(BILLING_SWEEP_BATCH),
     0},
    /* Under the owner's lock: the row is expired only if it still is active and ended. */
    {"billing_sweep_expire",
     "UPDATE user_subscriptions s SET status = 'expired', auto_renew = false, updated_at = now()"
     "  FROM subscription_plans p"
     " WHERE s.id = $1 AND p.id = s.plan_id AND s.status = 'active' AND s.ends_at <= now()"
     " RETURNING s.id, p.name, " SQL_TIME_RFC3339("s.ends_at") ", s.is_trial",
     1},
    {"billing_sweep_owner",
     "SELECT email, nullif(concat_ws(' ', first_name, last_name), '') FROM user_accounts"
     " WHERE id = $1 AND is_active AND deleted_at IS NULL",
     1},
    /* Running subscriptions that end within three days and whose owner was not yet warned
     * of that end; a renewal moves the end, and so the key. */
    {"billing_sweep_expiring",
     "SELECT k.key, u.email, nullif(concat_ws(' ', u.first_name, u.last_name), ''), p.name,"
     "       " SQL_TIME_RFC3339("s.ends_at")
     "  FROM user_subscriptions s"
     "  JOIN user_accounts u ON u.id = s.user_id"
     "  JOIN subscription_plans p ON p.id = s.plan_id"
     " CROSS JOIN LATERAL (SELECT 'subscription_expiring:' || s.id || ':'"
     "                            || floor(extract(epoch FROM s.ends_at))::bigint AS key) k"
     " WHERE s.status = 'active' AND s.ends_at > now()"
     "   AND s.ends_at <= now() + interval '3 days'"
     "   AND u.is_active AND u.deleted_at IS NULL"
     "   AND NOT EXISTS (SELECT 1 FROM email_outbox o WHERE o.dedupe_key = k.key)"
     " ORDER BY s.ends_at" BILLING_SWEEP_LIMIT(BILLING_SWEEP_BATCH),
     0},
};
/* clang-format on */

struct billing_sweep {
    const struct cfg *cfg;
    struct db *db; /* NULL while the database cannot be reached */
    pthread_t thread;
    atomic_bool stopping;
    int wake[2]; /* a byte here ends the wait early: the stop */
};

/* ---- Expiry ----------------------------------------------------------------------------- */

struct billing_expiry_tx {
    const char *subscription_id;
    const char *user_id;
    bool expired;
};

/* The owner's message about the end of `expired` (a row of billing_sweep_expire). */
static int billing_sweep_expired_mail(struct db *db, const char *user_id, const PGresult *expired)
{
    const char *params[] = {user_id};
    char key[BILLING_SWEEP_KEY_BYTES];
    PGresult *owner = NULL;
    json_t *payload = NULL;
    int rc = db_exec(db, "billing_sweep_owner", 1, params, &owner);

    /* A disabled or deleted account is not written to. */
    if (rc == 0 && PQntuples(owner) == 1) {
        struct notify_message msg = {.to_address = PQgetvalue(owner, 0, 0),
                                     .to_name = row_text(owner, 0, 1),
                                     .template = NOTIFY_SUBSCRIPTION_EXPIRED,
                                     .dedupe_key = key};

        snprintf(key, sizeof(key), "subscription_expired:%s",
                 PQgetvalue(expired, 0, SWEEP_EXPIRED_ID));
        payload = json_pack("{s:s, s:s}", "planName", PQgetvalue(expired, 0, SWEEP_EXPIRED_PLAN),
                            "endsAt", PQgetvalue(expired, 0, SWEEP_EXPIRED_ENDS_AT));
        msg.payload = payload;
        rc = payload != NULL ? notify_queue(db, &msg) : M360_ENOMEM;
    }
    json_decref(payload);
    PQclear(owner);
    return rc;
}

static int billing_sweep_expire_body(struct db *db, void *arg)
{
    struct billing_expiry_tx *tx = arg;
    const char *user[] = {tx->user_id};
    const char *subscription[] = {tx->subscription_id};
    PGresult *res = NULL;
    json_t *details = NULL;
    int rc;

    tx->expired = false;
    rc = db_exec(db, "billing_user_lock", 1, user, NULL);
    if (rc == 0)
        rc = db_exec(db, "billing_sweep_expire", 1, subscription, &res);
    if (rc != 0 || PQntuples(res) != 1) {
        PQclear(res);
        return rc;
    }

    details = json_pack("{s:s, s:s, s:s, s:b}", "reason", "ended", "plan",
                        PQgetvalue(res, 0, SWEEP_EXPIRED_PLAN), "status", "expired", "isTrial",
                        row_bool(res, 0, SWEEP_EXPIRED_TRIAL));
    rc = details != NULL ? billing_role_follow(db, tx->user_id, details) : M360_ENOMEM;
    if (rc == 0)
        rc = billing_sweep_expired_mail(db, tx->user_id, res);
    PQclear(res);
    if (rc != 0) {
        json_decref(details);
        return rc;
    }

    {
        struct worker_audit audit = {.user_id = tx->user_id,
                                     .event = "subscription_changed",
                                     .resource_type = "subscription",
                                     .resource_id = tx->subscription_id,
                                     .action = "expire",
                                     .details = details};

        rc = worker_audit_write(db, NULL, &audit);
    }
    tx->expired = rc == 0;
    return rc;
}

/* Expires a batch of ended subscriptions, each in its own transaction; returns how many rows
 * were looked at (a full batch means there may be more), or -1 on a database failure. */
static int billing_sweep_expire_batch(struct billing_sweep *sweep)
{
    PGresult *ended = NULL;
    int rc = db_exec(sweep->db, "billing_sweep_ended", 0, NULL, &ended);
    int count;

    if (rc != 0) {
        log_warn(BILLING_LOG_MODULE, "event=sweep_failed step=expire code=%s", err_str(rc));
        return -1;
    }
    count = PQntuples(ended);
    for (int i = 0; i < count && rc == 0 && !atomic_load(&sweep->stopping); i++) {
        struct billing_expiry_tx tx = {PQgetvalue(ended, i, 0), PQgetvalue(ended, i, 1), false};

        rc = db_tx(sweep->db, billing_sweep_expire_body, &tx);
        if (rc != 0)
            log_warn(BILLING_LOG_MODULE,
                     "event=sweep_failed step=expire subscription_id=%s code=%s",
                     tx.subscription_id, err_str(rc));
        else if (tx.expired)
            log_info(BILLING_LOG_MODULE, "event=subscription_expired subscription_id=%s user_id=%s",
                     tx.subscription_id, tx.user_id);
    }
    PQclear(ended);
    return rc == 0 ? count : -1;
}

/* ---- Warnings --------------------------------------------------------------------------- */

/* Queues a batch of "ends soon" messages; returns how many, or -1 on a database failure. */
static int billing_sweep_warn_batch(struct billing_sweep *sweep)
{
    PGresult *due = NULL;
    int rc = db_exec(sweep->db, "billing_sweep_expiring", 0, NULL, &due);
    int count;

    if (rc != 0) {
        log_warn(BILLING_LOG_MODULE, "event=sweep_failed step=warn code=%s", err_str(rc));
        return -1;
    }
    count = PQntuples(due);
    for (int i = 0; i < count && rc == 0; i++) {
        json_t *payload =
            json_pack("{s:s, s:s}", "planName", PQgetvalue(due, i, SWEEP_EXPIRING_PLAN), "endsAt",
                      PQgetvalue(due, i, SWEEP_EXPIRING_ENDS_AT));
        struct notify_message msg = {.to_address = PQgetvalue(due, i, SWEEP_EXPIRING_EMAIL),
                                     .to_name = row_text(due, i, SWEEP_EXPIRING_NAME),
                                     .template = NOTIFY_SUBSCRIPTION_EXPIRING,
                                     .payload = payload,
                                     .dedupe_key = PQgetvalue(due, i, SWEEP_EXPIRING_KEY)};

        /* One statement, so its own transaction; the key makes a second sweeper's a no-op. */
        rc = payload != NULL ? notify_queue(sweep->db, &msg) : M360_ENOMEM;
        json_decref(payload);
    }
    if (rc != 0)
        log_warn(BILLING_LOG_MODULE, "event=sweep_failed step=warn code=%s", err_str(rc));
    else if (count > 0)
        log_info(BILLING_LOG_MODULE, "event=expiry_warnings_queued count=%d", count);
    PQclear(due);
    return rc == 0 ? count : -1;
}

/* ---- The thread ------------------------------------------------------------------------- */

static bool billing_sweep_connect(struct billing_sweep *sweep)
{
    if (sweep->db != NULL)
        return true;
    sweep->db = db_new(sweep->cfg->database_url);
    if (sweep->db != NULL &&
        (db_prepare(sweep->db, billing_sweep_stmts,
                    sizeof(billing_sweep_stmts) / sizeof(billing_sweep_stmts[0])) != 0 ||
         billing_subscribe_prepare(sweep->db) != 0 || notify_prepare(sweep->db) != 0 ||
         worker_prepare(sweep->db) != 0))
        db_destroy(&sweep->db);
    return sweep->db != NULL;
}

/* One pass: every ended subscription, then every warning due, a batch at a time. */
static void billing_sweep_pass(struct billing_sweep *sweep)
{
    int n;

    do
        n = billing_sweep_expire_batch(sweep);
    while (n == BILLING_SWEEP_BATCH && !atomic_load(&sweep->stopping));
    do
        n = billing_sweep_warn_batch(sweep);
    while (n == BILLING_SWEEP_BATCH && !atomic_load(&sweep->stopping));
}

static void *billing_sweep_main(void *arg)
{
    struct billing_sweep *sweep = arg;
    struct pollfd wake = {sweep->wake[0], POLLIN, 0};

    while (!atomic_load(&sweep->stopping)) {
        if (billing_sweep_connect(sweep))
            billing_sweep_pass(sweep);
        if (!atomic_load(&sweep->stopping))
            (void)poll(&wake, 1, (int)(sweep->cfg->subscription_sweep_interval_s * 1000));
    }
    db_destroy(&sweep->db);
    return NULL;
}

/* ---- Lifecycle -------------------------------------------------------------------------- */

struct billing_sweep *billing_sweep_new(const struct cfg *cfg)
{
    struct billing_sweep *sweep = calloc(1, sizeof(*sweep));

    if (sweep == NULL)
        return NULL;
    sweep->cfg = cfg;
    atomic_init(&sweep->stopping, false);
    if (pipe(sweep->wake) != 0) {
        free(sweep);
        return NULL;
    }
    (void)fcntl(sweep->wake[0], F_SETFD, FD_CLOEXEC);
    (void)fcntl(sweep->wake[1], F_SETFD, FD_CLOEXEC);
    if (pthread_create(&sweep->thread, NULL, billing_sweep_main, sweep) != 0) {
        close(sweep->wake[0]);
        close(sweep->wake[1]);
        free(sweep);
        log_err(BILLING_LOG_MODULE, "event=sweep_start_failed");
        return NULL;
    }
    log_notice(BILLING_LOG_MODULE, "event=sweep_started interval_s=%lld",
               (long long)cfg->subscription_sweep_interval_s);
    return sweep;
}

void billing_sweep_destroy(struct billing_sweep **sweep)
{
    struct billing_sweep *s;

    if (sweep == NULL || *sweep == NULL)
        return;
    s = *sweep;
    atomic_store(&s->stopping, true);
    (void)!write(s->wake[1], "x", 1);
    pthread_join(s->thread, NULL);
    close(s->wake[0]);
    close(s->wake[1]);
    free(s);
    *sweep = NULL;
    log_notice(BILLING_LOG_MODULE, "event=sweep_stopped");
}
