/* SPDX-License-Identifier: MIT */
/*
 * The audit pool: events that no transaction of their own records (access denials), pushed
 * by the front ends and written in batches. Message "audit.append" {events: [{user_id,
 * event_type, resource_type, resource_id, action, status, details, ip_address, user_agent,
 * at_ms}]}.
 */
#ifndef MANAS360_AUDIT_H
#define MANAS360_AUDIT_H

#include "manas360/pool.h"

extern const struct pool_def audit_pool_def;

#endif
