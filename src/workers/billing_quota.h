/* SPDX-License-Identifier: MIT */
/*
 * The billing pool's side of the front end's access decisions: what decides a user's
 * requests (role, permissions, subscription, plan features, quota limit), the active plan
 * catalogue for upgrade advice, and the quota leases counted in quota_usage.
 *
 * Message types, all internal to the server:
 * - "authz.load" {userId} -> {found, role, level, permissions: [name], subscription: null |
 *   {plan, status, endsAt: Unix seconds | null, limit, features: [name]}}; the subscription
 *   is the active one, else the latest.
 * - "authz.plans" {} -> {plans: [{name, tier, features: [name]}]}, active plans by tier.
 * - "quota.lease" {userId, period: "YYYY-MM-01", consumed, returned, wanted, limit} ->
 *   {granted, used, leased}: settles a block and leases up to `wanted` more units.
 * - "quota.settle" {settlements: [{userId, period, consumed, returned}]} -> {success}.
 */
#ifndef MANAS360_WORKERS_BILLING_QUOTA_H
#define MANAS360_WORKERS_BILLING_QUOTA_H

#include "manas360/db.h"
#include "manas360/pool.h"

int billing_quota_prepare(struct db *db);

int billing_authz_load(struct pool_worker *worker, const struct pool_request *req,
                       struct pool_reply *reply);
int billing_authz_plans(struct pool_worker *worker, const struct pool_request *req,
                        struct pool_reply *reply);
int billing_quota_lease(struct pool_worker *worker, const struct pool_request *req,
                        struct pool_reply *reply);
int billing_quota_settle(struct pool_worker *worker, const struct pool_request *req,
                         struct pool_reply *reply);

#endif
