/* SPDX-License-Identifier: MIT */
/* The authorization cache: per-user decision facts and the plan catalogue. */
#include "manas360/authz.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "manas360/err.h"

#define AUTHZ_SLOTS 4096 /* direct-mapped: a colliding user replaces the older one */
#define AUTHZ_ID_BYTES 37
#define AUTHZ_PLANS_MAX 64

/* A set of names, as loaded. */
struct authz_names {
    char (*names)[AUTHZ_NAME_BYTES];
    int count;
};

struct authz_entry {
    char user_id[AUTHZ_ID_BYTES]; /* "" when the slot is empty */
    int64_t loaded_at;
    struct authz_names permissions;
    bool has_plan;
    char plan[AUTHZ_NAME_BYTES];
    char status[AUTHZ_STATUS_BYTES]; /* as stored */
    int64_t ends_at;
    int64_t quota_limit;
    struct authz_names features;
    char *plan_json; /* "plan":...,"features":[...] rendered once, for the dashboard */
};

struct authz_plan {
    char name[AUTHZ_NAME_BYTES];
    struct authz_names features;
};

struct authz_cache {
    pthread_rwlock_t lock; /* guards everything below; drops and stores take it for writing */
    struct authz_entry slots[AUTHZ_SLOTS];
    struct authz_plan plans[AUTHZ_PLANS_MAX]; /* by tier */
    int nplans;
    bool plans_loaded;
    atomic_uint_fast64_t generation;
};

static unsigned authz_hash(const char *user_id)
{
    unsigned h = 2166136261u;

    for (const char *p = user_id; *p != '\0'; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    return h % AUTHZ_SLOTS;
}

static void authz_names_clear(struct authz_names *set)
{
    free(set->names);
    set->names = NULL;
    set->count = 0;
}

static void authz_plans_free(struct authz_plan *plans, int count)
{
    for (int i = 0; i < count; i++)
        authz_names_clear(&plans[i].features);
}

static bool authz_names_has(const struct authz_names *set, const char *name)
{
    for (int i = 0; i < set->count; i++) {
        if (strcmp(set->names[i], name) == 0)
            return true;
    }
    return false;
}

/* Reads a JSON array of names; M360_EINVAL when it is not one, or a name is too long. */
static int authz_names_read(const json_t *array, struct authz_names *out)
{
    size_t i;
    json_t *item;

    out->names = NULL;
    out->count = 0;
    if (!json_is_array(array))
        return M360_EINVAL;
    if (json_array_size(array) == 0)
        return 0;
    out->names = calloc(json_array_size(array), sizeof(*out->names));
    if (out->names == NULL)
        return M360_ENOMEM;
    json_array_foreach(array, i, item)
    {
        const char *name = json_string_value(item);

        if (name == NULL || strlen(name) >= AUTHZ_NAME_BYTES) {
            authz_names_clear(out);
            return M360_EINVAL;
        }
        memcpy(out->names[out->count++], name, strlen(name) + 1);
    }
    return 0;
}

static void authz_entry_clear(struct authz_entry *entry)
{
    authz_names_clear(&entry->permissions);
    authz_names_clear(&entry->features);
    free(entry->plan_json);
    memset(entry, 0, sizeof(*entry));
}

struct authz_cache *authz_cache_new(void)
{
    struct authz_cache *cache = calloc(1, sizeof(*cache));

    if (cache == NULL)
        return NULL;
    pthread_rwlock_init(&cache->lock, NULL);
    atomic_init(&cache->generation, 0);
    return cache;
}

void authz_cache_destroy(struct authz_cache **cache)
{
    if (cache == NULL || *cache == NULL)
        return;
    for (int i = 0; i < AUTHZ_SLOTS; i++)
        authz_entry_clear(&(*cache)->slots[i]);
    authz_plans_free((*cache)->plans, (*cache)->nplans);
    pthread_rwlock_destroy(&(*cache)->lock);
    free(*cache);
    *cache = NULL;
}

uint64_t authz_generation(struct authz_cache *cache)
{
    return atomic_load(&cache->generation);
}

/* Steps 2 to 4 against one entry; the caller holds the lock. */
static void authz_entry_decide(const struct authz_entry *entry, const struct route *route,
                               int64_t now, struct authz_decision *out)
{
    bool ended = entry->ends_at != 0 && entry->ends_at <= now;

    memset(out, 0, sizeof(*out));
    out->has_plan = entry->has_plan;
    snprintf(out->plan, sizeof(out->plan), "%s", entry->plan);
    snprintf(out->status, sizeof(out->status), "%s",
             !entry->has_plan ? "none" : (ended ? "expired" : entry->status));
    out->subscribed = entry->has_plan && strcmp(out->status, "active") == 0;
    out->ends_at = entry->ends_at;
    out->quota_limit = out->subscribed ? entry->quota_limit : 0;
    /* A failed copy leaves NULL, which the dashboard answers with a 500. */
    if (route->local == ROUTE_LOCAL_PREMIUM_DASHBOARD)
        out->plan_json =
            strdup(out->subscribed && entry->plan_json != NULL ? entry->plan_json
                                                               : "\"plan\":null,\"features\":[]");

    for (int i = 0; i < ROUTE_FEATURES_MAX && route->features[i] != NULL; i++) {
        if (!out->subscribed || !authz_names_has(&entry->features, route->features[i]))
            out->missing[out->nmissing++] = route->features[i];
    }

    if (route->permission != NULL && !authz_names_has(&entry->permissions, route->permission))
        out->step = AUTHZ_DENIED_PERMISSION;
    else if ((route->flags & ROUTE_SUBSCRIBED) && !out->subscribed)
        out->step = AUTHZ_DENIED_SUBSCRIPTION;
    else if (out->nmissing > 0)
        out->step = AUTHZ_DENIED_FEATURE;
    else
        out->step = AUTHZ_ALLOWED;
}

void authz_decision_release(struct authz_decision *decision)
{
    free(decision->plan_json);
    decision->plan_json = NULL;
}

int authz_decide(struct authz_cache *cache, const char *user_id, const struct route *route,
                 int64_t now, struct authz_decision *out)
{
    const struct authz_entry *entry = &cache->slots[authz_hash(user_id)];
    int rc = M360_ENOTFOUND;

    pthread_rwlock_rdlock(&cache->lock);
    if (strcmp(entry->user_id, user_id) == 0 && now - entry->loaded_at < AUTHZ_TTL_S) {
        authz_entry_decide(entry, route, now, out);
        rc = 0;
    }
    pthread_rwlock_unlock(&cache->lock);
    return rc;
}

/* Renders the plan's name and features once, as members of a JSON object, so that answers
 * made of them need no JSON work per request. */
static int authz_plan_render(struct authz_entry *entry, const json_t *features)
{
    json_t *members = json_pack("{s:s, s:O}", "plan", entry->plan, "features", features);
    char *text = members != NULL ? json_dumps(members, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    size_t len = text != NULL ? strlen(text) : 0;
    int rc = M360_ENOMEM;

    /* Without the braces: {"plan":..,"features":[..]} becomes "plan":..,"features":[..]. */
    if (len >= 2) {
        entry->plan_json = strndup(text + 1, len - 2);
        rc = entry->plan_json != NULL ? 0 : M360_ENOMEM;
    }
    free(text);
    json_decref(members);
    return rc;
}

/* Fills a fresh entry from the pool's answer; M360_ENOTFOUND when it found no account,
 * M360_EINVAL when it is malformed. */
static int authz_entry_read(struct authz_entry *entry, const char *user_id, const json_t *loaded,
                            int64_t now)
{
    const json_t *sub = json_object_get(loaded, "subscription");
    const char *plan = json_string_value(json_object_get(sub, "plan"));
    const char *status = json_string_value(json_object_get(sub, "status"));
    int rc;

    memset(entry, 0, sizeof(*entry));
    if (strlen(user_id) >= AUTHZ_ID_BYTES)
        return M360_EINVAL;
    if (!json_is_true(json_object_get(loaded, "found")))
        return M360_ENOTFOUND;
    memcpy(entry->user_id, user_id, strlen(user_id) + 1);
    entry->loaded_at = now;
    rc = authz_names_read(json_object_get(loaded, "permissions"), &entry->permissions);
    if (rc != 0 || json_is_null(sub) || sub == NULL)
        return rc;

    if (plan == NULL || status == NULL || strlen(plan) >= AUTHZ_NAME_BYTES ||
        strlen(status) >= AUTHZ_STATUS_BYTES)
        return M360_EINVAL;
    entry->has_plan = true;
    memcpy(entry->plan, plan, strlen(plan) + 1);
    memcpy(entry->status, status, strlen(status) + 1);
    entry->ends_at = json_integer_value(json_object_get(sub, "endsAt"));
    entry->quota_limit = json_integer_value(json_object_get(sub, "limit"));
    rc = authz_names_read(json_object_get(sub, "features"), &entry->features);
    if (rc == 0)
        rc = authz_plan_render(entry, json_object_get(sub, "features"));
    return rc;
}

int authz_store(struct authz_cache *cache, const char *user_id, const json_t *loaded, int64_t now,
                uint64_t generation)
{
    struct authz_entry fresh;
    struct authz_entry *slot = &cache->slots[authz_hash(user_id)];
    int rc = authz_entry_read(&fresh, user_id, loaded, now);

    if (rc != 0) {
        authz_entry_clear(&fresh);
        return rc;
    }

    pthread_rwlock_wrlock(&cache->lock);
    if (atomic_load(&cache->generation) == generation) {
        authz_entry_clear(slot);
        *slot = fresh;
        memset(&fresh, 0, sizeof(fresh));
    }
    pthread_rwlock_unlock(&cache->lock);
    authz_entry_clear(&fresh);
    return 0;
}

int authz_decide_loaded(const json_t *loaded, const char *user_id, const struct route *route,
                        int64_t now, struct authz_decision *out)
{
    struct authz_entry entry;
    int rc = authz_entry_read(&entry, user_id, loaded, now);

    if (rc == 0)
        authz_entry_decide(&entry, route, now, out);
    authz_entry_clear(&entry);
    return rc;
}

/* The first of `plans` (by tier) having every feature; the caller holds what it needs. */
static int authz_plans_recommend(const struct authz_plan *plans, int nplans,
                                 const char *const *features, int count, char out[AUTHZ_NAME_BYTES])
{
    for (int p = 0; p < nplans; p++) {
        bool all = true;

        for (int f = 0; f < count && all; f++)
            all = authz_names_has(&plans[p].features, features[f]);
        if (all) {
            memcpy(out, plans[p].name, AUTHZ_NAME_BYTES);
            return 0;
        }
    }
    return M360_ENOTFOUND;
}

int authz_recommend(struct authz_cache *cache, const char *const *features, int count,
                    char out[AUTHZ_NAME_BYTES])
{
    int rc = M360_EUNAVAILABLE;

    pthread_rwlock_rdlock(&cache->lock);
    if (cache->plans_loaded)
        rc = authz_plans_recommend(cache->plans, cache->nplans, features, count, out);
    pthread_rwlock_unlock(&cache->lock);
    return rc;
}

/* Reads an "authz.plans" answer into `plans`; *count receives how many were read. */
static int authz_plans_read(const json_t *loaded, struct authz_plan *plans, int *count)
{
    const json_t *array = json_object_get(loaded, "plans");
    int rc = json_is_array(array) ? 0 : M360_EINVAL;

    *count = 0;
    /* XXX: only the first AUTHZ_PLANS_MAX active plans by tier are considered for advice. */
    for (size_t i = 0; rc == 0 && i < json_array_size(array) && *count < AUTHZ_PLANS_MAX; i++) {
        const json_t *plan = json_array_get(array, i);
        const char *name = json_string_value(json_object_get(plan, "name"));

        if (name == NULL || strlen(name) >= AUTHZ_NAME_BYTES)
            return M360_EINVAL;
        memcpy(plans[*count].name, name, strlen(name) + 1);
        rc = authz_names_read(json_object_get(plan, "features"), &plans[*count].features);
        if (rc == 0)
            (*count)++;
    }
    return rc;
}

int authz_recommend_loaded(const json_t *loaded, const char *const *features, int count,
                           char out[AUTHZ_NAME_BYTES])
{
    struct authz_plan plans[AUTHZ_PLANS_MAX];
    int nplans = 0;
    int rc = authz_plans_read(loaded, plans, &nplans);

    if (rc == 0)
        rc = authz_plans_recommend(plans, nplans, features, count, out);
    authz_plans_free(plans, nplans);
    return rc;
}

int authz_plans_store(struct authz_cache *cache, const json_t *loaded, uint64_t generation)
{
    struct authz_plan plans[AUTHZ_PLANS_MAX];
    int count = 0;
    int rc = authz_plans_read(loaded, plans, &count);

    pthread_rwlock_wrlock(&cache->lock);
    if (rc == 0 && atomic_load(&cache->generation) == generation) {
        authz_plans_free(cache->plans, cache->nplans);
        memcpy(cache->plans, plans, sizeof(plans[0]) * (size_t)count);
        cache->nplans = count;
        cache->plans_loaded = true;
        count = 0;
    }
    pthread_rwlock_unlock(&cache->lock);
    authz_plans_free(plans, count);
    return rc;
}

void authz_drop(struct authz_cache *cache, const char *user_id)
{
    bool all = strcmp(user_id, "*") == 0;
    int first = all ? 0 : (int)authz_hash(user_id);
    int last = all ? AUTHZ_SLOTS - 1 : first;

    pthread_rwlock_wrlock(&cache->lock);
    atomic_fetch_add(&cache->generation, 1);
    for (int i = first; i <= last; i++) {
        if (cache->slots[i].user_id[0] != '\0' &&
            (all || strcmp(cache->slots[i].user_id, user_id) == 0))
            authz_entry_clear(&cache->slots[i]);
    }
    if (all) {
        authz_plans_free(cache->plans, cache->nplans);
        cache->nplans = 0;
        cache->plans_loaded = false;
    }
    pthread_rwlock_unlock(&cache->lock);
}
