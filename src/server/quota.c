/* SPDX-License-Identifier: MIT */
/* Quota leases: per-user blocks of the month's remaining units, served in memory. */
#include "manas360/quota.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "manas360/err.h"
#include "manas360/log.h"

#define QUOTA_LOG_MODULE "quota"
#define QUOTA_STRIPES 1024
#define QUOTA_LEASE_WAIT_S 10 /* a caller waits this long for another's lease of the same user */
#define QUOTA_SETTLE_BATCH 500

/* What this process holds of one user's month. */
struct quota_entry {
    struct quota_entry *next;
    char user_id[QUOTA_USER_ID_BYTES];
    char period[QUOTA_PERIOD_BYTES];
    int64_t held;     /* leased and not yet served */
    int64_t consumed; /* served and not yet settled; still counted as leased in the row */
    int64_t used;     /* the row as last seen, with this process's settlements applied */
    int64_t leased;
    int64_t seen_at;    /* when the row was last read; 0: never */
    int64_t refused_at; /* the second the database last granted nothing; 0: never */
    int64_t last_taken;
    bool busy;          /* a block is being replaced or returned: nobody takes, wait */
    bool leasing;       /* a lease call is out; takers go on while units are held */
    int64_t block;      /* the last grant, for leasing the next block ahead of need */
    bool returning;     /* its block is going back; the entry is dropped after */
    bool stale;         /* the limit may have changed: return the block first */
    unsigned forgotten; /* counts announcements, so one during a lease is not lost */
};

/* Entries hash to a stripe; a stripe's lock guards its chain and every entry on it. */
struct quota_stripe {
    pthread_mutex_t lock;
    pthread_cond_t settled; /* a busy entry of this stripe became free */
    struct quota_entry *entries;
};

struct quota {
    struct quota_stripe stripes[QUOTA_STRIPES];
};

void quota_period(int64_t now, char period[QUOTA_PERIOD_BYTES], int64_t *reset_at)
{
    time_t seconds = (time_t)now;
    struct tm tm;

    gmtime_r(&seconds, &tm);
    snprintf(period, QUOTA_PERIOD_BYTES, "%04u-%02u-01", (unsigned)(tm.tm_year + 1900) % 10000u,
             (unsigned)(tm.tm_mon + 1) % 100u);
    tm = (struct tm){
        .tm_year = tm.tm_year + (tm.tm_mon == 11), .tm_mon = (tm.tm_mon + 1) % 12, .tm_mday = 1};
    *reset_at = (int64_t)timegm(&tm);
}

struct quota *quota_new(void)
{
    struct quota *quota = calloc(1, sizeof(*quota));

    if (quota == NULL)
        return NULL;
    for (int i = 0; i < QUOTA_STRIPES; i++) {
        pthread_mutex_init(&quota->stripes[i].lock, NULL);
        pthread_cond_init(&quota->stripes[i].settled, NULL);
    }
    return quota;
}

void quota_destroy(struct quota **quota)
{
    if (quota == NULL || *quota == NULL)
        return;
    for (int i = 0; i < QUOTA_STRIPES; i++) {
        struct quota_stripe *stripe = &(*quota)->stripes[i];

        while (stripe->entries != NULL) {
            struct quota_entry *next = stripe->entries->next;

            free(stripe->entries);
            stripe->entries = next;
        }
        pthread_mutex_destroy(&stripe->lock);
        pthread_cond_destroy(&stripe->settled);
    }
    free(*quota);
    *quota = NULL;
}

static struct quota_stripe *quota_stripe_of(struct quota *quota, const char *user_id)
{
    unsigned h = 2166136261u;

    for (const char *p = user_id; *p != '\0'; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    return &quota->stripes[h % QUOTA_STRIPES];
}

/* The user's entry, created when absent; NULL without memory. The stripe is locked. */
static struct quota_entry *quota_entry_get(struct quota_stripe *stripe, const char *user_id,
                                           const char *period)
{
    struct quota_entry *entry;

    for (entry = stripe->entries; entry != NULL; entry = entry->next) {
        if (strcmp(entry->user_id, user_id) == 0)
            return entry;
    }
    if (strlen(user_id) >= QUOTA_USER_ID_BYTES)
        return NULL;
    entry = calloc(1, sizeof(*entry));
    if (entry == NULL)
        return NULL;
    memcpy(entry->user_id, user_id, strlen(user_id) + 1);
    memcpy(entry->period, period, QUOTA_PERIOD_BYTES);
    entry->next = stripe->entries;
    stripe->entries = entry;
    return entry;
}

/* Waits for a busy entry to be free; M360_ETIMEDOUT when it stays busy too long. */
static int quota_wait(struct quota_stripe *stripe)
{
    struct timespec until;

    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += QUOTA_LEASE_WAIT_S;
    return pthread_cond_timedwait(&stripe->settled, &stripe->lock, &until) == ETIMEDOUT
               ? M360_ETIMEDOUT
               : 0;
}

/* The entry as a response reports it. */
static void quota_state_fill(const struct quota_entry *entry, int64_t limit, int64_t reset_at,
                             struct quota_state *out)
{
    int64_t taken = entry->used + entry->leased - entry->held;

    out->limit = limit;
    out->used = taken > 0 ? taken : 0;
    out->remaining = limit - out->used > 0 ? limit - out->used : 0;
    out->reset_at = reset_at;
}

/* How many units to ask for: a share of what is left unleased, down to one. */
static int64_t quota_block(const struct quota_entry *entry, int64_t limit)
{
    int64_t left = limit - entry->used - entry->leased;
    int64_t block = entry->seen_at == 0 ? 1 : left / QUOTA_BLOCK_DIVISOR;

    if (block > QUOTA_BLOCK_MAX)
        block = QUOTA_BLOCK_MAX;
    return block < 1 ? 1 : block;
}

/*
 * Settles the entry's served units with the database and leases `wanted` more for `period`.
 * A block of a past month, or one leased under a limit that may have changed, goes back
 * first, and then nobody takes until the call is done; otherwise takers go on serving what
 * is held meanwhile. The stripe is locked on entry and on return, and released for the
 * calls.
 */
static int quota_entry_lease(struct quota_stripe *stripe, struct quota_entry *entry,
                             const struct quota_backend *backend, const char *period,
                             int64_t wanted, int64_t limit, int64_t now)
{
    bool same_month = strcmp(entry->period, period) == 0;
    bool replacing = entry->stale || !same_month;
    unsigned forgotten = entry->forgotten;
    struct quota_lease_call settle = {.consumed = entry->consumed,
                                      .returned = replacing ? entry->held : 0};
    struct quota_lease_call call = {.wanted = wanted, .limit = limit};
    struct quota_lease_result result = {0};
    int rc = 0;

    memcpy(settle.user_id, entry->user_id, QUOTA_USER_ID_BYTES);
    memcpy(settle.period, entry->period, QUOTA_PERIOD_BYTES);
    memcpy(call.user_id, entry->user_id, QUOTA_USER_ID_BYTES);
    memcpy(call.period, period, QUOTA_PERIOD_BYTES);
    if (same_month) {
        call.consumed = settle.consumed;
        call.returned = settle.returned;
    }
    entry->leasing = true;
    entry->busy = replacing;
    pthread_mutex_unlock(&stripe->lock);

    /* A block of a past month is settled on that month's row. */
    if (!same_month && (settle.consumed > 0 || settle.returned > 0))
        rc = backend->settle(backend->arg, &settle, 1);
    if (rc == 0)
        rc = backend->lease(backend->arg, &call, &result);

    pthread_mutex_lock(&stripe->lock);
    entry->leasing = false;
    entry->busy = false;
    pthread_cond_broadcast(&stripe->settled);
    if (rc != 0)
        return rc;

    /* Units served while the call was out stay counted as consumed, inside `leased`. */
    memcpy(entry->period, period, QUOTA_PERIOD_BYTES);
    entry->consumed = replacing ? 0 : entry->consumed - settle.consumed;
    entry->held = (replacing ? 0 : entry->held) + result.granted;
    entry->used = result.used;
    entry->leased = result.leased;
    entry->block = result.granted;
    entry->seen_at = now;
    entry->refused_at = wanted > 0 && result.granted == 0 ? now : 0;
    /* A change announced while the call was out applies to the next lease too. */
    entry->stale = entry->forgotten != forgotten;
    return 0;
}

/* True when the entry's block runs low and the next one should be leased now, ahead of
 * need, so that the requests of a busy user never wait for the database. */
static bool quota_entry_low(const struct quota_entry *entry)
{
    return !entry->leasing && entry->block >= QUOTA_BLOCK_DIVISOR &&
           entry->held <= entry->block / QUOTA_BLOCK_DIVISOR;
}

int quota_take(struct quota *quota, const struct quota_backend *backend, const char *user_id,
               int64_t limit, int64_t now, struct quota_state *out)
{
    struct quota_stripe *stripe = quota_stripe_of(quota, user_id);
    char period[QUOTA_PERIOD_BYTES];
    int64_t reset_at;
    int rc = 0;

    quota_period(now, period, &reset_at);
    pthread_mutex_lock(&stripe->lock);
    for (;;) {
        struct quota_entry *entry = quota_entry_get(stripe, user_id, period);
        bool current;

        if (entry == NULL) {
            rc = M360_ENOMEM;
            break;
        }
        current = strcmp(entry->period, period) == 0 && !entry->stale;
        if (entry->busy || (entry->leasing && !(current && entry->held > 0))) {
            rc = quota_wait(stripe);
            if (rc != 0)
                break;
            continue;
        }

        if (current && entry->held > 0) {
            entry->held--;
            entry->consumed++;
            entry->last_taken = now;
            quota_state_fill(entry, limit, reset_at, out);
            /* This request has its unit already: a failed lease ahead only costs time. */
            if (quota_entry_low(entry))
                quota_entry_lease(stripe, entry, backend, period, quota_block(entry, limit), limit,
                                  now);
            break;
        }
        /*
         * Refused this second already: other processes rarely give units back sooner.
         * XXX: a refusal while another process still holds unserved units of this user's
         * month answers 429 until that process serves them or returns them idle, after up
         * to QUOTA_IDLE_RETURN_S; near the limit those are a few single units.
         */
        if (current && entry->refused_at == now) {
            quota_state_fill(entry, limit, reset_at, out);
            rc = M360_ELIMIT;
            break;
        }
        rc = quota_entry_lease(stripe, entry, backend, period,
                               quota_block(current ? entry : &(struct quota_entry){0}, limit),
                               limit, now);
        if (rc != 0)
            break;
    }
    pthread_mutex_unlock(&stripe->lock);
    return rc;
}

void quota_refund(struct quota *quota, const char *user_id, int64_t now)
{
    struct quota_stripe *stripe = quota_stripe_of(quota, user_id);
    char period[QUOTA_PERIOD_BYTES];
    int64_t reset_at;

    quota_period(now, period, &reset_at);
    pthread_mutex_lock(&stripe->lock);
    for (struct quota_entry *entry = stripe->entries; entry != NULL; entry = entry->next) {
        /* XXX: a refund while a lease call is out is dropped, since that call may already
         * be settling the unit: the user is under-served by one. */
        if (strcmp(entry->user_id, user_id) == 0 && strcmp(entry->period, period) == 0 &&
            entry->consumed > 0 && !entry->leasing) {
            entry->consumed--;
            entry->held++;
            break;
        }
    }
    pthread_mutex_unlock(&stripe->lock);
}

int quota_status(struct quota *quota, const struct quota_backend *backend, const char *user_id,
                 int64_t limit, int64_t now, struct quota_state *out)
{
    struct quota_stripe *stripe = quota_stripe_of(quota, user_id);
    char period[QUOTA_PERIOD_BYTES];
    int64_t reset_at;
    int rc = 0;

    quota_period(now, period, &reset_at);
    pthread_mutex_lock(&stripe->lock);
    for (;;) {
        struct quota_entry *entry = quota_entry_get(stripe, user_id, period);

        if (entry == NULL) {
            rc = M360_ENOMEM;
            break;
        }
        if (entry->busy || entry->leasing) {
            rc = quota_wait(stripe);
            if (rc != 0)
                break;
            continue;
        }
        if (strcmp(entry->period, period) == 0 && !entry->stale &&
            now - entry->seen_at < QUOTA_STATUS_FRESH_S) {
            quota_state_fill(entry, limit, reset_at, out);
            break;
        }
        /* A lease of nothing settles this process's block and reads the row afresh. */
        rc = quota_entry_lease(stripe, entry, backend, period, 0, limit, now);
        if (rc != 0)
            break;
    }
    pthread_mutex_unlock(&stripe->lock);
    return rc;
}

/* A settlement of the entry into `call`: what it served, and its block when returning. */
static void quota_settlement(struct quota_entry *entry, bool returning,
                             struct quota_lease_call *call)
{
    memset(call, 0, sizeof(*call));
    memcpy(call->user_id, entry->user_id, QUOTA_USER_ID_BYTES);
    memcpy(call->period, entry->period, QUOTA_PERIOD_BYTES);
    call->consumed = entry->consumed;
    call->returned = returning ? entry->held : 0;

    /* Served units move from leased to used in the row: the entry's view follows. */
    entry->used += entry->consumed;
    entry->leased -= entry->consumed + call->returned;
    entry->consumed = 0;
    entry->held -= call->returned;
}

/*
 * Moves what `stripe` has to settle into calls[*count..], up to QUOTA_SETTLE_BATCH. Blocks
 * that go back mark their entry busy and returning, so nobody leases for that user until
 * the database has them back. Idle entries with nothing to settle are dropped at once.
 * Returns false when the batch filled before the end of the stripe.
 */
static bool quota_stripe_collect(struct quota_stripe *stripe, const char *period, int64_t now,
                                 bool everything, struct quota_lease_call *calls, int *count)
{
    struct quota_entry **link = &stripe->entries;
    bool whole;

    pthread_mutex_lock(&stripe->lock);
    while (*link != NULL && *count < QUOTA_SETTLE_BATCH) {
        struct quota_entry *entry = *link;
        bool returning = everything || strcmp(entry->period, period) != 0 ||
                         now - entry->last_taken >= QUOTA_IDLE_RETURN_S;

        if (!entry->leasing && returning && entry->held == 0 && entry->consumed == 0) {
            *link = entry->next;
            free(entry);
            continue;
        }
        if (!entry->leasing && (returning || entry->consumed > 0)) {
            quota_settlement(entry, returning, &calls[(*count)++]);
            entry->busy = returning;
            entry->returning = returning;
        }
        link = &entry->next;
    }
    whole = *link == NULL;
    pthread_mutex_unlock(&stripe->lock);
    return whole;
}

/* Drops the entries whose blocks went back, and wakes whoever waited for them. */
static void quota_stripe_release(struct quota_stripe *stripe)
{
    struct quota_entry **link = &stripe->entries;

    pthread_mutex_lock(&stripe->lock);
    while (*link != NULL) {
        struct quota_entry *entry = *link;

        if (entry->returning) {
            *link = entry->next;
            free(entry);
            continue;
        }
        link = &entry->next;
    }
    pthread_cond_broadcast(&stripe->settled);
    pthread_mutex_unlock(&stripe->lock);
}

int quota_settle(struct quota *quota, const struct quota_backend *backend, int64_t now,
                 bool everything)
{
    struct quota_lease_call *calls = malloc(sizeof(*calls) * QUOTA_SETTLE_BATCH);
    char period[QUOTA_PERIOD_BYTES];
    int64_t reset_at;
    int first = 0;
    int rc = 0;

    if (calls == NULL)
        return M360_ENOMEM;
    quota_period(now, period, &reset_at);

    /* Stripes are visited in runs that fill one batch, so one call settles many users; a
     * stripe the batch filled in the middle of starts the next run. */
    while (first < QUOTA_STRIPES) {
        int last = first;
        int count = 0;
        bool whole = true;
        int call_rc;

        while (whole && last < QUOTA_STRIPES && count < QUOTA_SETTLE_BATCH)
            whole = quota_stripe_collect(&quota->stripes[last++], period, now, everything, calls,
                                         &count);
        call_rc = count > 0 ? backend->settle(backend->arg, calls, count) : 0;
        if (call_rc != 0) {
            /* The units stay leased in the row: the users are under-served, never over. */
            log_warn(QUOTA_LOG_MODULE, "event=settle_failed users=%d code=%s", count,
                     err_str(call_rc));
            rc = rc != 0 ? rc : call_rc;
        }
        for (int i = first; i < last; i++)
            quota_stripe_release(&quota->stripes[i]);
        first = whole ? last : last - 1;
    }
    free(calls);
    return rc;
}

void quota_forget(struct quota *quota, const char *user_id)
{
    bool all = strcmp(user_id, "*") == 0;

    for (int i = 0; i < QUOTA_STRIPES; i++) {
        struct quota_stripe *stripe = &quota->stripes[i];

        if (!all && stripe != quota_stripe_of(quota, user_id))
            continue;
        pthread_mutex_lock(&stripe->lock);
        for (struct quota_entry *entry = stripe->entries; entry != NULL; entry = entry->next) {
            if (all || strcmp(entry->user_id, user_id) == 0) {
                entry->stale = true;
                entry->forgotten++;
            }
        }
        pthread_mutex_unlock(&stripe->lock);
    }
}
