/* SPDX-License-Identifier: MIT */
/* The session cache: open sessions, tombstones of ended ones, and pending activity. */
#include "manas360/session.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "manas360/err.h"

#define SESSION_STRIPES 256
#define SESSION_STRIPE_MAX 1024 /* entries per stripe before the oldest are dropped */
#define SESSION_ACTIVITY_MAX 65536

struct session_slot {
    char session_id[SESSION_ID_BYTES];
    struct session_entry entry;
};

/* One lock guards one stripe's entries; a session always hashes to the same stripe. */
struct session_stripe {
    pthread_mutex_t lock;
    struct session_slot *slots;
    int count;
    int capacity;
};

struct session_cache {
    struct session_stripe stripes[SESSION_STRIPES];

    /* Pending activity, guarded by activity_lock. */
    pthread_mutex_t activity_lock;
    struct session_activity *activity;
    int activity_count;
};

static unsigned session_hash(const char *session_id)
{
    unsigned h = 2166136261u;

    for (const char *p = session_id; *p != '\0'; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    return h;
}

static struct session_stripe *session_stripe_of(struct session_cache *cache, const char *session_id)
{
    return &cache->stripes[session_hash(session_id) % SESSION_STRIPES];
}

/* The slot of `session_id` in a locked stripe, or NULL. */
static struct session_slot *session_slot_find(struct session_stripe *stripe, const char *session_id)
{
    for (int i = 0; i < stripe->count; i++) {
        if (strcmp(stripe->slots[i].session_id, session_id) == 0)
            return &stripe->slots[i];
    }
    return NULL;
}

struct session_cache *session_cache_new(void)
{
    struct session_cache *cache = calloc(1, sizeof(*cache));

    if (cache == NULL)
        return NULL;
    for (int i = 0; i < SESSION_STRIPES; i++)
        pthread_mutex_init(&cache->stripes[i].lock, NULL);
    pthread_mutex_init(&cache->activity_lock, NULL);
    cache->activity = calloc(SESSION_ACTIVITY_MAX, sizeof(*cache->activity));
    if (cache->activity == NULL)
        session_cache_destroy(&cache);
    return cache;
}

void session_cache_destroy(struct session_cache **cache)
{
    if (cache == NULL || *cache == NULL)
        return;
    for (int i = 0; i < SESSION_STRIPES; i++) {
        free((*cache)->stripes[i].slots);
        pthread_mutex_destroy(&(*cache)->stripes[i].lock);
    }
    pthread_mutex_destroy(&(*cache)->activity_lock);
    free((*cache)->activity);
    free(*cache);
    *cache = NULL;
}

int session_cache_lookup(struct session_cache *cache, const char *session_id, int64_t now,
                         struct session_entry *out)
{
    struct session_stripe *stripe = session_stripe_of(cache, session_id);
    struct session_slot *slot;
    int rc = M360_ENOTFOUND;

    pthread_mutex_lock(&stripe->lock);
    slot = session_slot_find(stripe, session_id);
    if (slot != NULL && (slot->entry.ended || now - slot->entry.loaded_at < SESSION_REVALIDATE_S)) {
        *out = slot->entry;
        rc = 0;
    }
    pthread_mutex_unlock(&stripe->lock);
    return rc;
}

/* Makes room in a locked stripe: drops open entries first, oldest loads first. */
static void session_stripe_evict(struct session_stripe *stripe)
{
    int victim = 0;

    for (int i = 1; i < stripe->count; i++) {
        const struct session_entry *a = &stripe->slots[i].entry;
        const struct session_entry *b = &stripe->slots[victim].entry;

        if ((a->ended == b->ended && a->loaded_at < b->loaded_at) || (!a->ended && b->ended))
            victim = i;
    }
    stripe->slots[victim] = stripe->slots[stripe->count - 1];
    stripe->count--;
}

/* The slot for `session_id` in a locked stripe, created when missing; NULL without memory. */
static struct session_slot *session_slot_claim(struct session_stripe *stripe,
                                               const char *session_id)
{
    struct session_slot *slot = session_slot_find(stripe, session_id);

    if (slot != NULL)
        return slot;
    if (stripe->count == SESSION_STRIPE_MAX)
        session_stripe_evict(stripe);
    if (stripe->count == stripe->capacity) {
        int capacity = stripe->capacity == 0 ? 8 : stripe->capacity * 2;
        struct session_slot *grown = realloc(stripe->slots, sizeof(*grown) * (size_t)capacity);

        if (grown == NULL)
            return NULL;
        stripe->slots = grown;
        stripe->capacity = capacity;
    }
    slot = &stripe->slots[stripe->count++];
    memset(slot, 0, sizeof(*slot));
    snprintf(slot->session_id, sizeof(slot->session_id), "%s", session_id);
    return slot;
}

/*
 * XXX: a load that read an account just before it was disabled and stores after the
 * announcement keeps the session open until SESSION_REVALIDATE_S; an ended session is never
 * brought back (tombstones win).
 */
void session_cache_store(struct session_cache *cache, const char *session_id,
                         const struct session_entry *entry)
{
    struct session_stripe *stripe = session_stripe_of(cache, session_id);
    struct session_slot *slot;

    pthread_mutex_lock(&stripe->lock);
    slot = session_slot_claim(stripe, session_id);
    if (slot != NULL && !slot->entry.ended) {
        int64_t touched = slot->entry.touched_at;

        slot->entry = *entry;
        if (touched > slot->entry.touched_at)
            slot->entry.touched_at = touched;
    }
    pthread_mutex_unlock(&stripe->lock);
}

void session_cache_end(struct session_cache *cache, const char *session_id)
{
    struct session_stripe *stripe = session_stripe_of(cache, session_id);
    struct session_slot *slot;

    pthread_mutex_lock(&stripe->lock);
    slot = session_slot_claim(stripe, session_id);
    if (slot != NULL)
        slot->entry.ended = true;
    pthread_mutex_unlock(&stripe->lock);
}

void session_cache_touch(struct session_cache *cache, const char *session_id, int64_t now)
{
    struct session_stripe *stripe = session_stripe_of(cache, session_id);
    struct session_slot *slot;
    bool first_this_second = false;

    pthread_mutex_lock(&stripe->lock);
    slot = session_slot_find(stripe, session_id);
    if (slot != NULL && slot->entry.touched_at < now) {
        slot->entry.touched_at = now;
        first_this_second = true;
    }
    pthread_mutex_unlock(&stripe->lock);

    /* One record per session and second is plenty for an idle timeout counted in minutes. */
    if (!first_this_second)
        return;
    pthread_mutex_lock(&cache->activity_lock);
    if (cache->activity_count < SESSION_ACTIVITY_MAX) {
        struct session_activity *record = &cache->activity[cache->activity_count++];
        snprintf(record->session_id, sizeof(record->session_id), "%s", session_id);
        record->at = now;
    }
    pthread_mutex_unlock(&cache->activity_lock);
}

int session_cache_take_activity(struct session_cache *cache, struct session_activity *out, int max)
{
    int n;

    pthread_mutex_lock(&cache->activity_lock);
    n = cache->activity_count < max ? cache->activity_count : max;
    memcpy(out, cache->activity + cache->activity_count - n, sizeof(*out) * (size_t)n);
    cache->activity_count -= n;
    pthread_mutex_unlock(&cache->activity_lock);
    return n;
}

/* Drops open entries of `user_id` (NULL: of everyone); tombstones always stay. */
static void session_cache_drop_open(struct session_cache *cache, const char *user_id)
{
    for (int i = 0; i < SESSION_STRIPES; i++) {
        struct session_stripe *stripe = &cache->stripes[i];
        int kept = 0;

        pthread_mutex_lock(&stripe->lock);
        for (int j = 0; j < stripe->count; j++) {
            const struct session_entry *entry = &stripe->slots[j].entry;

            if (entry->ended || (user_id != NULL && strcmp(entry->user_id, user_id) != 0))
                stripe->slots[kept++] = stripe->slots[j];
        }
        stripe->count = kept;
        pthread_mutex_unlock(&stripe->lock);
    }
}

void session_cache_forget_user(struct session_cache *cache, const char *user_id)
{
    session_cache_drop_open(cache, user_id);
}

void session_cache_flush(struct session_cache *cache)
{
    session_cache_drop_open(cache, NULL);
}

int session_cache_size(struct session_cache *cache)
{
    int n = 0;

    for (int i = 0; i < SESSION_STRIPES; i++) {
        pthread_mutex_lock(&cache->stripes[i].lock);
        n += cache->stripes[i].count;
        pthread_mutex_unlock(&cache->stripes[i].lock);
    }
    return n;
}
