/* SPDX-License-Identifier: MIT */
/*
 * Monthly API quotas, served from leases. The count of each user and calendar month (UTC)
 * lives in PostgreSQL (quota_usage, written only by quota_lease()), so it holds across
 * processes and restarts. A process leases a block of the remaining units, serves requests
 * from it in memory, and settles later: served units move from leased to used, unused ones
 * go back. Blocks shrink as the remainder falls, to single units near the limit, and the
 * database never grants past the limit, so the limit is never exceeded; a crash leaves its
 * block leased, which can only under-serve.
 */
#ifndef MANAS360_QUOTA_H
#define MANAS360_QUOTA_H

#include <stdbool.h>
#include <stdint.h>

#define QUOTA_BLOCK_MAX 1000   /* units leased at once, at most */
#define QUOTA_BLOCK_DIVISOR 8  /* a block is this share of what is left unleased */
#define QUOTA_STATUS_FRESH_S 2 /* a status older than this is read again */
#define QUOTA_IDLE_RETURN_S 30 /* a block unused this long goes back */
#define QUOTA_SETTLE_INTERVAL_MS 2000
#define QUOTA_USER_ID_BYTES 37
#define QUOTA_PERIOD_BYTES 11 /* "YYYY-MM-01" */

/* One call to the database's quota_lease(): settle a block, then lease up to `wanted`. */
struct quota_lease_call {
    char user_id[QUOTA_USER_ID_BYTES];
    char period[QUOTA_PERIOD_BYTES];
    int64_t consumed; /* units of the block served since the last call */
    int64_t returned; /* units of the block given back unused */
    int64_t wanted;
    int64_t limit;
};

/* The row after the call, and the grant. */
struct quota_lease_result {
    int64_t granted;
    int64_t used;
    int64_t leased;
};

/* How a quota reaches the database; both return 0 or a status code. */
struct quota_backend {
    int (*lease)(void *arg, const struct quota_lease_call *call, struct quota_lease_result *out);
    int (*settle)(void *arg, const struct quota_lease_call *calls, int count);
    void *arg;
};

/* What a metered response reports: its X-RateLimit-* headers and GET /api/api/status. */
struct quota_state {
    int64_t limit;
    int64_t used;
    int64_t remaining;
    int64_t reset_at; /* Unix seconds: 00:00 UTC on the first day of the next month */
};

struct quota;

/* An empty lease table. Returns NULL when out of memory. */
struct quota *quota_new(void);

/* Frees the table; settle it with quota_settle(..., true) first, or its blocks stay leased. */
void quota_destroy(struct quota **quota);

/*
 * Takes one unit of `user_id`'s quota of `limit` for the month of `now` (Unix seconds).
 * Returns 0 with *out after the unit; M360_ELIMIT when the month's quota is used up (*out
 * filled, remaining 0); or the backend's code (M360_EUNAVAILABLE, M360_ETIMEDOUT).
 * Thread-safe; callers for one user wait while a lease for that user is under way.
 */
int quota_take(struct quota *quota, const struct quota_backend *backend, const char *user_id,
               int64_t limit, int64_t now, struct quota_state *out);

/* Gives back the unit a request took, when the request did not succeed after all. */
void quota_refund(struct quota *quota, const char *user_id, int64_t now);

/*
 * The month's use of `user_id` under `limit`, read again from the database when this
 * process's view is older than QUOTA_STATUS_FRESH_S. Returns 0 or the backend's code.
 */
int quota_status(struct quota *quota, const struct quota_backend *backend, const char *user_id,
                 int64_t limit, int64_t now, struct quota_state *out);

/*
 * Settles served units with the database; returns blocks idle for QUOTA_IDLE_RETURN_S, or
 * from a past month, or every block when `everything` (at shutdown). Returns 0 or the first
 * backend code; what could not be settled stays leased, which can only under-serve.
 */
int quota_settle(struct quota *quota, const struct quota_backend *backend, int64_t now,
                 bool everything);

/*
 * The user's plan or limit may have changed: their block goes back at the next request and a
 * new one is leased under the new limit. "*" marks every user. Thread-safe.
 */
void quota_forget(struct quota *quota, const char *user_id);

/* The first day of the month of `now`, "YYYY-MM-01", and the reset time after it. */
void quota_period(int64_t now, char period[QUOTA_PERIOD_BYTES], int64_t *reset_at);

#endif
