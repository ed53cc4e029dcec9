/* SPDX-License-Identifier: MIT */
/* The audit pool: batched audit rows and partition retention. */
#include "manas360/audit.h"

/* XXX: the audit pool runs, drains and answers ping only;
 * batched audit rows and partition retention are not built yet. */
const struct pool_def audit_pool_def = {"audit", NULL, 0, NULL};
