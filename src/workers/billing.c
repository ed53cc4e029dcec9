/* SPDX-License-Identifier: MIT */
/*
 * The billing pool: its message table, the public plan catalogue and the caller's current
 * subscription. Subscribing and cancelling live in billing_subscribe.c, the administrators'
 * catalogue changes in billing_catalog.c, the front end's authorization facts and quota
 * leases in billing_quota.c; the auth pool writes the Free row at register.
 */
#include "manas360/billing.h"

#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>

#include "manas360/db.h"
#include "manas360/err.h"
#include "manas360/input.h"
#include "billing_internal.h"
#include "billing_quota.h"

/* XXX: payments and the webhook are not built: a paid plan is only reached by a trial or by
 * an administrator's change. */

/* The catalogue's columns, in the order of billing_plans_public. */
enum billing_plan_col {
    BILLING_PLAN_NAME,
    BILLING_PLAN_DESCRIPTION,
    BILLING_PLAN_TIER,
    BILLING_PLAN_PRICE,
    BILLING_PLAN_PERIOD,
    BILLING_PLAN_REQUESTS,
    BILLING_PLAN_TRIAL,
    BILLING_PLAN_FEATURED,
    BILLING_PLAN_FEATURES,
    /* then is_active, at BILLING_PLAN_COL_ACTIVE */
};

/* clang-format off */
static const struct db_stmt billing_stmts[] = {
    /* Active plans by tier (unique, so the order is total); a plan without features gets []. */
    {"billing_plans_public",
     "SELECT " BILLING_SQL_PLAN_COLUMNS
     "  FROM subscription_plans p" BILLING_SQL_PLAN_JOINS
     " WHERE p.is_active"
     " GROUP BY p.id"
     " ORDER BY p.tier",
     0},
    /* The profile's subscription, from the same view: its status reads 'expired' once
     * ends_at has passed, whatever the row says. */
    {"billing_subscription_current",
     "SELECT " SQL_SUBSCRIPTION_COLUMNS
     "  FROM vw_users_with_subscription"
     " WHERE id = $1 AND is_active AND deleted_at IS NULL",
     1},
};
/* clang-format on */

/* ---- plans.public -------------------------------------------------------------------- */

/* NULL also when the feature list does not parse. */
json_t *billing_plan_json(const PGresult *res, int row)
{
    json_t *features = json_loads(PQgetvalue(res, row, BILLING_PLAN_FEATURES), 0, NULL);

    if (!json_is_array(features)) {
        json_decref(features);
        return NULL;
    }
    return json_pack("{s:s, s:s?, s:I, s:I, s:I, s:I, s:I, s:b, s:o}", "name",
                     PQgetvalue(res, row, BILLING_PLAN_NAME), "description",
                     row_text(res, row, BILLING_PLAN_DESCRIPTION), "tier",
                     (json_int_t)row_int(res, row, BILLING_PLAN_TIER), "priceMonthlyPaise",
                     (json_int_t)row_int(res, row, BILLING_PLAN_PRICE), "billingPeriodDays",
                     (json_int_t)row_int(res, row, BILLING_PLAN_PERIOD), "maxApiRequestsPerMonth",
                     (json_int_t)row_int(res, row, BILLING_PLAN_REQUESTS), "trialPeriodDays",
                     (json_int_t)row_int(res, row, BILLING_PLAN_TRIAL), "isFeatured",
                     row_bool(res, row, BILLING_PLAN_FEATURED), "features", features);
}

static int billing_plans_public(struct pool_worker *worker, const struct pool_request *req,
                                struct pool_reply *reply)
{
    PGresult *res = NULL;
    json_t *plans = NULL;
    int rc;

    if (!worker_body_ok(req, NULL, 0, reply))
        return 0;

    rc = db_exec(worker->db, "billing_plans_public", 0, NULL, &res);
    if (rc != 0)
        goto done;
    plans = json_array();
    if (plans == NULL) {
        rc = M360_ENOMEM;
        goto done;
    }

    /* A plan that cannot be built (its feature list did not parse) fails the whole answer
     * rather than leave a plan out of the catalogue. */
    for (int row = 0; row < PQntuples(res); row++) {
        if (json_array_append_new(plans, billing_plan_json(res, row)) != 0) {
            rc = M360_EINTERNAL;
            goto done;
        }
    }
    rc = worker_reply_json(reply, 200, json_pack("{s:b, s:o}", "success", 1, "plans", plans));
    plans = NULL;

done:
    json_decref(plans);
    PQclear(res);
    return rc;
}

/* ---- subscriptions.current ----------------------------------------------------------- */

static int billing_subscription_current(struct pool_worker *worker, const struct pool_request *req,
                                        struct pool_reply *reply)
{
    const char *user_id = worker_ctx_user(req);
    const char *params[] = {user_id};
    PGresult *res = NULL;
    json_t *subscription;
    int rc;

    if (!worker_body_ok(req, NULL, 0, reply))
        return 0;
    if (user_id == NULL) {
        pool_reply_error(reply, 401, "Unauthorized", "Authentication required", NULL);
        return 0;
    }

    rc = db_exec(worker->db, "billing_subscription_current", 1, params, &res);
    if (rc != 0)
        goto done;

    /* No row: the account was disabled or deleted after the token was checked. */
    if (PQntuples(res) != 1) {
        pool_reply_error(reply, 401, "Unauthorized", "Authentication required", NULL);
        goto done;
    }
    subscription = row_subscription_json(res, 0, 0);
    rc = subscription != NULL
             ? worker_reply_json(
                   reply, 200, json_pack("{s:b, s:o}", "success", 1, "subscription", subscription))
             : M360_ENOMEM;

done:
    PQclear(res);
    return rc;
}

/* ---- The pool ------------------------------------------------------------------------ */

static const struct pool_route billing_routes[] = {
    {"authz.load", billing_authz_load},
    {"authz.plans", billing_authz_plans},
    {"quota.lease", billing_quota_lease},
    {"quota.settle", billing_quota_settle},
    {"plans.public", billing_plans_public},
    {"subscriptions.current", billing_subscription_current},
    {"subscriptions.create", billing_subscription_create},
    {"subscriptions.cancel", billing_subscription_cancel},
    {"admin.subscriptions.patch", billing_admin_subscription_patch},
    {"admin.features.create", billing_admin_feature_create},
    {"admin.plans.patch", billing_admin_plan_patch},
};

static int billing_thread_init(struct pool_worker *worker)
{
    int rc = worker_prepare(worker->db);

    if (rc == 0)
        rc =
            db_prepare(worker->db, billing_stmts, sizeof(billing_stmts) / sizeof(billing_stmts[0]));
    if (rc == 0)
        rc = billing_quota_prepare(worker->db);
    if (rc == 0)
        rc = billing_subscribe_prepare(worker->db);
    if (rc == 0)
        rc = billing_catalog_prepare(worker->db);
    return rc;
}

const struct pool_def billing_pool_def = {
    .name = "billing",
    .routes = billing_routes,
    .nroutes = sizeof(billing_routes) / sizeof(billing_routes[0]),
    .thread_init = billing_thread_init,
};
