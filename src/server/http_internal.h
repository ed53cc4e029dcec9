/* SPDX-License-Identifier: MIT */
/* What the front end's files share: the server, a request thread and one exchange. */
#ifndef MANAS360_HTTP_INTERNAL_H
#define MANAS360_HTTP_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <pthread.h>

#include "manas360/audit_queue.h"
#include "manas360/authz.h"
#include "manas360/http.h"
#include "manas360/pool.h"
#include "manas360/quota.h"
#include "manas360/route.h"
#include "manas360/session.h"
#include "manas360/token.h"
#include "manas360/user_cache.h"
#include "manas360/watch.h"

enum http_pool {
    HTTP_POOL_AUTH,
    HTTP_POOL_BILLING,
    HTTP_POOL_AUDIT,
    HTTP_POOL_NOTIFIER,
    HTTP_POOLS,
};

struct http_server {
    struct mg_context *ctx;
    const struct cfg *cfg;
    void *zmq_ctx;
    struct token_keys keys;
    const char *endpoints[HTTP_POOLS];
    const char *pool_names[HTTP_POOLS];
    struct pool_stats stats[HTTP_POOLS]; /* shared by every thread's clients (atomics) */
    struct session_cache *sessions;
    struct user_cache *users;
    struct authz_cache *authz;
    struct quota *quota;
    struct audit_queue *audit;     /* access denials, sent to the audit pool in batches */
    struct watch *watch;           /* LISTENs for ended sessions and changed accounts */
    pthread_t housekeeping_thread; /* activity, quota settlements and audit batches */
    bool housekeeping_started;
    bool library_ready;
    atomic_bool stopping; /* the housekeeping threads end */
    atomic_bool draining; /* new requests get 503 while in-flight ones finish */
    atomic_int in_flight; /* requests inside http_handle */
};

/* A civetweb request thread's own state. */
struct http_thread {
    struct pool_client *clients[HTTP_POOLS];
};

/* One request and what has been learnt about it so far. */
struct http_exchange {
    struct http_server *server;
    struct mg_connection *conn;
    const struct mg_request_info *req;
    struct http_thread *thread;
    char request_id[HTTP_REQUEST_ID_MAX + 1];
    struct route_match match;
    char *body; /* NUL-terminated; "{}" when the request had none */
    size_t body_len;
    bool authenticated;
    struct token_claims claims;
    struct authz_decision decision; /* steps 2 to 4, when the route needed them */
    struct quota_state quota;       /* after the unit this request took, on metered routes */
    bool quota_taken;               /* given back when the answer is not a success */
    char guard_headers[160];        /* X-RateLimit-* lines every answer of a metered route has */
    bool close;                     /* the connection cannot be reused after this answer */
    int status;                     /* the status sent, for the access log */
    int64_t started_us;
};

int64_t http_now_us(void);

/* Sleeps, for the front end's housekeeping threads. */
void poll_sleep_ms(int ms);

/* Sends a response: status, extra header lines (each ending "\r\n") and a JSON body. */
void http_send(struct http_exchange *ex, int status, const char *extra_headers, const char *body);

/* Sends a response whose status line and headers are already rendered in `head`. */
void http_send_raw(struct http_exchange *ex, int status, const char *head, const char *body);

/* Sends the contract's error body. */
void http_send_error(struct http_exchange *ex, int status, const char *error, const char *message,
                     const char *extra_headers);

/* 401 with the contract's error body and the WWW-Authenticate challenge. */
void http_send_unauthorized(struct http_exchange *ex, const char *error, const char *message);

/* Sends the contract's error body with the members of `extra` (stolen, may be NULL). */
void http_send_error_with(struct http_exchange *ex, int status, const char *error,
                          const char *message, json_t *extra, const char *extra_headers);

/*
 * A JSON string of at most `max` bytes of `text` (cut at a character boundary); bytes that
 * are not UTF-8 become '?', since clients send headers and paths in any encoding.
 */
json_t *http_json_text(const char *text, size_t len, size_t max);

/*
 * Sends an internal message (no caller context) to a pool through `client` and, when
 * `reply` is not NULL, parses the 200 answer into it. Returns 0, M360_EUNAVAILABLE,
 * M360_ETIMEDOUT, or M360_EINTERNAL when the pool answered with another status.
 */
int http_internal_call(struct pool_client *client, int timeout_ms, const char *type,
                       const json_t *body, json_t **reply);

/*
 * The access decision's steps 2 to 5 for the route's guard: permission, subscription,
 * features, quota. Sends the denial (or a 503) itself, audits it, and returns non-zero when
 * the request stops here.
 */
int http_guard(struct http_exchange *ex);

/* Gives back the quota unit of a request whose answer was not a success. */
void http_guard_finish(struct http_exchange *ex);

/* GET /api/api/status and the premium dashboard, from what the guard established. */
void http_serve_quota_status(struct http_exchange *ex);
void http_serve_dashboard(struct http_exchange *ex);

/* A quota backend over `client`, for the housekeeping thread's settlements. */
struct http_quota_link {
    struct pool_client *client;
    int timeout_ms;
};
void http_quota_backend(struct http_quota_link *link, struct quota_backend *out);

/*
 * The access decision's first step: a valid access token of an open session. Sends the 401
 * (or 503) itself and returns non-zero when the request stops here.
 */
int http_authenticate(struct http_exchange *ex);

/*
 * Calls `pool` with `message` and a payload of the exchange's context, `body_json` (JSON text
 * of an object) and path parameters. On success fills *status, *headers and *body (caller
 * frees). Returns 0, M360_ETIMEDOUT or M360_EUNAVAILABLE.
 */
int http_pool_call(struct http_exchange *ex, enum http_pool pool, const char *message,
                   const char *body_json, int timeout_ms, int *status, char **headers, char **body);

/* Sends the request to its route's pool and relays the answer. */
void http_dispatch(struct http_exchange *ex);

/* Answers the front end's own routes: /healthz, /readyz, /metrics. */
void http_serve_local(struct http_exchange *ex);

#endif
