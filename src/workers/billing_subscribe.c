/* SPDX-License-Identifier: MIT */
/*
 * Starting and cancelling subscriptions in the billing pool: the caller's own (Free, a trial,
 * turning renewal off) and an administrator's change to anyone's. The user's role follows
 * the subscription between `user` and `subscriber`, without ending any session.
 */
#include "billing_internal.h"

#include <stdio.h>
#include <string.h>

#include "manas360/err.h"
#include "manas360/log.h"

#define BILLING_ID_BYTES (INPUT_UUID_CHARS + 1)
#define BILLING_INT_TEXT_BYTES 24

/* The columns of billing_subscription_by_id, as row_subscription_json() reads them. */
#define BILLING_SQL_SUBSCRIPTION_BY_ID                                                             \
    "SELECT s.id, p.name, CASE WHEN s.ends_at <= now() THEN 'expired' ELSE s.status END,"          \
    "       s.is_trial, " SQL_TIME_RFC3339("s.starts_at") ", " SQL_TIME_RFC3339(                   \
        "s.ends_at") ","                                                                           \
                     "       s.auto_renew"                                                         \
                     "  FROM user_subscriptions s JOIN subscription_plans p ON p.id = s.plan_id"   \
                     " WHERE s.id = $1"

/* Columns of billing_plan_find. */
enum billing_plan_find_col {
    BILLING_FIND_ID,
    BILLING_FIND_FREE,
    BILLING_FIND_TRIAL_DAYS,
    BILLING_FIND_ACTIVE,
    BILLING_FIND_NAME,
};

/* clang-format off */
static const struct db_stmt billing_subscribe_stmts[] = {
    /*
     * Every change to a user's subscriptions holds this lock first, so two requests of one
     * user take turns and cannot both activate a subscription. The role is read in
     * subqueries, not a join: a waiter re-reads the row it locked, and a join would drop the
     * row when the holder changed the role meanwhile.
     */
    {"billing_user_lock",
     "SELECT (SELECT r.name FROM roles r WHERE r.id = u.role_id),"
     "       (SELECT r.privilege_level FROM roles r WHERE r.id = u.role_id),"
     "       u.is_active AND u.deleted_at IS NULL"
     "  FROM user_accounts u"
     " WHERE u.id = $1"
     "   FOR UPDATE",
     1},
    {"billing_caller_level",
     "SELECT r.privilege_level"
     "  FROM user_accounts u JOIN roles r ON r.id = u.role_id"
     " WHERE u.id = $1 AND u.is_active AND u.deleted_at IS NULL",
     1},
    /* Names in bodies are matched without regard to case, like the unique index. */
    {"billing_plan_find",
     "SELECT id, price_monthly_paise = 0, trial_period_days, is_active, name"
     "  FROM subscription_plans WHERE lower(name) = lower($1)",
     1},
    /* The active row and whether it is still running (not past ends_at). */
    {"billing_subscription_active",
     "SELECT id, plan_id, ends_at IS NULL OR ends_at > now(), ends_at IS NULL OR NOT auto_renew"
     "  FROM user_subscriptions WHERE user_id = $1 AND status = 'active'",
     1},
    {"billing_trial_used",
     "SELECT 1 FROM user_subscriptions WHERE user_id = $1 AND is_trial LIMIT 1",
     1},
    /* A switch ends the active row; one already past its end is recorded as expired. */
    {"billing_subscriptions_retire",
     "UPDATE user_subscriptions"
     "   SET status = CASE WHEN ends_at <= now() THEN 'expired' ELSE 'cancelled' END,"
     "       cancelled_at = CASE WHEN ends_at <= now() THEN cancelled_at ELSE now() END,"
     "       auto_renew = false"
     " WHERE user_id = $1 AND status = 'active'",
     1},
    /* A trial ends after its days; anything else started here (Free) never ends. */
    {"billing_subscription_insert",
     "INSERT INTO user_subscriptions (user_id, plan_id, status, is_trial, starts_at, ends_at)"
     " VALUES ($1, $2, 'active', $3, now(),"
     "         CASE WHEN $3 THEN now() + make_interval(days => $4) END)"
     " RETURNING id",
     4},
    /*
     * The role follows the subscriptions: `subscriber` while a trial or a paid plan is
     * active and running, `user` otherwise. Only those two roles move; no row when nothing
     * changes. Returns the old and the new role's names.
     */
    {"billing_role_follow",
     "UPDATE user_accounts u SET role_id = t.id"
     "  FROM roles c, roles t"
     " WHERE u.id = $1 AND c.id = u.role_id AND c.name IN ('user', 'subscriber')"
     "   AND t.id <> u.role_id"
     "   AND t.name = CASE WHEN EXISTS ("
     "           SELECT 1 FROM user_subscriptions s"
     "             JOIN subscription_plans p ON p.id = s.plan_id"
     "            WHERE s.user_id = $1 AND s.status = 'active'"
     "              AND (s.ends_at IS NULL OR s.ends_at > now())"
     "              AND (s.is_trial OR p.price_monthly_paise > 0))"
     "       THEN 'subscriber' ELSE 'user' END"
     " RETURNING c.name, t.name",
     1},
    {"billing_subscription_by_id", BILLING_SQL_SUBSCRIPTION_BY_ID, 1},
    {"billing_renewal_off",
     "UPDATE user_subscriptions SET auto_renew = false, cancelled_at = now() WHERE id = $1",
     1},
    {"billing_subscription_owner", "SELECT user_id FROM user_subscriptions WHERE id = $1", 1},
    /* Each flag says whether its member was sent. Turning renewal off or cancelling records
     * when; making the row active and renewing again clears that. */
    {"billing_subscription_update",
     "UPDATE user_subscriptions"
     "   SET plan_id = coalesce($2::uuid, plan_id),"
     "       status = coalesce($3, status),"
     "       ends_at = CASE WHEN $4::boolean THEN $5::timestamptz ELSE ends_at END,"
     "       auto_renew = coalesce($6::boolean, auto_renew),"
     "       cancelled_at = CASE"
     "           WHEN coalesce($3, status) = 'cancelled' OR NOT coalesce($6::boolean, auto_renew)"
     "           THEN coalesce(cancelled_at, now())"
     "           WHEN coalesce($3, status) = 'active' THEN NULL"
     "           ELSE cancelled_at END"
     " WHERE id = $1",
     6},
};
/* clang-format on */

int billing_subscribe_prepare(struct db *db)
{
    return db_prepare(db, billing_subscribe_stmts,
                      sizeof(billing_subscribe_stmts) / sizeof(billing_subscribe_stmts[0]));
}

/* ---- Shared steps -------------------------------------------------------------------- */

/* Why a request is refused after its body passed; each maps to one answer. */
enum billing_refusal {
    BILLING_OK,
    BILLING_GONE,        /* the caller's account went away: 401 */
    BILLING_NOT_FOUND,   /* 404 */
    BILLING_FORBIDDEN,   /* the owner ranks too high: 403 */
    BILLING_BAD_PLAN,    /* 400 fields.plan */
    BILLING_NO_TRIAL,    /* 400 fields.trial */
    BILLING_PAID,        /* 400 fields.plan: no payments yet */
    BILLING_TRIAL_USED,  /* 409 */
    BILLING_BAD_ENDS_AT, /* 400 fields.endsAt */
};

static int billing_refuse(struct pool_reply *reply, enum billing_refusal refusal)
{
    switch (refusal) {
    case BILLING_GONE:
        worker_reply_unauthorized(reply);
        break;
    case BILLING_NOT_FOUND:
        worker_reply_not_found(reply);
        break;
    case BILLING_FORBIDDEN:
        pool_reply_error(reply, 403, "Forbidden",
                         "The subscription's owner does not rank below you", NULL);
        break;
    case BILLING_BAD_PLAN:
        worker_reply_invalid_field(reply, "plan", "no active plan has this name");
        break;
    case BILLING_NO_TRIAL:
        worker_reply_invalid_field(reply, "trial", "this plan has no trial");
        break;
    case BILLING_PAID:
        worker_reply_invalid_field(reply, "plan",
                                   "paid plans cannot be started until payments are available;"
                                   " choose Free or a trial");
        break;
    case BILLING_TRIAL_USED:
        pool_reply_error(reply, 409, "Conflict", "A trial has already been used", NULL);
        break;
    case BILLING_BAD_ENDS_AT:
        worker_reply_invalid_field(reply, "endsAt", "must be after startsAt");
        break;
    case BILLING_OK:
        return M360_EINTERNAL;
    }
    return 0;
}

/* Runs a statement expected to return at most one row; *out is NULL when none came. */
static int billing_row(struct db *db, const char *stmt, int nparams, const char *const *params,
                       PGresult **out)
{
    PGresult *res = NULL;
    int rc = db_exec(db, stmt, nparams, params, &res);

    *out = NULL;
    if (rc == 0 && PQntuples(res) > 0)
        *out = res;
    else
        PQclear(res);
    return rc;
}

int billing_role_follow(struct db *db, const char *user_id, json_t *details)
{
    const char *params[] = {user_id};
    PGresult *res = NULL;
    int rc = billing_row(db, "billing_role_follow", 1, params, &res);

    if (rc == 0 && res != NULL &&
        json_object_set_new(details, "role",
                            json_pack("{s:s, s:s}", "from", PQgetvalue(res, 0, 0), "to",
                                      PQgetvalue(res, 0, 1))) != 0)
        rc = M360_ENOMEM;
    PQclear(res);
    return rc;
}

/* Answers 200 with the subscription `id`. */
static int billing_reply_subscription(struct db *db, const char *id, struct pool_reply *reply)
{
    const char *params[] = {id};
    PGresult *res = NULL;
    json_t *subscription;
    int rc = billing_row(db, "billing_subscription_by_id", 1, params, &res);

    if (rc != 0)
        return rc;
    if (res == NULL)
        return M360_EINTERNAL;
    subscription = row_subscription_json(res, 0, 0);
    PQclear(res);
    if (subscription == NULL)
        return M360_ENOMEM;
    return worker_reply_json(reply, 200,
                             json_pack("{s:b, s:o}", "success", 1, "subscription", subscription));
}

/* Answers 200 with the caller's current subscription as the profile shows it (maybe null). */
static int billing_reply_current(struct db *db, const char *user_id, struct pool_reply *reply)
{
    const char *params[] = {user_id};
    PGresult *res = NULL;
    json_t *subscription;
    int rc = billing_row(db, "billing_subscription_current", 1, params, &res);

    if (rc != 0)
        return rc;
    if (res == NULL) {
        worker_reply_unauthorized(reply);
        return 0;
    }
    subscription = row_subscription_json(res, 0, 0);
    PQclear(res);
    if (subscription == NULL)
        return M360_ENOMEM;
    return worker_reply_json(reply, 200,
                             json_pack("{s:b, s:o}", "success", 1, "subscription", subscription));
}

/* ---- subscriptions.create ------------------------------------------------------------ */

static const struct input_field billing_subscribe_spec[] = {
    {"plan", INPUT_STRING, INPUT_REQUIRED, BILLING_NAME_MAX_CHARS},
    {"trial", INPUT_BOOLEAN, INPUT_OPTIONAL, 0},
};

struct billing_subscribe_tx {
    const struct pool_request *req;
    const char *user_id;
    bool trial;
    enum billing_refusal refusal;
    PGresult *plan;            /* billing_plan_find's row */
    char id[BILLING_ID_BYTES]; /* the subscription to answer with */
};

/* Retires the active row, starts the new one, moves the role and audits, in that order: the
 * one-active index is checked row by row, so the old row must go first. */
static int billing_subscribe_start(struct db *db, struct billing_subscribe_tx *tx)
{
    char days[BILLING_INT_TEXT_BYTES];
    const char *plan_name = PQgetvalue(tx->plan, 0, BILLING_FIND_NAME);
    const char *params[] = {tx->user_id, PQgetvalue(tx->plan, 0, BILLING_FIND_ID),
                            tx->trial ? "t" : "f", days};
    json_t *details = json_pack("{s:s, s:b}", "plan", plan_name, "isTrial", tx->trial);
    PGresult *res = NULL;
    int rc;

    snprintf(days, sizeof(days), "%s", PQgetvalue(tx->plan, 0, BILLING_FIND_TRIAL_DAYS));
    rc = db_exec(db, "billing_subscriptions_retire", 1, params, NULL);
    if (rc == 0)
        rc = billing_row(db, "billing_subscription_insert", 4, params, &res);
    if (rc == 0 && res == NULL)
        rc = M360_EINTERNAL;
    if (rc == 0)
        snprintf(tx->id, sizeof(tx->id), "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    if (rc == 0)
        rc = details != NULL ? billing_role_follow(db, tx->user_id, details) : M360_ENOMEM;
    if (rc != 0) {
        json_decref(details);
        return rc;
    }

    {
        struct worker_audit audit = {.user_id = tx->user_id,
                                     .event = "subscription_changed",
                                     .resource_type = "subscription",
                                     .resource_id = tx->id,
                                     .action = "create",
                                     .details = details};

        return worker_audit_write(db, tx->req, &audit);
    }
}

/* A trial: only on a plan with trial days, once per user. */
static int billing_subscribe_trial(struct db *db, struct billing_subscribe_tx *tx)
{
    const char *params[] = {tx->user_id};
    PGresult *used = NULL;
    int rc;

    if (row_int(tx->plan, 0, BILLING_FIND_TRIAL_DAYS) <= 0) {
        tx->refusal = BILLING_NO_TRIAL;
        return 0;
    }
    rc = billing_row(db, "billing_trial_used", 1, params, &used);
    if (rc == 0 && used != NULL)
        tx->refusal = BILLING_TRIAL_USED;
    PQclear(used);
    if (rc != 0 || tx->refusal != BILLING_OK)
        return rc;
    return billing_subscribe_start(db, tx);
}

/*
 * A plan without a price starts at once. Asking again for the free plan that is already
 * active and running changes nothing and answers that subscription.
 */
static int billing_subscribe_free(struct db *db, struct billing_subscribe_tx *tx)
{
    const char *params[] = {tx->user_id};
    PGresult *active = NULL;
    bool same;
    int rc;

    /* XXX: paid plans wait for the payment provider, which is not connected yet; until it
     * is, they are refused rather than started unpaid or left pending forever. */
    if (!row_bool(tx->plan, 0, BILLING_FIND_FREE)) {
        tx->refusal = BILLING_PAID;
        return 0;
    }

    rc = billing_row(db, "billing_subscription_active", 1, params, &active);
    if (rc != 0)
        return rc;
    same = active != NULL && row_bool(active, 0, 2) &&
           strcmp(PQgetvalue(active, 0, 1), PQgetvalue(tx->plan, 0, BILLING_FIND_ID)) == 0;
    if (same)
        snprintf(tx->id, sizeof(tx->id), "%s", PQgetvalue(active, 0, 0));
    PQclear(active);
    return same ? 0 : billing_subscribe_start(db, tx);
}

static int billing_subscribe_body(struct db *db, void *arg)
{
    struct billing_subscribe_tx *tx = arg;
    const char *user[] = {tx->user_id};
    const char *plan[] = {input_str(tx->req->body, "plan")};
    PGresult *lock = NULL;
    int rc;

    /* A retried transaction starts over. */
    tx->refusal = BILLING_OK;
    tx->id[0] = '\0';
    PQclear(tx->plan);
    tx->plan = NULL;

    rc = billing_row(db, "billing_user_lock", 1, user, &lock);
    if (rc == 0 && (lock == NULL || !row_bool(lock, 0, 2)))
        tx->refusal = BILLING_GONE;
    PQclear(lock);
    if (rc == 0 && tx->refusal == BILLING_OK)
        rc = billing_row(db, "billing_plan_find", 1, plan, &tx->plan);
    if (rc == 0 && tx->refusal == BILLING_OK &&
        (tx->plan == NULL || !row_bool(tx->plan, 0, BILLING_FIND_ACTIVE)))
        tx->refusal = BILLING_BAD_PLAN;
    if (rc != 0 || tx->refusal != BILLING_OK)
        return rc;

    return tx->trial ? billing_subscribe_trial(db, tx) : billing_subscribe_free(db, tx);
}

int billing_subscription_create(struct pool_worker *worker, const struct pool_request *req,
                                struct pool_reply *reply)
{
    struct billing_subscribe_tx tx = {.req = req, .user_id = worker_ctx_user(req)};
    int rc;

    if (!worker_body_ok(req, billing_subscribe_spec,
                        sizeof(billing_subscribe_spec) / sizeof(billing_subscribe_spec[0]), reply))
        return 0;
    if (tx.user_id == NULL) {
        worker_reply_unauthorized(reply);
        return 0;
    }
    tx.trial = json_is_true(json_object_get(req->body, "trial"));

    rc = db_tx(worker->db, billing_subscribe_body, &tx);
    PQclear(tx.plan);

    /* Only the one-trial index can clash here, when a trial won a race the lock missed. */
    if (rc == M360_ECONFLICT)
        return billing_refuse(reply, BILLING_TRIAL_USED);
    if (rc != 0)
        return rc;
    if (tx.refusal != BILLING_OK)
        return billing_refuse(reply, tx.refusal);
    log_info(BILLING_LOG_MODULE, "event=subscription_started req_id=%s user_id=%s trial=%d",
             worker_ctx_request_id(req), tx.user_id, tx.trial);
    return billing_reply_subscription(worker->db, tx.id, reply);
}

/* ---- subscriptions.cancel ------------------------------------------------------------ */

struct billing_cancel_tx {
    const struct pool_request *req;
    const char *user_id;
    bool gone;
    char id[BILLING_ID_BYTES]; /* the active subscription; empty when there is none */
};

/* Turns renewal off; a subscription without an end, or with renewal already off, is left
 * as it is and nothing is audited. */
static int billing_cancel_body(struct db *db, void *arg)
{
    struct billing_cancel_tx *tx = arg;
    const char *user[] = {tx->user_id};
    PGresult *row = NULL;
    bool settled;
    int rc;

    tx->id[0] = '\0';
    rc = billing_row(db, "billing_user_lock", 1, user, &row);
    tx->gone = rc == 0 && (row == NULL || !row_bool(row, 0, 2));
    PQclear(row);
    if (rc == 0 && !tx->gone)
        rc = billing_row(db, "billing_subscription_active", 1, user, &row);
    if (rc != 0 || tx->gone || row == NULL || !row_bool(row, 0, 2)) {
        PQclear(row);
        return rc;
    }
    snprintf(tx->id, sizeof(tx->id), "%s", PQgetvalue(row, 0, 0));
    settled = row_bool(row, 0, 3);
    PQclear(row);
    if (settled)
        return 0;

    {
        const char *params[] = {tx->id};
        struct worker_audit audit = {.user_id = tx->user_id,
                                     .event = "subscription_changed",
                                     .resource_type = "subscription",
                                     .resource_id = tx->id,
                                     .action = "cancel",
                                     .details = json_pack("{s:b}", "autoRenew", 0)};

        rc = db_exec(db, "billing_renewal_off", 1, params, NULL);
        if (rc != 0) {
            json_decref(audit.details);
            return rc;
        }
        return worker_audit_write(db, tx->req, &audit);
    }
}

int billing_subscription_cancel(struct pool_worker *worker, const struct pool_request *req,
                                struct pool_reply *reply)
{
    struct billing_cancel_tx tx = {.req = req, .user_id = worker_ctx_user(req)};
    int rc;

    if (!worker_body_ok(req, NULL, 0, reply))
        return 0;
    if (tx.user_id == NULL) {
        worker_reply_unauthorized(reply);
        return 0;
    }

    rc = db_tx(worker->db, billing_cancel_body, &tx);
    if (rc != 0)
        return rc;
    if (tx.gone)
        return billing_refuse(reply, BILLING_GONE);

    /* Without a running subscription there is nothing to stop: the answer shows what the
     * profile shows, which may be a lapsed subscription or null. */
    if (tx.id[0] == '\0')
        return billing_reply_current(worker->db, tx.user_id, reply);
    return billing_reply_subscription(worker->db, tx.id, reply);
}

/* ---- admin.subscriptions.patch ------------------------------------------------------- */

static const struct input_field billing_admin_patch_spec[] = {
    {"plan", INPUT_STRING, INPUT_OPTIONAL, BILLING_NAME_MAX_CHARS},
    {"status", INPUT_STRING, INPUT_OPTIONAL, 0},
    {"endsAt", INPUT_STRING, INPUT_NULLABLE, 0},
    {"autoRenew", INPUT_BOOLEAN, INPUT_OPTIONAL, 0},
};

#define BILLING_ADMIN_PATCH_FIELDS                                                                 \
    (sizeof(billing_admin_patch_spec) / sizeof(billing_admin_patch_spec[0]))

/* Reads `digits` decimal digits at `text`; -1 when any is not a digit. */
static int billing_digits(const char *text, int digits)
{
    int value = 0;

    for (int i = 0; i < digits; i++) {
        if (text[i] < '0' || text[i] > '9')
            return -1;
        value = value * 10 + (text[i] - '0');
    }
    return value;
}

static bool billing_leap_year(int year)
{
    return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
}

/* True for an RFC 3339 date-time ("2026-12-03T15:56:38Z", a fraction and an offset
 * allowed) that names a real instant; what PostgreSQL parses the same way. */
static bool billing_time_valid(const char *text)
{
    static const int month_days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int year = billing_digits(text, 4);
    int month;
    int day;
    const char *p;

    if (year < 1 || strlen(text) < 20 || text[4] != '-' || text[7] != '-' ||
        (text[10] != 'T' && text[10] != 't') || text[13] != ':' || text[16] != ':')
        return false;
    month = billing_digits(text + 5, 2);
    day = billing_digits(text + 8, 2);
    if (month < 1 || month > 12 || day < 1 ||
        day > month_days[month - 1] + (month == 2 && billing_leap_year(year)))
        return false;
    if (billing_digits(text + 11, 2) > 23 || billing_digits(text + 14, 2) > 59 ||
        billing_digits(text + 17, 2) > 59 || billing_digits(text + 11, 2) < 0 ||
        billing_digits(text + 14, 2) < 0 || billing_digits(text + 17, 2) < 0)
        return false;

    p = text + 19;
    if (*p == '.') {
        int n = 0;

        while (p[1 + n] >= '0' && p[1 + n] <= '9')
            n++;
        if (n == 0 || n > 9)
            return false;
        p += 1 + n;
    }
    if ((*p == 'Z' || *p == 'z') && p[1] == '\0')
        return true;
    return (*p == '+' || *p == '-') && billing_digits(p + 1, 2) >= 0 &&
           billing_digits(p + 1, 2) <= 23 && p[3] == ':' && billing_digits(p + 4, 2) >= 0 &&
           billing_digits(p + 4, 2) <= 59 && p[6] == '\0';
}

/* The problems input_check() cannot see: the status's values and the end's form. */
static bool billing_admin_patch_ok(const json_t *body, struct pool_reply *reply)
{
    const char *status = input_str(body, "status");
    const char *ends_at = input_str(body, "endsAt");

    if (status != NULL && strcmp(status, "active") != 0 && strcmp(status, "cancelled") != 0 &&
        strcmp(status, "expired") != 0) {
        worker_reply_invalid_field(reply, "status", "must be active, cancelled or expired");
        return false;
    }
    if (ends_at != NULL && !billing_time_valid(ends_at)) {
        worker_reply_invalid_field(reply, "endsAt", "must be an RFC 3339 date-time or null");
        return false;
    }
    return true;
}

struct billing_admin_tx {
    const struct pool_request *req;
    const char *caller_id;
    const char *id;
    enum billing_refusal refusal;
    char owner[BILLING_ID_BYTES];
};

/*
 * Finds the owner, locks them (as every subscription change does) and checks that they
 * rank strictly below the caller, both levels read now rather than from any cache.
 */
static int billing_admin_owner(struct db *db, struct billing_admin_tx *tx)
{
    const char *sub[] = {tx->id};
    const char *caller[] = {tx->caller_id};
    const char *owner[] = {tx->owner};
    PGresult *row = NULL;
    long long owner_level;
    int rc = billing_row(db, "billing_subscription_owner", 1, sub, &row);

    if (rc != 0 || row == NULL) {
        tx->refusal = BILLING_NOT_FOUND;
        PQclear(row);
        return rc;
    }
    snprintf(tx->owner, sizeof(tx->owner), "%s", PQgetvalue(row, 0, 0));
    PQclear(row);

    rc = billing_row(db, "billing_user_lock", 1, owner, &row);
    if (rc != 0 || row == NULL) {
        PQclear(row);
        return rc != 0 ? rc : M360_EINTERNAL;
    }
    owner_level = row_int(row, 0, 1);
    PQclear(row);

    rc = billing_row(db, "billing_caller_level", 1, caller, &row);
    if (rc == 0 && row == NULL)
        tx->refusal = BILLING_GONE;
    else if (rc == 0 && owner_level >= row_int(row, 0, 0))
        tx->refusal = BILLING_FORBIDDEN;
    PQclear(row);
    return rc;
}

/* The changed members' names, for the audit row (values are in the row itself). */
static json_t *billing_admin_fields(const json_t *body)
{
    json_t *names = json_array();

    for (size_t i = 0; names != NULL && i < BILLING_ADMIN_PATCH_FIELDS; i++) {
        if (input_has(body, billing_admin_patch_spec[i].name) &&
            json_array_append_new(names, json_string(billing_admin_patch_spec[i].name)) != 0) {
            json_decref(names);
            names = NULL;
        }
    }
    return names;
}

/* Applies the members that were sent; the plan name was resolved to `plan_id`. */
static int billing_admin_apply(struct db *db, struct billing_admin_tx *tx, const char *plan_id)
{
    const json_t *body = tx->req->body;
    const json_t *renew = json_object_get(body, "autoRenew");
    const char *params[] = {tx->id,
                            plan_id,
                            input_str(body, "status"),
                            input_has(body, "endsAt") ? "t" : "f",
                            input_str(body, "endsAt"),
                            renew != NULL ? (json_is_true(renew) ? "t" : "f") : NULL};
    json_t *details =
        json_pack("{s:o, s:s}", "fields", billing_admin_fields(body), "userId", tx->owner);
    int rc =
        details != NULL ? db_exec(db, "billing_subscription_update", 6, params, NULL) : M360_ENOMEM;

    if (rc == 0)
        rc = billing_role_follow(db, tx->owner, details);
    if (rc != 0) {
        json_decref(details);
        return rc;
    }

    {
        struct worker_audit audit = {.user_id = tx->caller_id,
                                     .event = "subscription_changed",
                                     .resource_type = "subscription",
                                     .resource_id = tx->id,
                                     .action = "update",
                                     .details = details};

        return worker_audit_write(db, tx->req, &audit);
    }
}

static int billing_admin_body(struct db *db, void *arg)
{
    struct billing_admin_tx *tx = arg;
    const char *plan_name[] = {input_str(tx->req->body, "plan")};
    PGresult *plan = NULL;
    int rc;

    tx->refusal = BILLING_OK;
    rc = billing_admin_owner(db, tx);
    if (rc != 0 || tx->refusal != BILLING_OK)
        return rc;

    /* An administrator may move a subscription to a plan no longer offered to new
     * subscribers; only a plan that does not exist is refused. */
    if (plan_name[0] != NULL) {
        rc = billing_row(db, "billing_plan_find", 1, plan_name, &plan);
        if (rc == 0 && plan == NULL)
            tx->refusal = BILLING_BAD_PLAN;
        if (rc != 0 || plan == NULL)
            return rc;
    }
    rc = billing_admin_apply(db, tx, plan != NULL ? PQgetvalue(plan, 0, BILLING_FIND_ID) : NULL);
    PQclear(plan);
    return rc;
}

int billing_admin_subscription_patch(struct pool_worker *worker, const struct pool_request *req,
                                     struct pool_reply *reply)
{
    struct billing_admin_tx tx = {
        .req = req, .caller_id = worker_ctx_user(req), .id = input_str(req->params, "id")};
    int rc;

    if (tx.id == NULL || !input_uuid_valid(tx.id))
        return billing_refuse(reply, BILLING_NOT_FOUND);
    if (!worker_body_ok(req, billing_admin_patch_spec, BILLING_ADMIN_PATCH_FIELDS, reply) ||
        !billing_admin_patch_ok(req->body, reply))
        return 0;
    if (tx.caller_id == NULL) {
        worker_reply_unauthorized(reply);
        return 0;
    }

    rc = db_tx(worker->db, billing_admin_body, &tx);
    if (rc == M360_ECONFLICT) {
        pool_reply_error(reply, 409, "Conflict", "The user already has an active subscription",
                         NULL);
        return 0;
    }
    if (rc == M360_EINVAL &&
        strcmp(db_last_constraint(worker->db), "user_subscriptions_period_check") == 0)
        return billing_refuse(reply, BILLING_BAD_ENDS_AT);
    if (rc != 0)
        return rc;
    if (tx.refusal != BILLING_OK)
        return billing_refuse(reply, tx.refusal);
    log_info(BILLING_LOG_MODULE, "event=subscription_updated req_id=%s subscription_id=%s",
             worker_ctx_request_id(req), tx.id);
    return billing_reply_subscription(worker->db, tx.id, reply);
}
