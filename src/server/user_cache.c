/* SPDX-License-Identifier: MIT */
/* The account cache: rendered profiles by user id, dropped on announcement. */
#include "manas360/user_cache.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "manas360/err.h"

#define USER_CACHE_SLOTS 4096 /* direct-mapped: a colliding user replaces the older one */
#define USER_CACHE_ID_BYTES 37

struct user_cache_slot {
    char user_id[USER_CACHE_ID_BYTES];
    char *body; /* NULL when the slot is empty */
    int64_t loaded_at;
};

struct user_cache {
    pthread_rwlock_t lock; /* guards slots; drops and stores take it for writing */
    struct user_cache_slot slots[USER_CACHE_SLOTS];
    atomic_uint_fast64_t generation;
};

static unsigned user_cache_hash(const char *user_id)
{
    unsigned h = 2166136261u;

    for (const char *p = user_id; *p != '\0'; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    return h % USER_CACHE_SLOTS;
}

struct user_cache *user_cache_new(void)
{
    struct user_cache *cache = calloc(1, sizeof(*cache));

    if (cache == NULL)
        return NULL;
    pthread_rwlock_init(&cache->lock, NULL);
    atomic_init(&cache->generation, 0);
    return cache;
}

void user_cache_destroy(struct user_cache **cache)
{
    if (cache == NULL || *cache == NULL)
        return;
    for (int i = 0; i < USER_CACHE_SLOTS; i++)
        free((*cache)->slots[i].body);
    pthread_rwlock_destroy(&(*cache)->lock);
    free(*cache);
    *cache = NULL;
}

uint64_t user_cache_generation(struct user_cache *cache)
{
    return atomic_load(&cache->generation);
}

int user_cache_lookup(struct user_cache *cache, const char *user_id, int64_t now, char **out)
{
    struct user_cache_slot *slot = &cache->slots[user_cache_hash(user_id)];
    int rc = M360_ENOTFOUND;

    pthread_rwlock_rdlock(&cache->lock);
    if (slot->body != NULL && strcmp(slot->user_id, user_id) == 0 &&
        now - slot->loaded_at < USER_CACHE_TTL_S) {
        *out = strdup(slot->body);
        rc = *out != NULL ? 0 : M360_ENOMEM;
    }
    pthread_rwlock_unlock(&cache->lock);
    return rc;
}

void user_cache_store(struct user_cache *cache, const char *user_id, const char *body, int64_t now,
                      uint64_t generation)
{
    struct user_cache_slot *slot = &cache->slots[user_cache_hash(user_id)];
    char *copy = strdup(body);

    if (copy == NULL || strlen(user_id) >= USER_CACHE_ID_BYTES) {
        free(copy);
        return;
    }
    pthread_rwlock_wrlock(&cache->lock);
    if (atomic_load(&cache->generation) == generation) {
        free(slot->body);
        memcpy(slot->user_id, user_id, strlen(user_id) + 1);
        slot->body = copy;
        slot->loaded_at = now;
        copy = NULL;
    }
    pthread_rwlock_unlock(&cache->lock);
    free(copy);
}

void user_cache_drop(struct user_cache *cache, const char *user_id)
{
    bool all = strcmp(user_id, "*") == 0;

    int first = all ? 0 : (int)user_cache_hash(user_id);
    int last = all ? USER_CACHE_SLOTS - 1 : first;

    pthread_rwlock_wrlock(&cache->lock);
    atomic_fetch_add(&cache->generation, 1);
    for (int i = first; i <= last; i++) {
        struct user_cache_slot *slot = &cache->slots[i];

        if (slot->body != NULL && (all || strcmp(slot->user_id, user_id) == 0)) {
            free(slot->body);
            slot->body = NULL;
        }
    }
    pthread_rwlock_unlock(&cache->lock);
}
