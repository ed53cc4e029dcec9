/* SPDX-License-Identifier: MIT */
/*
 * The front end's account cache: the profile of each user as the auth pool last rendered it,
 * so GET /api/profile costs no database round trip. Every change to an account, its
 * subscription, or the plans and roles it refers to is announced on USER_CACHE_CHANNEL by
 * the database itself (triggers), and the entry is dropped.
 */
#ifndef MANAS360_USER_CACHE_H
#define MANAS360_USER_CACHE_H

#include <stdint.h>

#define USER_CACHE_CHANNEL "manas360_user"
#define USER_CACHE_TTL_S 60 /* an entry older than this is loaded again, whatever was heard */

struct user_cache;

/* An empty cache. Returns NULL when out of memory. */
struct user_cache *user_cache_new(void);

void user_cache_destroy(struct user_cache **cache);

/*
 * The cache's generation: it moves on with every drop. Read it before loading an entry and
 * hand it to user_cache_store(), which then refuses an entry a drop may have overtaken.
 */
uint64_t user_cache_generation(struct user_cache *cache);

/*
 * Copies the profile body of `user_id` into a malloc'd string (*out, caller frees). Returns
 * 0, or M360_ENOTFOUND when absent or older than USER_CACHE_TTL_S at `now`. Thread-safe.
 */
int user_cache_lookup(struct user_cache *cache, const char *user_id, int64_t now, char **out);

/* Stores a copy of `body` unless the generation moved on since `generation` was read. */
void user_cache_store(struct user_cache *cache, const char *user_id, const char *body, int64_t now,
                      uint64_t generation);

/* Drops one user, or every user when `user_id` is "*". Thread-safe. */
void user_cache_drop(struct user_cache *cache, const char *user_id);

#endif
