/* SPDX-License-Identifier: MIT */
/* What the billing pool's files share: their handlers and the plan object. */
#ifndef MANAS360_BILLING_INTERNAL_H
#define MANAS360_BILLING_INTERNAL_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

#include "manas360/db.h"
#include "manas360/input.h"
#include "manas360/pool.h"
#include "row.h"
#include "worker.h"

#define BILLING_LOG_MODULE "billing"
#define BILLING_NAME_MAX_CHARS 64 /* plan, feature and category names */

/*
 * A plan's columns in the order billing_plan_json() reads them, then is_active, for a query
 * over subscription_plans p that groups by p.id. Feature names come as one JSON array sorted
 * in byte order, so the list is stable whatever the database's collation.
 */
#define BILLING_SQL_PLAN_COLUMNS                                                                   \
    "p.name, p.description, p.tier, p.price_monthly_paise, p.billing_period_days,"                 \
    " p.max_api_requests_per_month, p.trial_period_days, p.is_featured,"                           \
    " coalesce(json_agg(f.name ORDER BY f.name COLLATE \"C\")"                                     \
    "            FILTER (WHERE f.id IS NOT NULL), '[]')::text,"                                    \
    " p.is_active"
#define BILLING_SQL_PLAN_JOINS                                                                     \
    " LEFT JOIN plan_features pf ON pf.plan_id = p.id"                                             \
    " LEFT JOIN features f ON f.id = pf.feature_id"
#define BILLING_PLAN_COL_ACTIVE 9

/* One plan row as the contract's plan object, without isActive; NULL when out of memory. */
json_t *billing_plan_json(const PGresult *res, int row);

/* ---- billing_subscribe.c ------------------------------------------------------------- */

/* Prepares the subscription statements, billing_user_lock and billing_role_follow among them. */
int billing_subscribe_prepare(struct db *db);

/* Moves the owner's role after their subscriptions changed (only between `user` and
 * `subscriber`); adds {from, to} as `role` to `details` when it moved. */
int billing_role_follow(struct db *db, const char *user_id, json_t *details);

int billing_subscription_create(struct pool_worker *worker, const struct pool_request *req,
                                struct pool_reply *reply);
int billing_subscription_cancel(struct pool_worker *worker, const struct pool_request *req,
                                struct pool_reply *reply);
int billing_admin_subscription_patch(struct pool_worker *worker, const struct pool_request *req,
                                     struct pool_reply *reply);

/* ---- billing_catalog.c --------------------------------------------------------------- */

int billing_catalog_prepare(struct db *db);

int billing_admin_feature_create(struct pool_worker *worker, const struct pool_request *req,
                                 struct pool_reply *reply);
int billing_admin_plan_patch(struct pool_worker *worker, const struct pool_request *req,
                             struct pool_reply *reply);

#endif
