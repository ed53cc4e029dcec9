/* SPDX-License-Identifier: MIT */
/* The route table and its matcher. */
#include "manas360/route.h"

#include <stdio.h>
#include <string.h>

#include "manas360/err.h"

#define ROUTE(method, pattern, guard, target, message, flags)                                      \
    {                                                                                              \
        method, pattern, guard, target, message, ROUTE_LOCAL_NONE, flags                           \
    }
#define ROUTE_HERE(method, pattern, local)                                                         \
    {                                                                                              \
        method, pattern, ROUTE_PUBLIC, ROUTE_LOCAL, NULL, local, 0                                 \
    }

static const struct route route_entries[] = {
    ROUTE_HERE("GET", "/healthz", ROUTE_LOCAL_HEALTHZ),
    ROUTE_HERE("GET", "/readyz", ROUTE_LOCAL_READYZ),
    ROUTE_HERE("GET", "/metrics", ROUTE_LOCAL_METRICS),

    ROUTE("POST", "/api/auth/register", ROUTE_PUBLIC, ROUTE_POOL_AUTH, "auth.register",
          ROUTE_NO_STORE),
    ROUTE("POST", "/api/auth/login", ROUTE_PUBLIC, ROUTE_POOL_AUTH, "auth.login",
          ROUTE_NO_STORE | ROUTE_LOGIN),
    ROUTE("POST", "/api/auth/refresh", ROUTE_PUBLIC, ROUTE_POOL_AUTH, "auth.refresh",
          ROUTE_NO_STORE),
    ROUTE("POST", "/api/auth/logout", ROUTE_AUTHENTICATED, ROUTE_POOL_AUTH, "auth.logout", 0),

    ROUTE("GET", "/api/profile", ROUTE_AUTHENTICATED, ROUTE_POOL_AUTH, "profile.get",
          ROUTE_USER_CACHED | ROUTE_NO_STORE),
    ROUTE("PATCH", "/api/profile", ROUTE_AUTHENTICATED, ROUTE_POOL_AUTH, "profile.patch",
          ROUTE_NO_STORE),
    ROUTE("POST", "/api/profile/password", ROUTE_AUTHENTICATED, ROUTE_POOL_AUTH, "profile.password",
          0),

    ROUTE("GET", "/api/sessions", ROUTE_AUTHENTICATED, ROUTE_POOL_AUTH, "sessions.list",
          ROUTE_NO_STORE),
    ROUTE("DELETE", "/api/sessions/:id", ROUTE_AUTHENTICATED, ROUTE_POOL_AUTH, "sessions.delete",
          0),

    ROUTE("GET", "/api/public/features", ROUTE_PUBLIC, ROUTE_POOL_BILLING, "plans.public", 0),
    ROUTE("GET", "/api/subscriptions/current", ROUTE_AUTHENTICATED, ROUTE_POOL_BILLING,
          "subscriptions.current", 0),
};

#define ROUTE_COUNT ((int)(sizeof(route_entries) / sizeof(route_entries[0])))

/* Matches one pattern against a path, filling params; false when they differ. */
static bool route_pattern_match(const char *pattern, const char *path, struct route_match *match)
{
    const char *p = pattern;
    const char *s = path;

    match->nparams = 0;
    while (*p == '/' && *s == '/') {
        size_t plen = strcspn(p + 1, "/");
        size_t slen = strcspn(s + 1, "/");

        if (p[1] == ':') {
            if (slen == 0 || match->nparams == ROUTE_PARAMS_MAX)
                return false;
            match->params[match->nparams++] = (struct route_param){p + 2, s + 1, slen};
        } else if (plen != slen || strncmp(p + 1, s + 1, plen) != 0) {
            return false;
        }
        p += plen + 1;
        s += slen + 1;
    }
    return *p == '\0' && *s == '\0';
}

/* Appends `method` to the Allow list unless it is there. */
static void route_allow_add(char *allow, const char *method)
{
    size_t used = strlen(allow);

    if (strstr(allow, method) != NULL)
        return;
    snprintf(allow + used, ROUTE_ALLOW_MAX_BYTES - used, "%s%s", used > 0 ? ", " : "", method);
}

int route_find(const char *method, const char *path, struct route_match *match)
{
    struct route_match candidate = {.route = NULL, .nparams = 0, .allow = ""};

    match->route = NULL;
    match->nparams = 0;
    match->allow[0] = '\0';

    for (int i = 0; i < ROUTE_COUNT; i++) {
        if (!route_pattern_match(route_entries[i].pattern, path, &candidate))
            continue;
        if (strcmp(route_entries[i].method, method) == 0) {
            *match = candidate;
            match->route = &route_entries[i];
            match->allow[0] = '\0';
            return 0;
        }
        route_allow_add(match->allow, route_entries[i].method);
    }
    return match->allow[0] != '\0' ? M360_EINVAL : M360_ENOTFOUND;
}

const struct route *route_table(int *count)
{
    *count = ROUTE_COUNT;
    return route_entries;
}

int route_index(const struct route *route)
{
    return (int)(route - route_entries);
}
