/* SPDX-License-Identifier: MIT */
/*
 * The route table: every route of the HTTP contract in one place, with its guard and where
 * its work is done, read at a glance. Matching answers 404 and 405 before anything else.
 */
#ifndef MANAS360_ROUTE_H
#define MANAS360_ROUTE_H

#include <stdbool.h>
#include <stddef.h>

#define ROUTE_PARAMS_MAX 2
#define ROUTE_ALLOW_MAX_BYTES 64
#define ROUTE_FEATURES_MAX 2

/*
 * Who may call a route. The steps run in the contract's order and the first failure
 * answers: a token of an open session, the permission, an active subscription, every
 * feature, then a unit of the monthly quota. No handler repeats a check.
 */
enum route_guard {
    ROUTE_PUBLIC,        /* anyone */
    ROUTE_AUTHENTICATED, /* a valid access token of an open session, then the steps below */
};

/* Where a route's work runs. */
enum route_target {
    ROUTE_LOCAL,        /* in the front end itself */
    ROUTE_POOL_AUTH,    /* the auth pool */
    ROUTE_POOL_BILLING, /* the billing pool */
};

enum route_flag {
    ROUTE_NO_STORE = 1 << 0,    /* the response carries a token: Cache-Control: no-store */
    ROUTE_LOGIN = 1 << 1,       /* count the result in the login metrics */
    ROUTE_USER_CACHED = 1 << 2, /* the answer depends on the caller's account only: cached */
    ROUTE_SUBSCRIBED = 1 << 3,  /* needs an active subscription (402) */
    ROUTE_METERED = 1 << 4,     /* a successful call takes a unit of the monthly quota (429) */
};

enum route_local {
    ROUTE_LOCAL_NONE,
    ROUTE_LOCAL_HEALTHZ,
    ROUTE_LOCAL_READYZ,
    ROUTE_LOCAL_METRICS,
    ROUTE_LOCAL_QUOTA_STATUS,      /* GET /api/api/status, from the authorization cache */
    ROUTE_LOCAL_PREMIUM_DASHBOARD, /* the dashboard, from what the front end holds */
};

struct route {
    const char *method;
    const char *pattern; /* segments; ":name" matches one non-empty segment */
    enum route_guard guard;
    const char *permission;                   /* the caller's role must hold it, or NULL */
    const char *features[ROUTE_FEATURES_MAX]; /* the plan must have each; NULL ends the list */
    enum route_target target;
    const char *message; /* the pool's message type, for pool routes */
    enum route_local local;
    unsigned flags;
};

/* One matched path parameter: a name from the pattern, a value from the path. */
struct route_param {
    const char *name;
    const char *value; /* points into the path; not NUL-terminated */
    size_t len;
};

struct route_match {
    const struct route *route; /* NULL when nothing matched */
    struct route_param params[ROUTE_PARAMS_MAX];
    int nparams;
    char allow[ROUTE_ALLOW_MAX_BYTES]; /* methods of the path, when only the method missed */
};

/*
 * Looks `method` and `path` up. Returns 0 with match->route set; M360_ENOTFOUND when no
 * pattern matches the path (404); M360_EINVAL when the path matches with other methods only
 * (405: match->allow lists them, "GET, PATCH"). Thread-safe.
 */
int route_find(const char *method, const char *path, struct route_match *match);

/* The table, for metrics labels: *count receives the number of routes. */
const struct route *route_table(int *count);

/* The index of `route` in the table. */
int route_index(const struct route *route);

#endif
