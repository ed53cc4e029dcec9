/* SPDX-License-Identifier: MIT */
/* The audit pool: it answers ping for /readyz; the audit writer (audit_writer.c) does the
 * work of the audit part. */
#include "manas360/audit.h"

const struct pool_def audit_pool_def = {"audit", NULL, 0, NULL};
