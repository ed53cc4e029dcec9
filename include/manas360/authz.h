/* SPDX-License-Identifier: MIT */
/*
 * The front end's authorization cache: for each user, what decides the access steps after
 * authentication (role and permissions, the subscription, its plan's features and monthly
 * quota), and the catalogue of active plans for upgrade advice. A miss is loaded once from
 * the billing pool; every change is announced by the database (see user_cache.h) and drops
 * the entry, so a decision costs a hash lookup. `ends_at` is compared with the clock on every
 * decision, so an expiry needs no announcement.
 */
#ifndef MANAS360_AUTHZ_H
#define MANAS360_AUTHZ_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "manas360/route.h"

#define AUTHZ_NAME_BYTES 65   /* role, plan, permission and feature names: 64 characters */
#define AUTHZ_STATUS_BYTES 16 /* "active", "cancelled", "expired", "pending", "none" */
#define AUTHZ_TTL_S 60        /* an entry older than this is loaded again */

/* Which step of the access decision refused, if any. */
enum authz_step {
    AUTHZ_ALLOWED,
    AUTHZ_DENIED_PERMISSION,   /* 403 Forbidden */
    AUTHZ_DENIED_SUBSCRIPTION, /* 402 SubscriptionInactive */
    AUTHZ_DENIED_FEATURE,      /* 403 FeatureNotAvailable */
};

/* The decision for one request, with what its answer needs. */
struct authz_decision {
    enum authz_step step;
    bool has_plan;                   /* the user has (or had) a subscription */
    char plan[AUTHZ_NAME_BYTES];     /* its plan, when has_plan */
    char status[AUTHZ_STATUS_BYTES]; /* "expired" once ends_at passed; "none" without one */
    bool subscribed;                 /* active now */
    int64_t ends_at;                 /* Unix seconds; 0 when it never ends */
    int64_t quota_limit;             /* the plan's monthly requests; 0 when not subscribed */
    const char *missing[ROUTE_FEATURES_MAX]; /* the route's features the plan lacks */
    int nmissing;
    /* Only for a route answered from it (the premium dashboard), else NULL: a malloc'd
     * "plan":"Pro","features":[...] as JSON object members, plan null and no features when
     * not subscribed. Freed by authz_decision_release(). */
    char *plan_json;
};

/* Frees what a decision owns; safe on a zeroed or already released one. */
void authz_decision_release(struct authz_decision *decision);

struct authz_cache;

struct authz_cache *authz_cache_new(void);

void authz_cache_destroy(struct authz_cache **cache);

/* Moves on with every drop; read before a load and hand to the store, as in user_cache.h. */
uint64_t authz_generation(struct authz_cache *cache);

/*
 * Decides steps 2 to 4 of `route` for `user_id` at `now` (Unix seconds). Returns 0 with *out
 * filled, or M360_ENOTFOUND when the user is not cached (load and store, then ask again).
 * Thread-safe.
 */
int authz_decide(struct authz_cache *cache, const char *user_id, const struct route *route,
                 int64_t now, struct authz_decision *out);

/* Decides as authz_decide() from an "authz.load" answer that is not cached. Returns 0,
 * M360_ENOTFOUND when the answer found no account (it went away), or M360_EINVAL when it is
 * malformed. */
int authz_decide_loaded(const json_t *loaded, const char *user_id, const struct route *route,
                        int64_t now, struct authz_decision *out);

/*
 * Stores what the billing pool's "authz.load" answered for `user_id` (borrowed), unless the
 * generation moved on. Returns 0, M360_ENOTFOUND when it found no account, M360_EINVAL when
 * the answer is malformed, or M360_ENOMEM.
 */
int authz_store(struct authz_cache *cache, const char *user_id, const json_t *loaded, int64_t now,
                uint64_t generation);

/*
 * The active plan of lowest tier having every feature in `features`, into `out`. Returns 0,
 * M360_ENOTFOUND when no active plan has them all, or M360_EUNAVAILABLE when the catalogue
 * is not cached (load it and hand it to authz_plans_store). Thread-safe.
 */
int authz_recommend(struct authz_cache *cache, const char *const *features, int count,
                    char out[AUTHZ_NAME_BYTES]);

/* Recommends as authz_recommend() from an "authz.plans" answer that is not cached. */
int authz_recommend_loaded(const json_t *loaded, const char *const *features, int count,
                           char out[AUTHZ_NAME_BYTES]);

/* Stores the billing pool's "authz.plans" answer (borrowed), unless the generation moved on. */
int authz_plans_store(struct authz_cache *cache, const json_t *loaded, uint64_t generation);

/* Drops one user, or every user and the catalogue when `user_id` is "*". Thread-safe. */
void authz_drop(struct authz_cache *cache, const char *user_id);

#endif
