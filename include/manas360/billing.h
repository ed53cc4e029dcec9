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

#endif
