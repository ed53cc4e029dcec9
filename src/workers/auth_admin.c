/* SPDX-License-Identifier: MIT */
/*
 * The administrators' console in the auth pool: the user list, deactivation and role changes
 * under the privilege-level rule, service-wide figures and the audit log. The front end has
 * checked the route's permission before any of these runs; the level rule is checked here.
 */
#include "auth_internal.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "manas360/err.h"
#include "manas360/log.h"

#define AUTH_ADMIN_PAGE_MAX 2147483647LL
#define AUTH_ADMIN_USERS_LIMIT_DEFAULT 20
#define AUTH_ADMIN_USERS_LIMIT_MAX 100
#define AUTH_ADMIN_LOGS_LIMIT_DEFAULT 100
#define AUTH_ADMIN_LOGS_LIMIT_MAX 500
#define AUTH_ADMIN_INT_DIGITS_MAX 18 /* fits a long long whatever the digits */
#define AUTH_ADMIN_Q_MAX_CHARS 254
#define AUTH_ADMIN_Q_MAX_BYTES 1016 /* 254 characters of up to 4 bytes in UTF-8 */
#define AUTH_ADMIN_PATTERN_BYTES (AUTH_ADMIN_Q_MAX_BYTES * 2 + 2) /* each escaped, "%", NUL */
#define AUTH_ADMIN_ROLE_MAX_CHARS 64                              /* roles_name_check */
#define AUTH_ADMIN_ROLE_BYTES (AUTH_ADMIN_ROLE_MAX_CHARS * 4 + 1)
#define AUTH_ADMIN_TIME_BYTES 40  /* "YYYY-MM-DDTHH:MM:SS.fffffffff+HH:MM" and a NUL */
#define AUTH_ADMIN_FRACTION_MAX 9 /* nanoseconds; PostgreSQL keeps microseconds */
#define AUTH_ADMIN_WINDOW_S 86400 /* the analytics' "last 24 hours" */
#define AUTH_ADMIN_INT_BYTES 24

/* The AdminUser object's columns of vw_users_with_subscription, as auth_admin_user_json reads
 * them. The plan is named only while its subscription is active. */
#define AUTH_SQL_ADMIN_USER_COLUMNS                                                                \
    "id, email, first_name, last_name, role_name, is_active AND deleted_at IS NULL, is_verified,"  \
    " CASE WHEN subscription_status = 'active' THEN plan_name END,"                                \
    " " SQL_TIME_RFC3339("created_at") ", " SQL_TIME_RFC3339("last_login_at")

/* A subscription that grants its plan now, of an account that has not been deactivated. */
#define AUTH_SQL_LIVE_SUBSCRIPTION                                                                 \
    "s.status = 'active' AND (s.ends_at IS NULL OR s.ends_at > now())"                             \
    " AND u.is_active AND u.deleted_at IS NULL"

#define AUTH_SQL_AUDIT_SELECT "SELECT " AUTH_SQL_AUDIT_COLUMNS " FROM audit_logs"
#define AUTH_SQL_AUDIT_NEWEST " ORDER BY created_at DESC, id DESC"

/* clang-format off */
static const struct db_stmt auth_admin_stmts[] = {
    /* $1 is an escaped LIKE prefix. The planner uses the lower(email) index when it plans
     * with the value, which it keeps doing while that beats the generic plan. */
    {"auth_admin_users_count",
     "SELECT count(*) FROM user_accounts WHERE lower(email) LIKE lower($1) ESCAPE '\\'",
     1},
    {"auth_admin_users_page",
     "SELECT " AUTH_SQL_ADMIN_USER_COLUMNS
     "  FROM vw_users_with_subscription"
     " WHERE lower(email) LIKE lower($1) ESCAPE '\\'"
     " ORDER BY created_at DESC, id DESC"
     " LIMIT $2 OFFSET $3",
     3},
    {"auth_admin_user_get",
     "SELECT " AUTH_SQL_ADMIN_USER_COLUMNS " FROM vw_users_with_subscription WHERE id = $1",
     1},
    /* The caller and the target, locked in id order: two administrators acting on each other
     * at once wait in turn instead of deadlocking, and neither level changes underneath. */
    {"auth_admin_pair_lock",
     "SELECT u.id, r.privilege_level, r.name, u.is_active AND u.deleted_at IS NULL"
     "  FROM user_accounts u JOIN roles r ON r.id = u.role_id"
     " WHERE u.id IN ($1::uuid, $2::uuid)"
     " ORDER BY u.id"
     "   FOR NO KEY UPDATE OF u",
     2},
    {"auth_admin_role_find",
     "SELECT id, privilege_level FROM roles WHERE name = $1 FOR SHARE",
     1},
    {"auth_admin_user_deactivate",
     "UPDATE user_accounts SET is_active = false, deleted_at = coalesce(deleted_at, now())"
     " WHERE id = $1",
     1},
    {"auth_admin_user_set_role",
     "UPDATE user_accounts SET role_id = $2 WHERE id = $1",
     2},
    /* One statement, so every figure comes from the same snapshot. */
    {"auth_admin_analytics",
     "SELECT (SELECT count(*) FROM user_accounts),"
     "       (SELECT count(*) FROM user_accounts WHERE is_active AND deleted_at IS NULL),"
     "       (SELECT coalesce(jsonb_object_agg(p.name, coalesce(c.n, 0)), '{}')::text"
     "          FROM subscription_plans p"
     "          LEFT JOIN (SELECT s.plan_id, count(*) AS n"
     "                       FROM user_subscriptions s JOIN user_accounts u ON u.id = s.user_id"
     "                      WHERE " AUTH_SQL_LIVE_SUBSCRIPTION
     "                      GROUP BY s.plan_id) c ON c.plan_id = p.id"
     "         WHERE p.is_active OR c.n > 0),"
     "       (SELECT count(*) FROM audit_logs"
     "         WHERE event_type = 'login' AND status = 'success'"
     "           AND created_at > now() - make_interval(secs => $1)),"
     "       (SELECT count(*) FROM audit_logs"
     "         WHERE event_type = 'login' AND status = 'failure'"
     "           AND created_at > now() - make_interval(secs => $1)),"
     "       (SELECT ('{\"role\": 0, \"permission\": 0, \"subscription\": 0, \"feature\": 0,"
     "                 \"quota\": 0}'::jsonb"
     "                || coalesce(jsonb_object_agg(d.reason, d.n), '{}'))::text"
     "          FROM (SELECT details->>'reason' AS reason, count(*) AS n FROM audit_logs"
     "                 WHERE event_type = 'permission_denied'"
     "                   AND created_at > now() - make_interval(secs => $1)"
     "                   AND details->>'reason' IS NOT NULL"
     "                 GROUP BY 1) d),"
     "       (SELECT coalesce(sum(p.price_monthly_paise), 0)::bigint"
     "          FROM user_subscriptions s"
     "          JOIN user_accounts u ON u.id = s.user_id"
     "          JOIN subscription_plans p ON p.id = s.plan_id"
     "         WHERE " AUTH_SQL_LIVE_SUBSCRIPTION " AND NOT s.is_trial)",
     1},
    /* One statement per leading filter, so each reads the index that starts with it. */
    {"auth_audit_by_user",
     AUTH_SQL_AUDIT_SELECT
     " WHERE user_id = $1 AND ($2::text IS NULL OR event_type = $2)"
     "   AND created_at >= $3::timestamptz"
     AUTH_SQL_AUDIT_NEWEST " LIMIT $4",
     4},
    {"auth_audit_by_event",
     AUTH_SQL_AUDIT_SELECT
     " WHERE event_type = $1 AND created_at >= $2::timestamptz"
     AUTH_SQL_AUDIT_NEWEST " LIMIT $3",
     3},
    {"auth_audit_all",
     AUTH_SQL_AUDIT_SELECT
     " WHERE created_at >= $1::timestamptz"
     AUTH_SQL_AUDIT_NEWEST " LIMIT $2",
     2},
};
/* clang-format on */

/* The contract's audit event types, which eventType= must name. */
/* clang-format off */
static const char *const auth_audit_events[] = {
    "register", "login", "logout", "token_refresh", "refresh_token_reuse",
    "password_reset_requested", "password_reset", "password_changed", "email_verified",
    "permission_denied", "data_access", "profile_update", "session_ended", "user_deleted",
    "role_changed", "subscription_changed", "payment", "settings_changed", "role_created",
    "feature_created", "plan_changed",
};
/* clang-format on */

int auth_admin_prepare(struct db *db)
{
    return db_prepare(db, auth_admin_stmts, sizeof(auth_admin_stmts) / sizeof(auth_admin_stmts[0]));
}

static void auth_admin_forbidden(struct pool_reply *reply)
{
    pool_reply_error(reply, 403, "Forbidden",
                     "The target user or role ranks at or above your own privilege level", NULL);
}

/* ---- Query parameters ---------------------------------------------------------------- */

/* Query parameter `name`: NULL when absent; *bad when present but not text free of NUL. */
static const char *auth_query_text(const struct pool_request *req, const char *name, bool *bad)
{
    const json_t *value = json_object_get(req->query, name);
    const char *text = json_string_value(value);

    *bad = value != NULL && (text == NULL || strlen(text) != json_string_length(value));
    return *bad ? NULL : text;
}

/* Adds {name: reason} to `fields`; a failed allocation shows up when the reply is built. */
static void auth_query_problem(json_t *fields, const char *name, const char *reason)
{
    json_object_set_new(fields, name, json_string(reason));
}

/*
 * Reads integer parameter `name` from `min` to `max` into *out, `fallback` when absent;
 * anything else (signs, spaces, an empty value) is a problem added to `fields`.
 */
static void auth_query_int(const struct pool_request *req, const char *name, long long min,
                           long long max, long long fallback, long long *out, json_t *fields)
{
    char reason[80];
    bool bad;
    const char *text = auth_query_text(req, name, &bad);
    size_t len = text != NULL ? strlen(text) : 0;

    *out = fallback;
    if (text == NULL && !bad)
        return;
    if (!bad && len > 0 && len <= AUTH_ADMIN_INT_DIGITS_MAX && strspn(text, "0123456789") == len) {
        *out = strtoll(text, NULL, 10);
        if (*out >= min && *out <= max)
            return;
    }
    snprintf(reason, sizeof(reason), "must be an integer from %lld to %lld", min, max);
    auth_query_problem(fields, name, reason);
}

/* Reads `n` digits at `text` into *value; false when one is not a digit. */
static bool auth_time_digits(const char *text, int n, int *value)
{
    *value = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)text[i]))
            return false;
        *value = *value * 10 + (text[i] - '0');
    }
    return true;
}

/* True when `text` starts with a valid "YYYY-MM-DDTHH:MM:SS" (19 characters). */
static bool auth_time_date_ok(const char *text)
{
    static const int month_days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int year, month, day, hour, minute, second;
    bool leap;

    if (!auth_time_digits(text, 4, &year) || text[4] != '-' ||
        !auth_time_digits(text + 5, 2, &month) || text[7] != '-' ||
        !auth_time_digits(text + 8, 2, &day) || (text[10] != 'T' && text[10] != 't') ||
        !auth_time_digits(text + 11, 2, &hour) || text[13] != ':' ||
        !auth_time_digits(text + 14, 2, &minute) || text[16] != ':' ||
        !auth_time_digits(text + 17, 2, &second))
        return false;
    if (year < 1 || month < 1 || month > 12 || hour > 23 || minute > 59 || second > 60)
        return false;
    leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    return day >= 1 && day <= month_days[month - 1] + (month == 2 && leap);
}

/* True when `text` is exactly "Z" or a "+HH:MM" / "-HH:MM" offset. */
static bool auth_time_offset_ok(const char *text)
{
    int hours, minutes;

    if ((text[0] == 'Z' || text[0] == 'z') && text[1] == '\0')
        return true;
    return (text[0] == '+' || text[0] == '-') && auth_time_digits(text + 1, 2, &hours) &&
           text[3] == ':' && auth_time_digits(text + 4, 2, &minutes) && text[6] == '\0' &&
           hours <= 23 && minutes <= 59;
}

/*
 * Checks an RFC 3339 date-time and writes the text PostgreSQL is given to `out`. A space
 * where the offset's sign belongs is read as '+': form decoding turns an unescaped '+' of a
 * query string into one, and nothing else can be meant there.
 */
static bool auth_time_parse(const char *text, char out[AUTH_ADMIN_TIME_BYTES])
{
    size_t len = strlen(text);
    size_t at = 19;

    if (len < 20 || len >= AUTH_ADMIN_TIME_BYTES || !auth_time_date_ok(text))
        return false;
    memcpy(out, text, len + 1);
    out[10] = 'T';

    if (out[at] == '.') {
        size_t digits = strspn(out + at + 1, "0123456789");

        if (digits == 0 || digits > AUTH_ADMIN_FRACTION_MAX)
            return false;
        at += 1 + digits;
    }
    if (out[at] == ' ')
        out[at] = '+';
    return auth_time_offset_ok(out + at);
}

/* ---- Users --------------------------------------------------------------------------- */

/* One row of AUTH_SQL_ADMIN_USER_COLUMNS as the contract's AdminUser; NULL without memory. */
static json_t *auth_admin_user_json(const PGresult *res, int row)
{
    return json_pack("{s:s, s:s, s:s?, s:s?, s:s, s:b, s:b, s:s?, s:s, s:s?}", "id",
                     PQgetvalue(res, row, 0), "email", PQgetvalue(res, row, 1), "firstName",
                     row_text(res, row, 2), "lastName", row_text(res, row, 3), "role",
                     PQgetvalue(res, row, 4), "isActive", row_bool(res, row, 5), "isVerified",
                     row_bool(res, row, 6), "plan", row_text(res, row, 7), "createdAt",
                     PQgetvalue(res, row, 8), "lastLoginAt", row_text(res, row, 9));
}

/* Every row of `res` through `render`, as a new array; NULL without memory. */
static json_t *auth_admin_rows_json(const PGresult *res, json_t *(*render)(const PGresult *, int))
{
    json_t *rows = json_array();

    for (int i = 0; rows != NULL && i < PQntuples(res); i++) {
        if (json_array_append_new(rows, render(res, i)) != 0) {
            json_decref(rows);
            rows = NULL;
        }
    }
    return rows;
}

/* A LIKE pattern matching emails that start with `q` taken literally. */
static void auth_admin_prefix_pattern(const char *q, char out[AUTH_ADMIN_PATTERN_BYTES])
{
    size_t at = 0;

    for (; *q != '\0'; q++) {
        if (*q == '\\' || *q == '%' || *q == '_')
            out[at++] = '\\';
        out[at++] = *q;
    }
    out[at++] = '%';
    out[at] = '\0';
}

/* The list's parameters, or a 400 in `reply` (false) naming each one that is wrong. */
static bool auth_admin_list_params(const struct pool_request *req, long long *page,
                                   long long *limit, char pattern[AUTH_ADMIN_PATTERN_BYTES],
                                   struct pool_reply *reply)
{
    json_t *fields = json_object();
    bool bad;
    const char *q = auth_query_text(req, "q", &bad);

    auth_query_int(req, "page", 1, AUTH_ADMIN_PAGE_MAX, 1, page, fields);
    auth_query_int(req, "limit", 1, AUTH_ADMIN_USERS_LIMIT_MAX, AUTH_ADMIN_USERS_LIMIT_DEFAULT,
                   limit, fields);
    if (bad || (q != NULL && (strlen(q) > AUTH_ADMIN_Q_MAX_BYTES ||
                              input_utf8_chars(q, strlen(q)) > AUTH_ADMIN_Q_MAX_CHARS)))
        auth_query_problem(fields, "q", "must be text of at most 254 characters");
    else
        auth_admin_prefix_pattern(q != NULL ? q : "", pattern);

    if (json_object_size(fields) == 0) {
        json_decref(fields);
        return true;
    }
    worker_reply_invalid(reply, fields);
    return false;
}

int auth_admin_users_list(struct pool_worker *worker, const struct pool_request *req,
                          struct pool_reply *reply)
{
    char pattern[AUTH_ADMIN_PATTERN_BYTES];
    char limit_text[AUTH_ADMIN_INT_BYTES];
    char offset_text[AUTH_ADMIN_INT_BYTES];
    const char *params[] = {pattern, limit_text, offset_text};
    long long page, limit, total;
    PGresult *res = NULL;
    json_t *users;
    int rc;

    if (!worker_body_ok(req, NULL, 0, reply) ||
        !auth_admin_list_params(req, &page, &limit, pattern, reply))
        return 0;

    rc = db_exec(worker->db, "auth_admin_users_count", 1, params, &res);
    if (rc != 0)
        return rc;
    total = row_int(res, 0, 0);
    PQclear(res);
    res = NULL;

    snprintf(limit_text, sizeof(limit_text), "%lld", limit);
    snprintf(offset_text, sizeof(offset_text), "%lld", (page - 1) * limit);
    rc = db_exec(worker->db, "auth_admin_users_page", 3, params, &res);
    if (rc != 0)
        return rc;
    users = auth_admin_rows_json(res, auth_admin_user_json);
    PQclear(res);
    if (users == NULL)
        return M360_ENOMEM;
    return worker_reply_json(reply, 200,
                             json_pack("{s:b, s:o, s:I, s:I, s:I}", "success", 1, "users", users,
                                       "page", (json_int_t)page, "limit", (json_int_t)limit,
                                       "total", (json_int_t)total));
}

/* ---- The privilege rule -------------------------------------------------------------- */

enum auth_admin_verdict {
    AUTH_ADMIN_ALLOWED,
    AUTH_ADMIN_CALLER_GONE, /* the caller's own account is no longer usable */
    AUTH_ADMIN_NOT_FOUND,
    AUTH_ADMIN_FORBIDDEN,
    AUTH_ADMIN_BAD_ROLE, /* role change: no role of that name */
};

/* What the work on another user needs to know, read from the database in its transaction. */
struct auth_admin_pair {
    bool caller_found;
    long long caller_level;
    bool target_found;
    long long target_level;
    bool target_active;
    char target_role[AUTH_ADMIN_ROLE_BYTES];
};

/*
 * Locks the caller's and the target's accounts and reads their levels, then judges the
 * target: strictly below the caller, or forbidden. The caller is never trusted from the
 * request, only from this read; acting on oneself is forbidden, as one's level is equal.
 */
static int auth_admin_pair_judge(struct db *db, const char *caller, const char *target,
                                 struct auth_admin_pair *pair, enum auth_admin_verdict *verdict)
{
    const char *params[] = {caller, target};
    PGresult *res = NULL;
    int rc = db_exec(db, "auth_admin_pair_lock", 2, params, &res);

    memset(pair, 0, sizeof(*pair));
    for (int i = 0; rc == 0 && i < PQntuples(res); i++) {
        const char *id = PQgetvalue(res, i, 0);

        if (strcasecmp(id, caller) == 0 && row_bool(res, i, 3)) {
            pair->caller_found = true;
            pair->caller_level = row_int(res, i, 1);
        }
        if (strcasecmp(id, target) == 0) {
            pair->target_found = true;
            pair->target_level = row_int(res, i, 1);
            pair->target_active = row_bool(res, i, 3);
            snprintf(pair->target_role, sizeof(pair->target_role), "%s", PQgetvalue(res, i, 2));
        }
    }
    PQclear(res);

    if (!pair->caller_found)
        *verdict = AUTH_ADMIN_CALLER_GONE;
    else if (!pair->target_found)
        *verdict = AUTH_ADMIN_NOT_FOUND;
    else if (pair->target_level >= pair->caller_level)
        *verdict = AUTH_ADMIN_FORBIDDEN;
    else
        *verdict = AUTH_ADMIN_ALLOWED;
    return rc;
}

/* Answers a verdict that stops the work; false for AUTH_ADMIN_ALLOWED. */
static bool auth_admin_refused(enum auth_admin_verdict verdict, struct pool_reply *reply)
{
    switch (verdict) {
    case AUTH_ADMIN_CALLER_GONE:
        worker_reply_unauthorized(reply);
        return true;
    case AUTH_ADMIN_NOT_FOUND:
        pool_reply_error(reply, 404, "NotFound", "User not found", NULL);
        return true;
    case AUTH_ADMIN_FORBIDDEN:
        auth_admin_forbidden(reply);
        return true;
    case AUTH_ADMIN_BAD_ROLE:
        worker_reply_invalid_field(reply, "role", "is not a known role");
        return true;
    case AUTH_ADMIN_ALLOWED:
        break;
    }
    return false;
}

/* One administrator's action on one user, as it goes through its transaction. */
struct auth_admin_action {
    const struct pool_request *req;
    const char *caller;
    const char *target;
    const char *role; /* role change: the new role's name */
    enum auth_admin_verdict verdict;
    bool changed;
    int ended;
    char old_role[AUTH_ADMIN_ROLE_BYTES];
    PGresult *user; /* role change: the target afterwards */
};

/* ---- admin.users.delete -------------------------------------------------------------- */

static int auth_admin_delete_body(struct db *db, void *arg)
{
    struct auth_admin_action *act = arg;
    const char *params[] = {act->target};
    struct auth_admin_pair pair;
    int rc;

    act->changed = false;
    act->ended = 0;
    rc = auth_admin_pair_judge(db, act->caller, act->target, &pair, &act->verdict);
    /* An account already deactivated stays as it is. */
    if (rc != 0 || act->verdict != AUTH_ADMIN_ALLOWED || !pair.target_active)
        return rc;

    rc = db_exec(db, "auth_admin_user_deactivate", 1, params, NULL);
    if (rc == 0)
        rc = auth_sessions_end_user(db, act->target, NULL, AUTH_END_DELETED, &act->ended);
    if (rc != 0)
        return rc;

    {
        struct worker_audit audit = {.user_id = act->caller,
                                     .event = "user_deleted",
                                     .resource_type = "user",
                                     .resource_id = act->target,
                                     .action = "delete",
                                     .details = json_pack("{s:s, s:i}", "role", pair.target_role,
                                                          "sessionsEnded", act->ended)};

        rc = worker_audit_write(db, act->req, &audit);
    }
    act->changed = rc == 0;
    return rc;
}

int auth_admin_users_delete(struct pool_worker *worker, const struct pool_request *req,
                            struct pool_reply *reply)
{
    struct auth_admin_action act = {.req = req, .caller = worker_ctx_user(req)};
    int rc;

    if (!worker_body_ok(req, NULL, 0, reply))
        return 0;
    if (act.caller == NULL) {
        worker_reply_unauthorized(reply);
        return 0;
    }
    act.target = json_string_value(json_object_get(req->params, "userId"));
    if (!input_uuid_valid(act.target)) {
        pool_reply_error(reply, 404, "NotFound", "User not found", NULL);
        return 0;
    }

    rc = db_tx(worker->db, auth_admin_delete_body, &act);
    if (rc != 0 || auth_admin_refused(act.verdict, reply))
        return rc;
    log_info(AUTH_LOG_MODULE,
             "event=user_deleted req_id=%s user_id=%s target_id=%s changed=%d sessions_ended=%d",
             worker_ctx_request_id(req), act.caller, act.target, act.changed, act.ended);
    return worker_reply_json(reply, 200,
                             json_pack("{s:b, s:s}", "success", 1, "message", "User deactivated"));
}

/* ---- admin.users.role ---------------------------------------------------------------- */

static const struct input_field auth_role_spec[] = {
    {"role", INPUT_STRING, INPUT_REQUIRED, AUTH_ADMIN_ROLE_MAX_CHARS},
};

/* Looks the new role up: its id in `role_id` (empty when there is none) and its level. */
static int auth_admin_role_find(struct db *db, const char *name, char role_id[TOKEN_ID_BYTES],
                                long long *level)
{
    const char *params[] = {name};
    PGresult *res = NULL;
    int rc = db_exec(db, "auth_admin_role_find", 1, params, &res);

    role_id[0] = '\0';
    if (rc == 0 && PQntuples(res) == 1) {
        snprintf(role_id, TOKEN_ID_BYTES, "%s", PQgetvalue(res, 0, 0));
        *level = row_int(res, 0, 1);
    }
    PQclear(res);
    return rc;
}

/* Moves the target to the new role, ends its sessions and audits the change. */
static int auth_admin_role_apply(struct db *db, struct auth_admin_action *act, const char *role_id)
{
    const char *params[] = {act->target, role_id};
    int rc = db_exec(db, "auth_admin_user_set_role", 2, params, NULL);

    /* The sessions carry the old role's standing: the user signs in again under the new. */
    if (rc == 0)
        rc = auth_sessions_end_user(db, act->target, NULL, AUTH_END_ROLE, &act->ended);
    if (rc != 0)
        return rc;

    {
        struct worker_audit audit = {.user_id = act->caller,
                                     .event = "role_changed",
                                     .resource_type = "user",
                                     .resource_id = act->target,
                                     .action = "update_role",
                                     .details = json_pack("{s:s, s:s, s:i}", "oldRole",
                                                          act->old_role, "newRole", act->role,
                                                          "sessionsEnded", act->ended)};

        rc = worker_audit_write(db, act->req, &audit);
    }
    act->changed = rc == 0;
    return rc;
}

static int auth_admin_role_body(struct db *db, void *arg)
{
    struct auth_admin_action *act = arg;
    const char *params[] = {act->target};
    char role_id[TOKEN_ID_BYTES];
    struct auth_admin_pair pair;
    long long role_level = 0;
    int rc;

    /* A retried transaction starts over. */
    PQclear(act->user);
    act->user = NULL;
    act->changed = false;
    act->ended = 0;

    /* An unknown target first, then an unknown role, then the levels of both. */
    rc = auth_admin_pair_judge(db, act->caller, act->target, &pair, &act->verdict);
    if (rc != 0 || act->verdict == AUTH_ADMIN_CALLER_GONE || act->verdict == AUTH_ADMIN_NOT_FOUND)
        return rc;
    rc = auth_admin_role_find(db, act->role, role_id, &role_level);
    if (rc != 0)
        return rc;
    if (role_id[0] == '\0')
        act->verdict = AUTH_ADMIN_BAD_ROLE;
    else if (role_level >= pair.caller_level)
        act->verdict = AUTH_ADMIN_FORBIDDEN;
    if (act->verdict != AUTH_ADMIN_ALLOWED)
        return 0;

    /* The role the user already holds changes nothing and ends nothing. */
    snprintf(act->old_role, sizeof(act->old_role), "%s", pair.target_role);
    if (strcmp(pair.target_role, act->role) != 0)
        rc = auth_admin_role_apply(db, act, role_id);
    if (rc == 0)
        rc = db_exec(db, "auth_admin_user_get", 1, params, &act->user);
    if (rc == 0 && PQntuples(act->user) != 1)
        rc = M360_EINTERNAL; /* locked above, so it cannot have gone */
    return rc;
}

int auth_admin_users_role(struct pool_worker *worker, const struct pool_request *req,
                          struct pool_reply *reply)
{
    struct auth_admin_action act = {.req = req, .caller = worker_ctx_user(req)};
    json_t *user;
    int rc;

    if (!worker_body_ok(req, auth_role_spec, sizeof(auth_role_spec) / sizeof(auth_role_spec[0]),
                        reply))
        return 0;
    if (act.caller == NULL) {
        worker_reply_unauthorized(reply);
        return 0;
    }
    act.target = json_string_value(json_object_get(req->params, "userId"));
    if (!input_uuid_valid(act.target)) {
        pool_reply_error(reply, 404, "NotFound", "User not found", NULL);
        return 0;
    }
    act.role = input_str(req->body, "role");

    rc = db_tx(worker->db, auth_admin_role_body, &act);
    if (rc != 0 || auth_admin_refused(act.verdict, reply))
        goto done;
    log_info(AUTH_LOG_MODULE,
             "event=role_changed req_id=%s user_id=%s target_id=%s old_role=%s new_role=%s"
             " changed=%d sessions_ended=%d",
             worker_ctx_request_id(req), act.caller, act.target, act.old_role, act.role,
             act.changed, act.ended);
    user = auth_admin_user_json(act.user, 0);
    rc = user != NULL
             ? worker_reply_json(reply, 200, json_pack("{s:b, s:o}", "success", 1, "user", user))
             : M360_ENOMEM;

done:
    PQclear(act.user);
    return rc;
}

/* ---- admin.analytics ----------------------------------------------------------------- */

/* The analytics' columns, in the order of auth_admin_analytics. */
enum auth_analytics_col {
    AUTH_AN_USERS,
    AUTH_AN_ACTIVE,
    AUTH_AN_BY_PLAN,
    AUTH_AN_LOGINS_OK,
    AUTH_AN_LOGINS_FAILED,
    AUTH_AN_DENIALS,
    AUTH_AN_MRR,
};

/* Live sessions, counted as the front end's /metrics counts them. */
static int auth_admin_sessions_active(struct pool_worker *worker, long long *count)
{
    char idle[AUTH_ADMIN_INT_BYTES];
    const char *params[] = {idle};
    PGresult *res = NULL;
    int rc;

    snprintf(idle, sizeof(idle), "%" PRId64, worker->cfg->session_idle_timeout_s);
    rc = db_exec(worker->db, "auth_sessions_active", 1, params, &res);
    if (rc == 0)
        *count = row_int(res, 0, 0);
    PQclear(res);
    return rc;
}

static json_t *auth_admin_analytics_json(const PGresult *res, long long sessions)
{
    json_t *by_plan = json_loads(PQgetvalue(res, 0, AUTH_AN_BY_PLAN), 0, NULL);
    json_t *denials = json_loads(PQgetvalue(res, 0, AUTH_AN_DENIALS), 0, NULL);

    if (by_plan == NULL || denials == NULL) {
        json_decref(by_plan);
        json_decref(denials);
        return NULL;
    }
    return json_pack("{s:b, s:{s:I, s:I, s:o}, s:{s:I, s:I}, s:o, s:I, s:I}", "success", 1, "users",
                     "total", (json_int_t)row_int(res, 0, AUTH_AN_USERS), "active",
                     (json_int_t)row_int(res, 0, AUTH_AN_ACTIVE), "byPlan", by_plan, "logins24h",
                     "success", (json_int_t)row_int(res, 0, AUTH_AN_LOGINS_OK), "failure",
                     (json_int_t)row_int(res, 0, AUTH_AN_LOGINS_FAILED), "denials24h", denials,
                     "activeSessions", (json_int_t)sessions, "mrrPaise",
                     (json_int_t)row_int(res, 0, AUTH_AN_MRR));
}

int auth_admin_analytics(struct pool_worker *worker, const struct pool_request *req,
                         struct pool_reply *reply)
{
    char window[AUTH_ADMIN_INT_BYTES];
    const char *params[] = {window};
    long long sessions = 0;
    PGresult *res = NULL;
    json_t *body;
    int rc;

    if (!worker_body_ok(req, NULL, 0, reply))
        return 0;

    rc = auth_admin_sessions_active(worker, &sessions);
    if (rc != 0)
        return rc;
    snprintf(window, sizeof(window), "%d", AUTH_ADMIN_WINDOW_S);
    rc = db_exec(worker->db, "auth_admin_analytics", 1, params, &res);
    if (rc != 0)
        return rc;
    body = auth_admin_analytics_json(res, sessions);
    PQclear(res);
    return worker_reply_json(reply, 200, body);
}

/* ---- admin.audit_logs ---------------------------------------------------------------- */

json_t *auth_audit_log_json(const PGresult *res, int row)
{
    json_t *details = json_loads(PQgetvalue(res, row, 7), 0, NULL);

    if (details == NULL)
        return NULL;
    return json_pack("{s:s, s:s?, s:s, s:s?, s:s?, s:s?, s:s, s:o, s:s?, s:s}", "id",
                     PQgetvalue(res, row, 0), "userId", row_text(res, row, 1), "eventType",
                     PQgetvalue(res, row, 2), "resourceType", row_text(res, row, 3), "resourceId",
                     row_text(res, row, 4), "action", row_text(res, row, 5), "status",
                     PQgetvalue(res, row, 6), "details", details, "ipAddress",
                     row_text(res, row, 8), "createdAt", PQgetvalue(res, row, 9));
}

/* The audit list's filters, checked. */
struct auth_audit_filter {
    const char *user_id;    /* NULL: any */
    const char *event_type; /* NULL: any */
    char since[AUTH_ADMIN_TIME_BYTES];
    char limit[AUTH_ADMIN_INT_BYTES];
};

static bool auth_audit_event_known(const char *name)
{
    for (size_t i = 0; i < sizeof(auth_audit_events) / sizeof(auth_audit_events[0]); i++) {
        if (strcmp(name, auth_audit_events[i]) == 0)
            return true;
    }
    return false;
}

/* Reads the filters, or answers 400 (false) naming each one that is wrong. */
static bool auth_audit_filter_read(const struct pool_request *req, struct auth_audit_filter *out,
                                   struct pool_reply *reply)
{
    json_t *fields = json_object();
    const char *since;
    long long limit;
    bool bad;

    out->user_id = auth_query_text(req, "userId", &bad);
    if (bad || (out->user_id != NULL && !input_uuid_valid(out->user_id)))
        auth_query_problem(fields, "userId", "must be a UUID");
    out->event_type = auth_query_text(req, "eventType", &bad);
    if (bad || (out->event_type != NULL && !auth_audit_event_known(out->event_type)))
        auth_query_problem(fields, "eventType", "must be one of the audit event types");
    since = auth_query_text(req, "since", &bad);
    if (since == NULL && !bad)
        snprintf(out->since, sizeof(out->since), "-infinity");
    else if (bad || !auth_time_parse(since, out->since))
        auth_query_problem(fields, "since", "must be an RFC 3339 date-time");
    auth_query_int(req, "limit", 1, AUTH_ADMIN_LOGS_LIMIT_MAX, AUTH_ADMIN_LOGS_LIMIT_DEFAULT,
                   &limit, fields);
    snprintf(out->limit, sizeof(out->limit), "%lld", limit);

    if (json_object_size(fields) == 0) {
        json_decref(fields);
        return true;
    }
    worker_reply_invalid(reply, fields);
    return false;
}

/* Runs the statement whose index leads with the most selective filter given. */
static int auth_audit_query(struct db *db, const struct auth_audit_filter *f, PGresult **res)
{
    if (f->user_id != NULL) {
        const char *params[] = {f->user_id, f->event_type, f->since, f->limit};

        return db_exec(db, "auth_audit_by_user", 4, params, res);
    }
    if (f->event_type != NULL) {
        const char *params[] = {f->event_type, f->since, f->limit};

        return db_exec(db, "auth_audit_by_event", 3, params, res);
    }
    {
        const char *params[] = {f->since, f->limit};

        return db_exec(db, "auth_audit_all", 2, params, res);
    }
}

int auth_admin_audit_logs(struct pool_worker *worker, const struct pool_request *req,
                          struct pool_reply *reply)
{
    struct auth_audit_filter filter;
    PGresult *res = NULL;
    json_t *logs;
    int rc;

    if (!worker_body_ok(req, NULL, 0, reply) || !auth_audit_filter_read(req, &filter, reply))
        return 0;

    rc = auth_audit_query(worker->db, &filter, &res);
    if (rc != 0)
        return rc;
    logs = auth_admin_rows_json(res, auth_audit_log_json);
    PQclear(res);
    if (logs == NULL)
        return M360_ENOMEM;
    return worker_reply_json(reply, 200, json_pack("{s:b, s:o}", "success", 1, "logs", logs));
}
