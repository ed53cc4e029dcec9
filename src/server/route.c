/* SPDX-License-Identifier: MIT */
/* The route table and its matcher. */
#include "manas360/route.h"

#include <stdio.h>
#include <string.h>

#include "manas360/err.h"

/* A route anyone may call, or any signed-in caller. */
#define ROUTE(method, pattern, guard, target, message, flags)                                      \
    {                                                                                              \
        method, pattern, guard, NULL, {NULL}, target, message, ROUTE_LOCAL_NONE, flags             \
    }
/* A route for callers whose role holds `permission`. */
#define ROUTE_ADMIN(method, pattern, permission, target, message, flags)                           \
    {                                                                                              \
        method, pattern, ROUTE_AUTHENTICATED, permission, {NULL}, target, message,                 \
            ROUTE_LOCAL_NONE, flags                                                                \
    }
/* A metered route for subscribers whose plan has `feature`. */
#define ROUTE_FEATURE(method, pattern, feature, target, message, local, flags)                     \
    {                                                                                              \
        method, pattern, ROUTE_AUTHENTICATED, NULL, {feature, NULL}, target, message, local,       \
            ROUTE_SUBSCRIBED | ROUTE_METERED | (flags)                                             \
    }
#define ROUTE_HERE(method, pattern, guard, local, flags)                                           \
    {                                                                                              \
        method, pattern, guard, NULL, {NULL}, ROUTE_LOCAL, NULL, local, flags                      \
    }

static const struct route route_entries[] = {
    ROUTE_HERE("GET", "/healthz", ROUTE_PUBLIC, ROUTE_LOCAL_HEALTHZ, 0),
    ROUTE_HERE("GET", "/readyz", ROUTE_PUBLIC, ROUTE_LOCAL_READYZ, 0),
    ROUTE_HERE("GET", "/metrics", ROUTE_PUBLIC, ROUTE_LOCAL_METRICS, 0),

    ROUTE("POST", "/api/auth/register", ROUTE_PUBLIC, ROUTE_POOL_AUTH, "auth.register",
          ROUTE_NO_STORE),
    ROUTE("POST", "/api/auth/login", ROUTE_PUBLIC, ROUTE_POOL_AUTH, "auth.login",
          ROUTE_NO_STORE | ROUTE_LOGIN),
    ROUTE("POST", "/api/auth/refresh", ROUTE_PUBLIC, ROUTE_POOL_AUTH, "auth.refresh",
          ROUTE_NO_STORE),
    ROUTE("POST", "/api/auth/logout", ROUTE_AUTHENTICATED, ROUTE_POOL_AUTH, "auth.logout", 0),
    ROUTE("POST", "/api/auth/verify-email", ROUTE_PUBLIC, ROUTE_POOL_AUTH, "auth.verify_email", 0),
    ROUTE("POST", "/api/auth/password/forgot", ROUTE_PUBLIC, ROUTE_POOL_AUTH,
          "auth.password_forgot", 0),
    ROUTE("POST", "/api/auth/password/reset", ROUTE_PUBLIC, ROUTE_POOL_AUTH, "auth.password_reset",
          0),

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
    ROUTE("POST", "/api/subscriptions", ROUTE_AUTHENTICATED, ROUTE_POOL_BILLING,
          "subscriptions.create", 0),
    ROUTE("POST", "/api/subscriptions/cancel", ROUTE_AUTHENTICATED, ROUTE_POOL_BILLING,
          "subscriptions.cancel", 0),
    ROUTE_HERE("GET", "/api/api/status", ROUTE_AUTHENTICATED, ROUTE_LOCAL_QUOTA_STATUS,
               ROUTE_NO_STORE),

    ROUTE_FEATURE("GET", "/api/features/premium-dashboard", "premium_dashboard", ROUTE_LOCAL, NULL,
                  ROUTE_LOCAL_PREMIUM_DASHBOARD, ROUTE_NO_STORE),
    ROUTE_FEATURE("GET", "/api/data/export", "data_export", ROUTE_POOL_AUTH, "data.export",
                  ROUTE_LOCAL_NONE, ROUTE_NO_STORE),

    ROUTE_ADMIN("GET", "/api/admin/users", "manage_users", ROUTE_POOL_AUTH, "admin.users.list",
                ROUTE_NO_STORE),
    ROUTE_ADMIN("DELETE", "/api/admin/users/:userId", "manage_users", ROUTE_POOL_AUTH,
                "admin.users.delete", 0),
    ROUTE_ADMIN("PATCH", "/api/admin/users/:userId/role", "manage_users", ROUTE_POOL_AUTH,
                "admin.users.role", 0),
    ROUTE_ADMIN("GET", "/api/admin/analytics", "view_analytics", ROUTE_POOL_AUTH, "admin.analytics",
                ROUTE_NO_STORE),
    ROUTE_ADMIN("PATCH", "/api/admin/subscriptions/:id", "manage_subscriptions", ROUTE_POOL_BILLING,
                "admin.subscriptions.patch", 0),
    ROUTE_ADMIN("GET", "/api/admin/audit-logs", "view_audit_logs", ROUTE_POOL_AUTH,
                "admin.audit_logs", ROUTE_NO_STORE),

    ROUTE_ADMIN("GET", "/api/admin/settings", "manage_settings", ROUTE_POOL_AUTH,
                "admin.settings.get", ROUTE_NO_STORE),
    ROUTE_ADMIN("PATCH", "/api/admin/settings", "manage_settings", ROUTE_POOL_AUTH,
                "admin.settings.patch", ROUTE_NO_STORE),
    ROUTE_ADMIN("POST", "/api/admin/roles", "manage_roles", ROUTE_POOL_AUTH, "admin.roles.create",
                0),
    ROUTE_ADMIN("POST", "/api/admin/features", "manage_features", ROUTE_POOL_BILLING,
                "admin.features.create", 0),
    ROUTE_ADMIN("PATCH", "/api/admin/plans/:name", "manage_features", ROUTE_POOL_BILLING,
                "admin.plans.patch", 0),
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
