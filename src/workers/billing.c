/* SPDX-License-Identifier: MIT */
/* The billing pool: plans, subscriptions, payments, quota leases. */
#include "manas360/billing.h"

/* XXX: the billing pool runs, drains and answers ping only;
 * plans, subscriptions, payments, quota leases are not built yet. */
const struct pool_def billing_pool_def = {"billing", NULL, 0, NULL};
