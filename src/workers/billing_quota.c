/* SPDX-License-Identifier: MIT */
/* Authorization facts and quota leases for the front end's access decisions. */
#include "billing_quota.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "manas360/err.h"
#include "manas360/input.h"
#include "manas360/log.h"
#include "worker.h"

#define QUOTA_LOG_MODULE "quota"
#define QUOTA_SETTLEMENTS_MAX 1000 /* per message; the front end sends larger sets in parts */
#define QUOTA_INT_TEXT_BYTES 24

/* clang-format off */
static const struct db_stmt billing_quota_stmts[] = {
    /* The whole answer as one JSON text, so what decides a request is read in one statement
     * and one snapshot. */
    {"billing_authz_load",
     "SELECT json_build_object("
     "  'found', true, 'role', r.name, 'level', r.privilege_level,"
     "  'permissions', coalesce((SELECT json_agg(p.name ORDER BY p.name)"
     "                             FROM role_permissions rp"
     "                             JOIN permissions p ON p.id = rp.permission_id"
     "                            WHERE rp.role_id = r.id), '[]'),"
     "  'subscription', (SELECT json_build_object("
     "       'plan', sp.name, 'status', s.status,"
     "       'endsAt', floor(extract(epoch FROM s.ends_at))::bigint,"
     "       'limit', sp.max_api_requests_per_month,"
     "       'features', coalesce((SELECT json_agg(f.name ORDER BY f.name)"
     "                               FROM plan_features pf"
     "                               JOIN features f ON f.id = pf.feature_id"
     "                              WHERE pf.plan_id = sp.id), '[]'))"
     "       FROM user_subscriptions s"
     "       JOIN subscription_plans sp ON sp.id = s.plan_id"
     "      WHERE s.user_id = u.id"
     "      ORDER BY (s.status = 'active') DESC, s.created_at DESC, s.id"
     "      LIMIT 1))::text"
     "  FROM user_accounts u JOIN roles r ON r.id = u.role_id"
     " WHERE u.id = $1",
     1},
    {"billing_authz_plans",
     "SELECT coalesce(json_agg(json_build_object("
     "         'name', p.name, 'tier', p.tier,"
     "         'features', coalesce((SELECT json_agg(f.name ORDER BY f.name)"
     "                                 FROM plan_features pf"
     "                                 JOIN features f ON f.id = pf.feature_id"
     "                                WHERE pf.plan_id = p.id), '[]'))"
     "       ORDER BY p.tier), '[]')::text"
     "  FROM subscription_plans p WHERE p.is_active",
     0},
    {"billing_quota_lease",
     "SELECT granted, used, leased FROM quota_lease($1, $2, $3, $4, $5, $6)",
     6},
};
/* clang-format on */

int billing_quota_prepare(struct db *db)
{
    return db_prepare(db, billing_quota_stmts,
                      sizeof(billing_quota_stmts) / sizeof(billing_quota_stmts[0]));
}

/* A reply whose body is JSON text made by the database. */
static int billing_reply_text(struct pool_reply *reply, const char *text)
{
    json_t *body = json_loads(text, 0, NULL);

    if (!json_is_object(body)) {
        json_decref(body);
        return M360_EINTERNAL;
    }
    json_object_set_new(body, "success", json_true());
    return worker_reply_json(reply, 200, body);
}

int billing_authz_load(struct pool_worker *worker, const struct pool_request *req,
                       struct pool_reply *reply)
{
    const char *user_id = json_string_value(json_object_get(req->body, "userId"));
    PGresult *res = NULL;
    int rc;

    if (!input_uuid_valid(user_id)) {
        worker_reply_invalid_field(reply, "userId", "must be a UUID");
        return 0;
    }

    rc = db_exec(worker->db, "billing_authz_load", 1, &user_id, &res);
    if (rc == 0 && PQntuples(res) == 0)
        rc = worker_reply_json(reply, 200, json_pack("{s:b, s:b}", "success", 1, "found", 0));
    else if (rc == 0)
        rc = billing_reply_text(reply, PQgetvalue(res, 0, 0));
    PQclear(res);
    return rc;
}

int billing_authz_plans(struct pool_worker *worker, const struct pool_request *req,
                        struct pool_reply *reply)
{
    PGresult *res = NULL;
    json_t *plans;
    int rc;

    (void)req;
    rc = db_exec(worker->db, "billing_authz_plans", 0, NULL, &res);
    if (rc != 0)
        goto done;

    plans = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
    rc = json_is_array(plans)
             ? worker_reply_json(reply, 200, json_pack("{s:b, s:o}", "success", 1, "plans", plans))
             : M360_EINTERNAL;
    if (rc != 0 && !json_is_array(plans))
        json_decref(plans);

done:
    PQclear(res);
    return rc;
}

/* One settlement or lease as the front end states it; false when a member is malformed. */
struct quota_call {
    const char *user_id;
    const char *period;
    json_int_t consumed;
    json_int_t returned;
    json_int_t wanted;
    json_int_t limit;
};

/* A period is the first day of a month: "YYYY-MM-01". */
static bool quota_period_valid(const char *text)
{
    return text != NULL && strlen(text) == 10 && strspn(text, "0123456789-") == 10 &&
           text[4] == '-' && text[7] == '-' && strcmp(text + 8, "01") == 0;
}

static bool quota_count_read(const json_t *object, const char *name, json_int_t *out)
{
    const json_t *value = json_object_get(object, name);

    if (value == NULL) {
        *out = 0;
        return true;
    }
    *out = json_integer_value(value);
    return json_is_integer(value) && *out >= 0;
}

static bool quota_call_read(const json_t *object, struct quota_call *call)
{
    call->user_id = json_string_value(json_object_get(object, "userId"));
    call->period = json_string_value(json_object_get(object, "period"));
    return input_uuid_valid(call->user_id) && quota_period_valid(call->period) &&
           quota_count_read(object, "consumed", &call->consumed) &&
           quota_count_read(object, "returned", &call->returned) &&
           quota_count_read(object, "wanted", &call->wanted) &&
           quota_count_read(object, "limit", &call->limit);
}

/* Runs quota_lease() for one call; *out receives the row (caller clears). */
static int quota_call_run(struct db *db, const struct quota_call *call, PGresult **out)
{
    char counts[4][QUOTA_INT_TEXT_BYTES];
    const char *params[6] = {call->user_id, call->period, counts[0],
                             counts[1],     counts[2],    counts[3]};

    snprintf(counts[0], sizeof(counts[0]), "%" JSON_INTEGER_FORMAT, call->consumed);
    snprintf(counts[1], sizeof(counts[1]), "%" JSON_INTEGER_FORMAT, call->returned);
    snprintf(counts[2], sizeof(counts[2]), "%" JSON_INTEGER_FORMAT, call->wanted);
    snprintf(counts[3], sizeof(counts[3]), "%" JSON_INTEGER_FORMAT, call->limit);
    return db_exec(db, "billing_quota_lease", 6, params, out);
}

int billing_quota_lease(struct pool_worker *worker, const struct pool_request *req,
                        struct pool_reply *reply)
{
    struct quota_call call;
    PGresult *res = NULL;
    int rc;

    if (!quota_call_read(req->body, &call)) {
        worker_reply_invalid_field(reply, "lease", "malformed");
        return 0;
    }

    rc = quota_call_run(worker->db, &call, &res);
    if (rc == 0)
        rc = worker_reply_json(
            reply, 200,
            json_pack("{s:b, s:I, s:I, s:I}", "success", 1, "granted",
                      (json_int_t)strtoll(PQgetvalue(res, 0, 0), NULL, 10), "used",
                      (json_int_t)strtoll(PQgetvalue(res, 0, 1), NULL, 10), "leased",
                      (json_int_t)strtoll(PQgetvalue(res, 0, 2), NULL, 10)));
    PQclear(res);
    return rc;
}

/* The settlements of one message, applied in one transaction. */
static int quota_settle_body(struct db *db, void *arg)
{
    const json_t *settlements = arg;
    size_t i;
    json_t *item;
    int rc = 0;

    json_array_foreach(settlements, i, item)
    {
        struct quota_call call;
        PGresult *res = NULL;

        if (!quota_call_read(item, &call))
            continue;
        call.wanted = 0;
        rc = quota_call_run(db, &call, &res);
        PQclear(res);
        if (rc != 0)
            break;
    }
    return rc;
}

int billing_quota_settle(struct pool_worker *worker, const struct pool_request *req,
                         struct pool_reply *reply)
{
    const json_t *settlements = json_object_get(req->body, "settlements");

    if (!json_is_array(settlements) || json_array_size(settlements) > QUOTA_SETTLEMENTS_MAX) {
        worker_reply_invalid_field(reply, "settlements", "must be an array of at most 1000");
        return 0;
    }
    return db_tx(worker->db, quota_settle_body, (void *)settlements);
}
