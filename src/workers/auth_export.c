/* SPDX-License-Identifier: MIT */
/*
 * The caller's own data in one document (GET /api/data/export). The front end has checked
 * the subscription, the plan's data_export feature and the quota before this runs.
 */
#include "auth_internal.h"

#include <stdio.h>
#include <time.h>

#include "manas360/err.h"
#include "manas360/log.h"

/* XXX: the export carries the latest 1000 of the caller's audit events, not all of them. */
#define AUTH_EXPORT_EVENTS_MAX "1000"
#define AUTH_EXPORT_TIME_BYTES 32

/* clang-format off */
static const struct db_stmt auth_export_stmts[] = {
    /* Every subscription, read the way vw_users_with_subscription reads the current one. */
    {"auth_export_subscriptions",
     "SELECT " SQL_SUBSCRIPTION_COLUMNS
     "  FROM (SELECT s.id AS subscription_id, p.name AS plan_name,"
     "               CASE WHEN s.ends_at <= now() THEN 'expired' ELSE s.status END"
     "                 AS subscription_status,"
     "               s.is_trial, s.starts_at, s.ends_at, s.auto_renew, s.created_at"
     "          FROM user_subscriptions s JOIN subscription_plans p ON p.id = s.plan_id"
     "         WHERE s.user_id = $1) s"
     " ORDER BY created_at DESC, starts_at DESC, subscription_id DESC",
     1},
    {"auth_export_audit",
     "SELECT " AUTH_SQL_AUDIT_COLUMNS " FROM audit_logs"
     " WHERE user_id = $1"
     " ORDER BY created_at DESC, id DESC"
     " LIMIT $2",
     2},
};
/* clang-format on */

int auth_export_prepare(struct db *db)
{
    return db_prepare(db, auth_export_stmts,
                      sizeof(auth_export_stmts) / sizeof(auth_export_stmts[0]));
}

/* Every subscription of `user_id`, newest first, as a new array. */
static int auth_export_subscriptions(struct db *db, const char *user_id, json_t **out)
{
    const char *params[] = {user_id};
    PGresult *res = NULL;
    json_t *list;
    int rc = db_exec(db, "auth_export_subscriptions", 1, params, &res);

    *out = NULL;
    if (rc != 0)
        return rc;
    list = json_array();
    for (int i = 0; list != NULL && i < PQntuples(res); i++) {
        if (json_array_append_new(list, row_subscription_json(res, i, 0)) != 0) {
            json_decref(list);
            list = NULL;
        }
    }
    PQclear(res);
    *out = list;
    return list != NULL ? 0 : M360_ENOMEM;
}

/* The latest of the caller's own audit events, newest first, as a new array. */
static int auth_export_events(struct db *db, const char *user_id, json_t **out)
{
    const char *params[] = {user_id, AUTH_EXPORT_EVENTS_MAX};
    PGresult *res = NULL;
    json_t *list;
    int rc = db_exec(db, "auth_export_audit", 2, params, &res);

    *out = NULL;
    if (rc != 0)
        return rc;
    list = json_array();
    for (int i = 0; list != NULL && i < PQntuples(res); i++) {
        if (json_array_append_new(list, auth_audit_log_json(res, i)) != 0) {
            json_decref(list);
            list = NULL;
        }
    }
    PQclear(res);
    *out = list;
    return list != NULL ? 0 : M360_ENOMEM;
}

/* The parts of one export, gathered in one transaction. */
struct auth_export_tx {
    const struct pool_request *req;
    const char *user_id;
    json_t *profile; /* NULL: the account is gone */
    json_t *subscriptions;
    json_t *sessions;
    json_t *events;
};

static void auth_export_clear(struct auth_export_tx *tx)
{
    json_decref(tx->profile);
    json_decref(tx->subscriptions);
    json_decref(tx->sessions);
    json_decref(tx->events);
    tx->profile = NULL;
    tx->subscriptions = NULL;
    tx->sessions = NULL;
    tx->events = NULL;
}

/* Reads everything, then records the access: the export shows what preceded it. */
static int auth_export_body(struct db *db, void *arg)
{
    struct auth_export_tx *tx = arg;
    int rc;

    /* A retried transaction starts over. */
    auth_export_clear(tx);
    rc = auth_profile_user(db, tx->user_id, &tx->profile);
    if (rc != 0 || tx->profile == NULL)
        return rc;
    rc = auth_export_subscriptions(db, tx->user_id, &tx->subscriptions);
    if (rc == 0)
        rc = auth_sessions_json(db, tx->user_id, worker_ctx_session(tx->req), &tx->sessions);
    if (rc == 0)
        rc = auth_export_events(db, tx->user_id, &tx->events);
    if (rc != 0)
        return rc;

    {
        struct worker_audit audit = {
            .user_id = tx->user_id,
            .event = "data_access",
            .resource_type = "user",
            .resource_id = tx->user_id,
            .action = "export",
            .details = json_pack("{s:I, s:I, s:I}", "subscriptions",
                                 (json_int_t)json_array_size(tx->subscriptions), "sessions",
                                 (json_int_t)json_array_size(tx->sessions), "auditEvents",
                                 (json_int_t)json_array_size(tx->events))};

        rc = worker_audit_write(db, tx->req, &audit);
    }
    return rc;
}

/* The document; the parts move into it. */
static int auth_export_reply(struct auth_export_tx *tx, struct pool_reply *reply)
{
    time_t now = (time_t)tx->req->now;
    char exported_at[AUTH_EXPORT_TIME_BYTES];
    struct tm tm;
    json_t *body;

    if (gmtime_r(&now, &tm) == NULL ||
        strftime(exported_at, sizeof(exported_at), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        return M360_EINTERNAL;
    body = json_pack("{s:b, s:s, s:O, s:O, s:O, s:O}", "success", 1, "exportedAt", exported_at,
                     "profile", tx->profile, "subscriptions", tx->subscriptions, "sessions",
                     tx->sessions, "auditEvents", tx->events);
    return worker_reply_json(reply, 200, body);
}

int auth_export(struct pool_worker *worker, const struct pool_request *req,
                struct pool_reply *reply)
{
    struct auth_export_tx tx = {.req = req, .user_id = worker_ctx_user(req)};
    int rc;

    if (!worker_body_ok(req, NULL, 0, reply))
        return 0;
    if (tx.user_id == NULL) {
        worker_reply_unauthorized(reply);
        return 0;
    }

    rc = db_tx(worker->db, auth_export_body, &tx);
    if (rc == 0 && tx.profile == NULL) {
        worker_reply_unauthorized(reply);
    } else if (rc == 0) {
        rc = auth_export_reply(&tx, reply);
        log_info(AUTH_LOG_MODULE, "event=data_export req_id=%s user_id=%s audit_events=%zu",
                 worker_ctx_request_id(req), tx.user_id, json_array_size(tx.events));
    }
    auth_export_clear(&tx);
    return rc;
}
