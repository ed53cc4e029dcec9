/* SPDX-License-Identifier: MIT */
/*
 * The access decision after authentication: permission, active subscription, plan features
 * and the monthly quota, in the contract's order, from the authorization cache and the
 * quota leases. Also the two answers made of what the decision established: the quota
 * status and the premium dashboard.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <civetweb.h>
#include <jansson.h>

#include "http_internal.h"
#include "manas360/err.h"
#include "manas360/log.h"
#include "manas360/metrics.h"

#define HTTP_GUARD_LOG_MODULE "guard"
#define HTTP_GUARD_UPGRADE_PATH "/pricing"
#define HTTP_GUARD_AGENT_MAX 512
#define HTTP_TIME_BYTES 32

static int64_t http_guard_now(void)
{
    return (int64_t)time(NULL);
}

static int http_guard_timeout_ms(const struct http_exchange *ex)
{
    return (int)ex->server->cfg->pool_timeout_s * 1000;
}

static struct pool_client *http_guard_billing(const struct http_exchange *ex)
{
    return ex->thread != NULL ? ex->thread->clients[HTTP_POOL_BILLING] : NULL;
}

/* RFC 3339 UTC text of Unix seconds. */
static void http_time_text(int64_t at, char out[HTTP_TIME_BYTES])
{
    time_t seconds = (time_t)at;
    struct tm tm;

    gmtime_r(&seconds, &tm);
    strftime(out, HTTP_TIME_BYTES, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* ---- Quota backend over the billing pool ----------------------------------------------- */

static int http_quota_lease(void *arg, const struct quota_lease_call *call,
                            struct quota_lease_result *out)
{
    const struct http_quota_link *link = arg;
    json_t *body =
        json_pack("{s:s, s:s, s:I, s:I, s:I, s:I}", "userId", call->user_id, "period", call->period,
                  "consumed", (json_int_t)call->consumed, "returned", (json_int_t)call->returned,
                  "wanted", (json_int_t)call->wanted, "limit", (json_int_t)call->limit);
    json_t *reply = NULL;
    int rc = body != NULL
                 ? http_internal_call(link->client, link->timeout_ms, "quota.lease", body, &reply)
                 : M360_ENOMEM;

    if (rc == 0) {
        out->granted = json_integer_value(json_object_get(reply, "granted"));
        out->used = json_integer_value(json_object_get(reply, "used"));
        out->leased = json_integer_value(json_object_get(reply, "leased"));
    }
    json_decref(reply);
    json_decref(body);
    return rc;
}

static int http_quota_settle(void *arg, const struct quota_lease_call *calls, int count)
{
    const struct http_quota_link *link = arg;
    json_t *settlements = json_array();
    json_t *body;
    int rc;

    for (int i = 0; settlements != NULL && i < count; i++)
        json_array_append_new(settlements, json_pack("{s:s, s:s, s:I, s:I}", "userId",
                                                     calls[i].user_id, "period", calls[i].period,
                                                     "consumed", (json_int_t)calls[i].consumed,
                                                     "returned", (json_int_t)calls[i].returned));
    body = json_pack("{s:o}", "settlements", settlements);
    rc = body != NULL
             ? http_internal_call(link->client, link->timeout_ms, "quota.settle", body, NULL)
             : M360_ENOMEM;
    json_decref(body);
    return rc;
}

void http_quota_backend(struct http_quota_link *link, struct quota_backend *out)
{
    *out = (struct quota_backend){http_quota_lease, http_quota_settle, link};
}

/* ---- The decision ----------------------------------------------------------------------- */

/*
 * Steps 2 to 4 into ex->decision: from the cache, or loaded from the billing pool (and
 * cached, unless nobody listens for changes, in which case nothing cached is trusted).
 */
static int http_guard_decide(struct http_exchange *ex, int64_t now)
{
    struct authz_cache *cache = ex->server->authz;
    bool trusted = watch_connected(ex->server->watch);
    uint64_t generation = authz_generation(cache);
    struct http_quota_link link = {http_guard_billing(ex), http_guard_timeout_ms(ex)};
    json_t *request;
    json_t *loaded = NULL;
    int rc;

    if (trusted && authz_decide(cache, ex->claims.sub, ex->match.route, now, &ex->decision) == 0)
        return 0;

    request = json_pack("{s:s}", "userId", ex->claims.sub);
    rc = request != NULL
             ? http_internal_call(link.client, link.timeout_ms, "authz.load", request, &loaded)
             : M360_ENOMEM;
    if (rc == 0)
        rc = authz_decide_loaded(loaded, ex->claims.sub, ex->match.route, now, &ex->decision);
    if (rc == 0 && trusted)
        authz_store(cache, ex->claims.sub, loaded, now, generation);
    json_decref(request);
    json_decref(loaded);
    return rc;
}

/* The recommended plan for the missing features, as JSON (a name or null). */
static json_t *http_guard_recommend(struct http_exchange *ex)
{
    struct authz_cache *cache = ex->server->authz;
    const struct authz_decision *d = &ex->decision;
    uint64_t generation = authz_generation(cache);
    char name[AUTHZ_NAME_BYTES];
    json_t *request = json_object();
    json_t *loaded = NULL;
    int rc = authz_recommend(cache, d->missing, d->nmissing, name);

    if (rc == M360_EUNAVAILABLE || !watch_connected(ex->server->watch)) {
        rc = http_internal_call(http_guard_billing(ex), http_guard_timeout_ms(ex), "authz.plans",
                                request, &loaded);
        if (rc == 0)
            rc = authz_recommend_loaded(loaded, d->missing, d->nmissing, name);
        if (rc == 0 || rc == M360_ENOTFOUND)
            authz_plans_store(cache, loaded, generation);
    }
    json_decref(request);
    json_decref(loaded);
    return rc == 0 ? json_string(name) : json_null();
}

/* Where a client sends its user to choose a plan. */
static json_t *http_guard_upgrade_url(const struct http_exchange *ex)
{
    char url[1024];

    snprintf(url, sizeof(url), "%s%s", ex->server->cfg->app_base_url, HTTP_GUARD_UPGRADE_PATH);
    return json_string(url);
}

static json_t *http_guard_current_plan(const struct http_exchange *ex)
{
    return ex->decision.has_plan ? json_string(ex->decision.plan) : json_null();
}

/* Queues the denial's audit row: not awaited, written by the audit pool in a batch. */
static void http_guard_audit(struct http_exchange *ex, const char *reason)
{
    const char *agent = mg_get_header(ex->conn, "User-Agent");
    struct timespec now;

    clock_gettime(CLOCK_REALTIME, &now);
    audit_queue_push(
        ex->server->audit,
        json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:{s:s, s:s, s:s, s:s}, s:s, s:o, s:I}",
                  "user_id", ex->claims.sub, "event_type", "permission_denied", "resource_type",
                  "route", "resource_id", ex->match.route->pattern, "action",
                  ex->match.route->method, "status", "failure", "details", "reason", reason,
                  "route", ex->match.route->pattern, "method", ex->match.route->method, "requestId",
                  ex->request_id, "ip_address", ex->req->remote_addr, "user_agent",
                  agent != NULL ? http_json_text(agent, strlen(agent), HTTP_GUARD_AGENT_MAX)
                                : json_null(),
                  "at_ms", (json_int_t)now.tv_sec * 1000 + now.tv_nsec / 1000000));
    metrics_denial(reason);
    log_info(HTTP_GUARD_LOG_MODULE, "event=denied reason=%s route=%s user_id=%s req_id=%s", reason,
             ex->match.route->pattern, ex->claims.sub, ex->request_id);
}

/* Sends the denial of step 2, 3 or 4. */
static void http_guard_refuse(struct http_exchange *ex)
{
    const struct authz_decision *d = &ex->decision;
    json_t *missing;

    switch (d->step) {
    case AUTHZ_DENIED_PERMISSION:
        http_guard_audit(ex, "permission");
        http_send_error_with(ex, 403, "Forbidden", "The caller's role lacks a permission",
                             json_pack("{s:s}", "requiredPermission", ex->match.route->permission),
                             "");
        return;
    case AUTHZ_DENIED_SUBSCRIPTION:
        http_guard_audit(ex, "subscription");
        http_send_error_with(ex, 402, "SubscriptionInactive", "An active subscription is required",
                             json_pack("{s:o, s:s, s:o}", "currentPlan",
                                       http_guard_current_plan(ex), "status", d->status,
                                       "upgradeUrl", http_guard_upgrade_url(ex)),
                             "");
        return;
    case AUTHZ_DENIED_FEATURE:
        http_guard_audit(ex, "feature");
        missing = json_array();
        for (int i = 0; i < d->nmissing; i++)
            json_array_append_new(missing, json_string(d->missing[i]));
        http_send_error_with(
            ex, 403, "FeatureNotAvailable", "The caller's plan does not include a required feature",
            json_pack("{s:o, s:o, s:o, s:o}", "requiredFeatures", missing, "currentPlan",
                      http_guard_current_plan(ex), "recommendedPlan", http_guard_recommend(ex),
                      "upgradeUrl", http_guard_upgrade_url(ex)),
            "");
        return;
    case AUTHZ_ALLOWED:
        break;
    }
}

/* The X-RateLimit-* lines of the quota state, for every answer of this request. */
static void http_guard_rate_headers(struct http_exchange *ex)
{
    snprintf(ex->guard_headers, sizeof(ex->guard_headers),
             "X-RateLimit-Limit: %lld\r\nX-RateLimit-Remaining: %lld\r\n"
             "X-RateLimit-Reset: %lld\r\n",
             (long long)ex->quota.limit, (long long)ex->quota.remaining,
             (long long)ex->quota.reset_at);
}

/* Step 5: one unit of the month's quota, or 429. */
static int http_guard_meter(struct http_exchange *ex, int64_t now)
{
    struct http_quota_link link = {http_guard_billing(ex), http_guard_timeout_ms(ex)};
    struct quota_backend backend;
    char reset[HTTP_TIME_BYTES];
    char retry[48];
    int rc;

    http_quota_backend(&link, &backend);
    rc = quota_take(ex->server->quota, &backend, ex->claims.sub, ex->decision.quota_limit, now,
                    &ex->quota);
    if (rc == 0) {
        ex->quota_taken = true;
        http_guard_rate_headers(ex);
        return 0;
    }
    if (rc != M360_ELIMIT)
        return rc;

    http_guard_rate_headers(ex);
    http_guard_audit(ex, "quota");
    http_time_text(ex->quota.reset_at, reset);
    snprintf(retry, sizeof(retry), "Retry-After: %lld\r\n",
             (long long)(ex->quota.reset_at - now > 1 ? ex->quota.reset_at - now : 1));
    http_send_error_with(
        ex, 429, "RateLimitExceeded", "The monthly request quota is used up",
        json_pack("{s:I, s:s}", "limit", (json_int_t)ex->quota.limit, "resetAt", reset), retry);
    return M360_ELIMIT;
}

/* True when the route needs anything the authorization cache holds. */
static bool http_guard_needed(const struct route *route)
{
    return route->permission != NULL || route->features[0] != NULL ||
           (route->flags & (ROUTE_SUBSCRIBED | ROUTE_METERED)) != 0 ||
           route->local == ROUTE_LOCAL_QUOTA_STATUS;
}

int http_guard(struct http_exchange *ex)
{
    int64_t now = http_guard_now();
    int rc;

    if (!http_guard_needed(ex->match.route))
        return 0;

    rc = http_guard_decide(ex, now);
    if (rc == 0 && ex->decision.step != AUTHZ_ALLOWED) {
        http_guard_refuse(ex);
        return M360_EINVAL;
    }
    if (rc == 0 && (ex->match.route->flags & ROUTE_METERED))
        rc = http_guard_meter(ex, now);
    if (rc == M360_ELIMIT)
        return rc;
    /* The account went away since its session was checked. */
    if (rc == M360_ENOTFOUND) {
        http_send_unauthorized(ex, "Unauthorized", "The account is no longer active");
        return rc;
    }
    if (rc != 0) {
        log_warn(HTTP_GUARD_LOG_MODULE, "event=decision_failed code=%s req_id=%s", err_str(rc),
                 ex->request_id);
        http_send_error(ex, 503, "ServiceUnavailable",
                        "A backend service is unavailable, retry soon", "Retry-After: 1\r\n");
    }
    return rc;
}

void http_guard_finish(struct http_exchange *ex)
{
    if (ex->quota_taken && (ex->status < 200 || ex->status > 299))
        quota_refund(ex->server->quota, ex->claims.sub, http_guard_now());
}

/* What the dashboard adds around the plan's members: keys, a status, times and numbers. */
#define HTTP_DASHBOARD_FRAME_BYTES 512

/* ---- Answers made of the decision -------------------------------------------------------- */

static void http_send_json(struct http_exchange *ex, json_t *body)
{
    char *text = body != NULL ? json_dumps(body, JSON_COMPACT) : NULL;

    if (text != NULL)
        http_send(ex, 200, "", text);
    else
        http_send_error(ex, 500, "InternalError", "Internal error", "");
    free(text);
    json_decref(body);
}

void http_serve_quota_status(struct http_exchange *ex)
{
    struct http_quota_link link = {http_guard_billing(ex), http_guard_timeout_ms(ex)};
    struct quota_backend backend;
    struct quota_state state;
    char reset[HTTP_TIME_BYTES];
    int rc;

    http_quota_backend(&link, &backend);
    rc = quota_status(ex->server->quota, &backend, ex->claims.sub, ex->decision.quota_limit,
                      http_guard_now(), &state);
    if (rc != 0) {
        http_send_error(ex, 503, "ServiceUnavailable",
                        "A backend service is unavailable, retry soon", "Retry-After: 1\r\n");
        return;
    }
    http_time_text(state.reset_at, reset);
    http_send_json(ex,
                   json_pack("{s:b, s:o, s:I, s:I, s:I, s:s}", "success", 1, "plan",
                             ex->decision.subscribed ? json_string(ex->decision.plan) : json_null(),
                             "limit", (json_int_t)state.limit, "used", (json_int_t)state.used,
                             "remaining", (json_int_t)state.remaining, "resetAt", reset));
}

void http_serve_dashboard(struct http_exchange *ex)
{
    const struct authz_decision *d = &ex->decision;
    char reset[HTTP_TIME_BYTES];
    char ends_at[HTTP_TIME_BYTES];
    char ends[HTTP_TIME_BYTES + 2] = "null";
    size_t size = d->plan_json != NULL ? strlen(d->plan_json) + HTTP_DASHBOARD_FRAME_BYTES : 0;
    char *body = size > 0 ? malloc(size) : NULL;
    int len = -1;

    /* Built by hand: every piece is already JSON (plan_json) or can hold nothing to escape
     * (numbers, times, a status from the schema's list), and this answer is on the hot path. */
    http_time_text(ex->quota.reset_at, reset);
    if (d->ends_at != 0) {
        http_time_text(d->ends_at, ends_at);
        snprintf(ends, sizeof(ends), "\"%s\"", ends_at);
    }
    if (body != NULL)
        len = snprintf(body, size,
                       "{\"success\":true,\"dashboard\":{%s,\"subscription\":{\"status\":\"%s\","
                       "\"endsAt\":%s},\"usage\":{\"limit\":%lld,\"used\":%lld,\"remaining\":%lld,"
                       "\"resetAt\":\"%s\"}}}",
                       d->plan_json, d->status, ends, (long long)ex->quota.limit,
                       (long long)ex->quota.used, (long long)ex->quota.remaining, reset);
    if (len < 0 || (size_t)len >= size)
        http_send_error(ex, 500, "InternalError", "Internal error", "");
    else
        http_send(ex, 200, "", body);
    free(body);
}
