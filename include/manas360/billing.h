/* SPDX-License-Identifier: MIT */
/* The billing pool: the plan catalogue and subscriptions. */
#ifndef MANAS360_BILLING_H
#define MANAS360_BILLING_H

#include "manas360/pool.h"

/*
 * The billing pool's definition for pool_new(). Its message types: "plans.public" (the
 * active plans, for GET /api/public/features) and "subscriptions.current" (ctx.user_id's
 * subscription, for GET /api/subscriptions/current). Read-only, shared by every thread.
 */
extern const struct pool_def billing_pool_def;

struct billing_sweep;

/*
 * Starts the subscription sweep, with its own connection to cfg->database_url: every
 * SUBSCRIPTION_SWEEP_INTERVAL it expires active subscriptions past their end (the role
 * returns from `subscriber` to `user`, the owner is emailed, an audit row is written) and
 * emails owners whose subscription ends within three days, once per end. `cfg` is borrowed
 * and must outlive the sweep. Returns NULL when the thread cannot start (logged).
 */
struct billing_sweep *billing_sweep_new(const struct cfg *cfg);

/* Stops the thread after the subscription in hand, frees the sweep, sets *sweep to NULL. */
void billing_sweep_destroy(struct billing_sweep **sweep);

#endif
