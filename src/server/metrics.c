/* SPDX-License-Identifier: MIT */
/* Counters for /metrics. Every counter is an atomic owned by this file. */
#include "manas360/metrics.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "manas360/err.h"
#include "manas360/route.h"

#define METRICS_ROUTES_MAX 64
#define METRICS_LATENCY_BUCKETS 11

static const int metrics_statuses[] = {200, 201, 202, 400, 401, 402, 403, 404,
                                       405, 409, 413, 415, 429, 500, 503, 0};
#define METRICS_STATUS_SLOTS ((int)(sizeof(metrics_statuses) / sizeof(metrics_statuses[0])))

static const int64_t metrics_latency_bounds_us[METRICS_LATENCY_BUCKETS] = {
    500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000};

/* Row METRICS_ROUTES_MAX counts paths that no route matched. */
static _Atomic uint64_t metrics_requests[METRICS_ROUTES_MAX + 1][METRICS_STATUS_SLOTS];
static _Atomic uint64_t metrics_latency[METRICS_LATENCY_BUCKETS + 1];
static _Atomic uint64_t metrics_latency_sum_us;
static _Atomic uint64_t metrics_logins[3]; /* success, failure, throttled */
static const char *const metrics_denial_reasons[] = {"role", "permission", "subscription",
                                                     "feature", "quota"};
#define METRICS_DENIAL_REASONS 5
static _Atomic uint64_t metrics_denials[METRICS_DENIAL_REASONS];

static void metrics_add(_Atomic uint64_t *counter, uint64_t n)
{
    atomic_fetch_add_explicit(counter, n, memory_order_relaxed);
}

static uint64_t metrics_get(_Atomic uint64_t *counter)
{
    return atomic_load_explicit(counter, memory_order_relaxed);
}

static int metrics_status_slot(int status)
{
    for (int i = 0; i < METRICS_STATUS_SLOTS - 1; i++) {
        if (metrics_statuses[i] == status)
            return i;
    }
    return METRICS_STATUS_SLOTS - 1;
}

void metrics_request(int route_index, int status, int64_t latency_us)
{
    int row =
        (route_index < 0 || route_index >= METRICS_ROUTES_MAX) ? METRICS_ROUTES_MAX : route_index;
    int bucket = 0;

    metrics_add(&metrics_requests[row][metrics_status_slot(status)], 1);
    while (bucket < METRICS_LATENCY_BUCKETS && latency_us > metrics_latency_bounds_us[bucket])
        bucket++;
    metrics_add(&metrics_latency[bucket], 1);
    metrics_add(&metrics_latency_sum_us, (uint64_t)(latency_us > 0 ? latency_us : 0));
}

void metrics_login(int status)
{
    metrics_add(&metrics_logins[status == 200 ? 0 : status == 429 ? 2 : 1], 1);
}

void metrics_denial(const char *reason)
{
    for (int i = 0; i < METRICS_DENIAL_REASONS; i++) {
        if (strcmp(metrics_denial_reasons[i], reason) == 0)
            metrics_add(&metrics_denials[i], 1);
    }
}

/* A growing text buffer; on failure it stays NULL and further appends do nothing. */
struct metrics_text {
    char *data;
    size_t len;
    size_t cap;
};

static void metrics_printf(struct metrics_text *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void metrics_printf(struct metrics_text *t, const char *fmt, ...)
{
    va_list ap;
    char *grown;
    int n;

    if (t->data == NULL)
        return;
    for (;;) {
        va_start(ap, fmt);
        n = vsnprintf(t->data + t->len, t->cap - t->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            free(t->data);
            t->data = NULL;
            return;
        }
        if ((size_t)n < t->cap - t->len) {
            t->len += (size_t)n;
            return;
        }
        grown = realloc(t->data, t->cap * 2 + (size_t)n);
        if (grown == NULL) {
            free(t->data);
            t->data = NULL;
            return;
        }
        t->data = grown;
        t->cap = t->cap * 2 + (size_t)n;
    }
}

static void metrics_render_requests(struct metrics_text *t)
{
    int nroutes;
    const struct route *routes = route_table(&nroutes);

    metrics_printf(t, "# HELP manas360_http_requests_total HTTP requests answered.\n"
                      "# TYPE manas360_http_requests_total counter\n");
    for (int row = 0; row <= METRICS_ROUTES_MAX; row++) {
        if (row >= nroutes && row < METRICS_ROUTES_MAX)
            continue;
        for (int slot = 0; slot < METRICS_STATUS_SLOTS; slot++) {
            uint64_t n = metrics_get(&metrics_requests[row][slot]);
            char status[8];

            if (n == 0)
                continue;
            snprintf(status, sizeof(status), "%d", metrics_statuses[slot]);
            metrics_printf(t,
                           "manas360_http_requests_total{method=\"%s\",route=\"%s\","
                           "status=\"%s\"} %llu\n",
                           row < nroutes ? routes[row].method : "",
                           row < nroutes ? routes[row].pattern : "unmatched",
                           metrics_statuses[slot] != 0 ? status : "other", (unsigned long long)n);
        }
    }
}

static void metrics_render_latency(struct metrics_text *t)
{
    uint64_t cumulative = 0;

    metrics_printf(t, "# HELP manas360_http_request_duration_seconds Time to answer.\n"
                      "# TYPE manas360_http_request_duration_seconds histogram\n");
    for (int i = 0; i <= METRICS_LATENCY_BUCKETS; i++) {
        cumulative += metrics_get(&metrics_latency[i]);
        if (i < METRICS_LATENCY_BUCKETS)
            metrics_printf(t, "manas360_http_request_duration_seconds_bucket{le=\"%g\"} %llu\n",
                           (double)metrics_latency_bounds_us[i] / 1e6,
                           (unsigned long long)cumulative);
        else
            metrics_printf(t, "manas360_http_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n",
                           (unsigned long long)cumulative);
    }
    metrics_printf(t, "manas360_http_request_duration_seconds_sum %.6f\n",
                   (double)metrics_get(&metrics_latency_sum_us) / 1e6);
    metrics_printf(t, "manas360_http_request_duration_seconds_count %llu\n",
                   (unsigned long long)cumulative);
}

static void metrics_render_pool(struct metrics_text *t, const struct metrics_pool *pool)
{
    static const char *const bounds[] = {"0.001", "0.002", "0.005", "0.01",
                                         "0.025", "0.05",  "0.1",   "+Inf"};
    const struct pool_stats_view *s = &pool->stats;
    uint64_t cumulative = 0;

    metrics_printf(t, "manas360_pool_queue_depth{pool=\"%s\"} %llu\n", pool->name,
                   (unsigned long long)s->in_flight);
    metrics_printf(t, "manas360_pool_calls_total{pool=\"%s\"} %llu\n", pool->name,
                   (unsigned long long)s->calls);
    metrics_printf(t, "manas360_pool_timeouts_total{pool=\"%s\"} %llu\n", pool->name,
                   (unsigned long long)s->timeouts);
    metrics_printf(t, "manas360_pool_unavailable_total{pool=\"%s\"} %llu\n", pool->name,
                   (unsigned long long)s->unavailable);
    for (int i = 0; i < 8; i++) {
        cumulative += s->reply_us_buckets[i];
        metrics_printf(t, "manas360_pool_reply_seconds_bucket{pool=\"%s\",le=\"%s\"} %llu\n",
                       pool->name, bounds[i], (unsigned long long)cumulative);
    }
    metrics_printf(t, "manas360_pool_reply_seconds_sum{pool=\"%s\"} %.6f\n", pool->name,
                   (double)s->reply_us_sum / 1e6);
    metrics_printf(t, "manas360_pool_reply_seconds_count{pool=\"%s\"} %llu\n", pool->name,
                   (unsigned long long)cumulative);
}

int metrics_render(const struct metrics_pool *pools, int npools, int64_t active_sessions,
                   int64_t cached_sessions, char **out)
{
    struct metrics_text t = {malloc(8192), 0, 8192};
    static const char *const results[] = {"success", "failure", "throttled"};

    metrics_render_requests(&t);
    metrics_render_latency(&t);

    metrics_printf(&t, "# HELP manas360_logins_total Logins by result.\n"
                       "# TYPE manas360_logins_total counter\n");
    for (int i = 0; i < 3; i++)
        metrics_printf(&t, "manas360_logins_total{result=\"%s\"} %llu\n", results[i],
                       (unsigned long long)metrics_get(&metrics_logins[i]));

    metrics_printf(&t, "# HELP manas360_denials_total Access denials by the step that refused.\n"
                       "# TYPE manas360_denials_total counter\n");
    for (int i = 0; i < METRICS_DENIAL_REASONS; i++)
        metrics_printf(&t, "manas360_denials_total{reason=\"%s\"} %llu\n",
                       metrics_denial_reasons[i],
                       (unsigned long long)metrics_get(&metrics_denials[i]));

    metrics_printf(&t, "# HELP manas360_pool_queue_depth Calls waiting for a pool's reply.\n"
                       "# TYPE manas360_pool_queue_depth gauge\n"
                       "# TYPE manas360_pool_calls_total counter\n"
                       "# TYPE manas360_pool_timeouts_total counter\n"
                       "# TYPE manas360_pool_unavailable_total counter\n"
                       "# TYPE manas360_pool_reply_seconds histogram\n");
    for (int i = 0; i < npools; i++)
        metrics_render_pool(&t, &pools[i]);

    if (active_sessions >= 0)
        metrics_printf(&t,
                       "# HELP manas360_active_sessions Open sessions, all processes.\n"
                       "# TYPE manas360_active_sessions gauge\n"
                       "manas360_active_sessions %lld\n",
                       (long long)active_sessions);
    metrics_printf(&t,
                   "# HELP manas360_session_cache_entries Sessions this process holds.\n"
                   "# TYPE manas360_session_cache_entries gauge\n"
                   "manas360_session_cache_entries %lld\n",
                   (long long)cached_sessions);

    if (t.data == NULL)
        return M360_ENOMEM;
    *out = t.data;
    return 0;
}
