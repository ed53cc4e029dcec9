/* SPDX-License-Identifier: MIT */
/*
 * The front end's session cache: whether a session is open, without a database round trip
 * per request. Sessions ended anywhere are announced on the channel SESSION_CHANNEL (see
 * watch.h) and leave a tombstone here, so a lookup racing the end can never bring an ended
 * session back. Activity is recorded in memory and written in batches.
 */
#ifndef MANAS360_SESSION_H
#define MANAS360_SESSION_H

#include <stdbool.h>
#include <stdint.h>

#include "manas360/auth.h"
#include "manas360/cfg.h"

#define SESSION_CHANNEL AUTH_SESSION_CHANNEL /* the auth pool announces ended sessions */
#define SESSION_ID_BYTES 37
#define SESSION_REVALIDATE_S 60 /* an entry older than this is loaded again */

struct session_entry {
    char user_id[SESSION_ID_BYTES];
    bool ended;
    int64_t last_activity; /* Unix seconds, as last loaded */
    int64_t expires_at;    /* Unix seconds */
    int64_t loaded_at;     /* when this process loaded it */
    int64_t touched_at;    /* the last request this process saw for it */
};

/* One pending activity record. */
struct session_activity {
    char session_id[SESSION_ID_BYTES];
    int64_t at;
};

struct session_cache;

/* An empty cache. Returns NULL when out of memory. */
struct session_cache *session_cache_new(void);

void session_cache_destroy(struct session_cache **cache);

/*
 * Copies the entry of `session_id` into *out. Returns 0, or M360_ENOTFOUND when there is none
 * or it is older than SESSION_REVALIDATE_S at `now` (load it and store it). Tombstones are
 * always found. Thread-safe.
 */
int session_cache_lookup(struct session_cache *cache, const char *session_id, int64_t now,
                         struct session_entry *out);

/* Stores a freshly loaded entry, unless the session already has a tombstone. Thread-safe. */
void session_cache_store(struct session_cache *cache, const char *session_id,
                         const struct session_entry *entry);

/* Marks the session ended for good (a tombstone). Thread-safe. */
void session_cache_end(struct session_cache *cache, const char *session_id);

/* Records a request of the session at `now`, for the next activity batch. Thread-safe. */
void session_cache_touch(struct session_cache *cache, const char *session_id, int64_t now);

/* Moves up to `max` pending activity records into `out`; returns how many. Thread-safe. */
int session_cache_take_activity(struct session_cache *cache, struct session_activity *out, int max);

/*
 * Drops the open entries of one user, to be loaded again: the account changed, and may have
 * been disabled. Tombstones stay. Thread-safe.
 */
void session_cache_forget_user(struct session_cache *cache, const char *user_id);

/* Drops every open entry (tombstones stay): the notifications may have been missed. */
void session_cache_flush(struct session_cache *cache);

/* How many entries are held (open and ended). */
int session_cache_size(struct session_cache *cache);

#endif
