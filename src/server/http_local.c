/* SPDX-License-Identifier: MIT */
/* The front end's own routes: liveness, readiness and metrics. */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "http_internal.h"
#include "manas360/err.h"
#include "manas360/metrics.h"

/* Asks every pool for a ping; each pool's ping runs SELECT 1 on its database connection. */
static void http_readyz(struct http_exchange *ex)
{
    json_t *pools = json_object();
    json_t *body;
    bool ready = watch_connected(ex->server->watch);
    char *text;

    for (int i = 0; i < HTTP_POOLS; i++) {
        char *headers = NULL;
        char *reply = NULL;
        int status = 0;
        int rc = http_pool_call(ex, (enum http_pool)i, "ping", "{}", POOL_PING_TIMEOUT_MS, &status,
                                &headers, &reply);
        bool ok = rc == 0 && status == 200;

        json_object_set_new(pools, ex->server->pool_names[i], json_string(ok ? "ok" : "down"));
        ready = ready && ok;
        free(headers);
        free(reply);
    }

    if (ready)
        body = json_pack("{s:b, s:o}", "success", 1, "pools", pools);
    else
        body = json_pack("{s:b, s:s, s:s, s:o, s:b}", "success", 0, "error", "ServiceUnavailable",
                         "message", "Not ready", "pools", pools, "databaseListener",
                         watch_connected(ex->server->watch));
    text = json_dumps(body, JSON_COMPACT);
    http_send(ex, ready ? 200 : 503, ready ? "" : "Retry-After: 1\r\n",
              text != NULL ? text : "{\"success\":false}");
    free(text);
    json_decref(body);
}

/* Active sessions come from the database through the auth pool: -1 when it cannot say. */
static int64_t http_active_sessions(struct http_exchange *ex)
{
    char *headers = NULL;
    char *reply = NULL;
    json_t *parsed = NULL;
    int64_t active = -1;
    int status = 0;

    if (http_pool_call(ex, HTTP_POOL_AUTH, "auth.stats", "{}", POOL_PING_TIMEOUT_MS, &status,
                       &headers, &reply) == 0 &&
        status == 200)
        parsed = json_loads(reply, 0, NULL);
    if (json_is_integer(json_object_get(parsed, "activeSessions")))
        active = json_integer_value(json_object_get(parsed, "activeSessions"));
    json_decref(parsed);
    free(headers);
    free(reply);
    return active;
}

static void http_metrics(struct http_exchange *ex)
{
    struct metrics_pool pools[HTTP_POOLS];
    char *text = NULL;
    char head[512];

    for (int i = 0; i < HTTP_POOLS; i++) {
        pools[i].name = ex->server->pool_names[i];
        pool_stats_read(&ex->server->stats[i], &pools[i].stats);
    }
    if (metrics_render(pools, HTTP_POOLS, http_active_sessions(ex),
                       session_cache_size(ex->server->sessions), &text) != 0) {
        http_send_error(ex, 500, "InternalError", "Internal error", "");
        return;
    }

    /* The one response that is not JSON: Prometheus reads its own text format. */
    snprintf(head, sizeof(head),
             "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
             "Content-Length: %zu\r\nX-Request-Id: %s\r\n\r\n",
             strlen(text), ex->request_id);
    http_send_raw(ex, 200, head, text);
    free(text);
}

void http_serve_local(struct http_exchange *ex)
{
    switch (ex->match.route->local) {
    case ROUTE_LOCAL_HEALTHZ:
        http_send(ex, 200, "", "{\"success\":true}");
        return;
    case ROUTE_LOCAL_READYZ:
        http_readyz(ex);
        return;
    case ROUTE_LOCAL_METRICS:
        http_metrics(ex);
        return;
    case ROUTE_LOCAL_QUOTA_STATUS:
        http_serve_quota_status(ex);
        return;
    case ROUTE_LOCAL_PREMIUM_DASHBOARD:
        http_serve_dashboard(ex);
        return;
    case ROUTE_LOCAL_NONE:
        break;
    }
    http_send_error(ex, 404, "NotFound", "No such route", "");
}
