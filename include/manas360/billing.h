/* SPDX-License-Identifier: MIT */
/* The billing pool: plans, subscriptions, payments, quota leases. */
#ifndef MANAS360_BILLING_H
#define MANAS360_BILLING_H

#include "manas360/pool.h"

extern const struct pool_def billing_pool_def;

#endif
