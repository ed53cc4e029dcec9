/* SPDX-License-Identifier: MIT */
/* The audit pool: batched audit rows and partition retention. */
#ifndef MANAS360_AUDIT_H
#define MANAS360_AUDIT_H

#include "manas360/pool.h"

extern const struct pool_def audit_pool_def;

#endif
