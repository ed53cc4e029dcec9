/* SPDX-License-Identifier: MIT */
/*
 * Running the server: the front end and the four pools in one process over inproc://
 * endpoints, or any part of them in separate processes over tcp:// or ipc:// endpoints.
 */
#ifndef MANAS360_SERVE_H
#define MANAS360_SERVE_H

#include "manas360/cfg.h"

enum serve_part {
    SERVE_FRONT_END = 1 << 0,
    SERVE_POOL_AUTH = 1 << 1,
    SERVE_POOL_BILLING = 1 << 2,
    SERVE_POOL_AUDIT = 1 << 3,
    SERVE_POOL_NOTIFIER = 1 << 4,
    SERVE_POOLS = SERVE_POOL_AUTH | SERVE_POOL_BILLING | SERVE_POOL_AUDIT | SERVE_POOL_NOTIFIER,
    SERVE_ALL = SERVE_FRONT_END | SERVE_POOLS,
};

/* Parses "auth,billing,audit,notifier" (any non-empty subset). Returns 0 or M360_EINVAL. */
int serve_pools_parse(const char *list, unsigned *parts);

/*
 * Checks that parts running apart can reach each other: a process that does not run every
 * part needs tcp:// or ipc:// endpoints. Writes one line per problem to `problems`, naming
 * the variable. Returns 0 or M360_EINVAL.
 */
int serve_check_endpoints(const struct cfg *cfg, unsigned parts, FILE *problems);

/*
 * Runs `parts` until SIGTERM or SIGINT: refuses a database whose schema is not current,
 * creates the first superadmin where the auth pool runs, starts the pools and then the front
 * end; on the signal stops accepting, finishes in-flight requests, drains the pools. Returns
 * 0 after a clean stop, or a status code when something could not start.
 */
int serve_run(const struct cfg *cfg, unsigned parts);

#endif
