/* SPDX-License-Identifier: MIT */
/*
 * Front-end counters in the Prometheus text format: requests by route and status, request
 * latency, pool queue depth and reply latency, logins by result, access denials by reason,
 * active sessions.
 */
#ifndef MANAS360_METRICS_H
#define MANAS360_METRICS_H

#include <stdint.h>

#include "manas360/pool.h"

/* Counts one answered request; route_index -1 for a path no route matched. Thread-safe. */
void metrics_request(int route_index, int status, int64_t latency_us);

/* Counts one login by its HTTP status (200 success, 429 throttled, else failure). */
void metrics_login(int status);

/* Counts one access denial by its audit reason ("permission", "quota", ...). Thread-safe. */
void metrics_denial(const char *reason);

/* A pool's counters and its name, for rendering. */
struct metrics_pool {
    const char *name;
    struct pool_stats_view stats;
};

/*
 * Renders every metric into a malloc'd string (*out, caller frees). `active_sessions` below
 * zero is left out (the auth pool did not answer). Returns 0 or M360_ENOMEM.
 */
int metrics_render(const struct metrics_pool *pools, int npools, int64_t active_sessions,
                   int64_t cached_sessions, char **out);

#endif
