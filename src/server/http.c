/* SPDX-License-Identifier: MIT */
/*
 * The civetweb front end. One request runs: route (404/405), body (413), access decision
 * (401, then 403/402/403/429 in http_guard.c), body checks (415/400), then a local answer
 * or a pool call with a deadline (503).
 */
#include "manas360/http.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <civetweb.h>
#include <jansson.h>
#include <sodium.h>
#include <zmq.h>

#include "http_internal.h"
#include "manas360/audit_row.h"
#include "manas360/err.h"
#include "manas360/input.h"
#include "manas360/log.h"
#include "manas360/metrics.h"

#define HTTP_HEAD_MAX_BYTES 1024
#define HTTP_REQUEST_TIMEOUT_MS "30000"
#define HTTP_KEEP_ALIVE_TIMEOUT_MS "15000"
#define HTTP_ACTIVITY_FLUSH_MS 5000
#define HTTP_HOUSEKEEPING_TICK_MS 100
#define HTTP_AUDIT_LINGER_MS 2000
#define HTTP_ACTIVITY_BATCH 1000
#define HTTP_DRAIN_MS 10000     /* how long shutdown waits for requests in flight */
#define HTTP_WATCH_WAIT_MS 5000 /* how long start waits for the LISTEN connection */
#define HTTP_LOG_MODULE "http"

static const char *const http_pool_names[HTTP_POOLS] = {"auth", "billing", "audit", "notifier"};

void http_request_id(const char *incoming, char *out)
{
    unsigned char raw[16];
    size_t len = incoming != NULL ? strlen(incoming) : 0;

    if (len >= 1 && len <= HTTP_REQUEST_ID_MAX &&
        strspn(incoming, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") ==
            len) {
        memcpy(out, incoming, len + 1);
        return;
    }
    randombytes_buf(raw, sizeof(raw));
    sodium_bin2hex(out, HTTP_REQUEST_ID_MAX + 1, raw, sizeof(raw));
}

int http_json_depth_check(const char *body, size_t len, int max_depth)
{
    bool in_string = false;
    int depth = 0;

    for (size_t i = 0; i < len; i++) {
        char c = body[i];

        if (in_string) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '{' || c == '[') {
            if (++depth > max_depth)
                return M360_EINVAL;
        } else if (c == '}' || c == ']') {
            depth--;
        }
    }
    return 0;
}

static const char *http_reason(int status)
{
    static const struct {
        int status;
        const char *reason;
    } reasons[] = {
        {200, "OK"},
        {201, "Created"},
        {202, "Accepted"},
        {400, "Bad Request"},
        {401, "Unauthorized"},
        {402, "Payment Required"},
        {403, "Forbidden"},
        {404, "Not Found"},
        {405, "Method Not Allowed"},
        {409, "Conflict"},
        {413, "Payload Too Large"},
        {415, "Unsupported Media Type"},
        {429, "Too Many Requests"},
        {503, "Service Unavailable"},
    };

    for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++) {
        if (reasons[i].status == status)
            return reasons[i].reason;
    }
    return "Internal Server Error";
}

int64_t http_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/*
 * Sends rendered head and body with one write: several small writes cost a packet each with
 * TCP_NODELAY, and meet delayed ACKs without it.
 */
void http_send_raw(struct http_exchange *ex, int status, const char *head, const char *body)
{
    char stack[4096];
    size_t head_len = strlen(head);
    size_t body_len = strlen(body);
    char *response = head_len + body_len <= sizeof(stack) ? stack : malloc(head_len + body_len);

    ex->status = status;
    if (response == NULL) {
        /* Two writes cost a packet more; no answer at all would cost the client its wait. */
        mg_write(ex->conn, head, head_len);
        mg_write(ex->conn, body, body_len);
        return;
    }
    memcpy(response, head, head_len);
    memcpy(response + head_len, body, body_len);
    mg_write(ex->conn, response, head_len + body_len);
    if (response != stack)
        free(response);
}

void http_send(struct http_exchange *ex, int status, const char *extra_headers, const char *body)
{
    char head[HTTP_HEAD_MAX_BYTES + POOL_HEADERS_MAX_BYTES + sizeof(ex->guard_headers)];
    int len = snprintf(head, sizeof(head),
                       "HTTP/1.1 %d %s\r\n"
                       "Content-Type: application/json; charset=utf-8\r\n"
                       "Content-Length: %zu\r\n"
                       "X-Request-Id: %s\r\n"
                       "%s%s%s%s\r\n",
                       status, http_reason(status), strlen(body), ex->request_id,
                       (ex->match.route != NULL && (ex->match.route->flags & ROUTE_NO_STORE))
                           ? "Cache-Control: no-store\r\n"
                           : "",
                       ex->close ? "Connection: close\r\n" : "", ex->guard_headers, extra_headers);

    if (len < 0 || (size_t)len >= sizeof(head)) {
        static const char fallback[] =
            "HTTP/1.1 500 Internal Server Error\r\n"
            "Content-Type: application/json; charset=utf-8\r\nContent-Length: 61\r\n"
            "Connection: close\r\n\r\n"
            "{\"success\":false,\"error\":\"InternalError\",\"message\":\"Error\"}";

        log_err(HTTP_LOG_MODULE, "event=response_head_too_large req_id=%s", ex->request_id);
        ex->status = 500;
        mg_write(ex->conn, fallback, sizeof(fallback) - 1);
        return;
    }
    http_send_raw(ex, status, head, body);
}

void http_send_error(struct http_exchange *ex, int status, const char *error, const char *message,
                     const char *extra_headers)
{
    http_send_error_with(ex, status, error, message, NULL, extra_headers);
}

void http_send_error_with(struct http_exchange *ex, int status, const char *error,
                          const char *message, json_t *extra, const char *extra_headers)
{
    json_t *body = json_pack("{s:b, s:s, s:s}", "success", 0, "error", error, "message", message);
    char *text;

    if (body != NULL && extra != NULL)
        json_object_update(body, extra);
    json_decref(extra);
    text = body != NULL ? json_dumps(body, JSON_COMPACT) : NULL;

    http_send(ex, status, extra_headers, text != NULL ? text : "{\"success\":false}");
    free(text);
    json_decref(body);
}

/* Reads the body, refusing more than HTTP_BODY_MAX_BYTES from the header or while reading. */
static int http_read_body(struct http_exchange *ex)
{
    long long declared = ex->req->content_length;
    char *buf;
    size_t len = 0;
    int n = 0;

    if (declared > HTTP_BODY_MAX_BYTES)
        return M360_EINVAL;
    if (declared == 0 || (declared < 0 && mg_get_header(ex->conn, "Transfer-Encoding") == NULL))
        return 0;

    /* A chunked body has no declared length: it is read up to one byte past the limit. */
    buf = malloc(HTTP_BODY_MAX_BYTES + 1);
    if (buf == NULL)
        return M360_ENOMEM;
    while (len <= HTTP_BODY_MAX_BYTES &&
           (n = mg_read(ex->conn, buf + len, HTTP_BODY_MAX_BYTES + 1 - len)) > 0)
        len += (size_t)n;
    if (len > HTTP_BODY_MAX_BYTES) {
        free(buf);
        return M360_EINVAL;
    }
    if (n < 0 || (declared > 0 && len < (size_t)declared)) {
        /* A broken chunk or a body cut short: what arrived is not what was sent. */
        free(buf);
        return M360_EIO;
    }
    buf[len] = '\0';
    ex->body = buf;
    ex->body_len = len;
    return 0;
}

/* application/json, with or without parameters such as charset. */
static bool http_is_json(const char *content_type)
{
    static const char json_type[] = "application/json";
    size_t n = sizeof(json_type) - 1;

    if (content_type == NULL || strncasecmp(content_type, json_type, n) != 0)
        return false;
    return content_type[n] == '\0' || content_type[n] == ';' || content_type[n] == ' ';
}

/*
 * Checks the body: 415 without a JSON content type, 400 InvalidJson unless it is one JSON
 * object, and, for a route that takes no fields (`fields_allowed` false), 400
 * ValidationError when the object has members. A blank body becomes "{}".
 */
static int http_check_body(struct http_exchange *ex, bool fields_allowed)
{
    json_error_t error;
    json_t *fields = NULL;
    json_t *parsed;
    bool blank = ex->body == NULL || strspn(ex->body, " \t\r\n") == ex->body_len;

    if (ex->body_len > 0 && !http_is_json(mg_get_header(ex->conn, "Content-Type"))) {
        http_send_error(ex, 415, "UnsupportedMediaType", "Send the body as application/json", "");
        return M360_EINVAL;
    }
    if (blank) {
        free(ex->body);
        ex->body = strdup("{}");
        ex->body_len = 2;
        return ex->body != NULL ? 0 : M360_ENOMEM;
    }
    if (http_json_depth_check(ex->body, ex->body_len, HTTP_JSON_DEPTH_MAX) != 0) {
        http_send_error(ex, 400, "InvalidJson", "The body nests too deeply", "");
        return M360_EINVAL;
    }

    /* NUL escapes parse here so the field checks can name the field that holds one. */
    parsed = json_loadb(ex->body, ex->body_len, JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES, &error);
    if (parsed == NULL || !json_is_object(parsed)) {
        http_send_error(ex, 400, "InvalidJson", "The body must be one JSON object", "");
        json_decref(parsed);
        return M360_EINVAL;
    }
    /* With no field allowed, every member is reported as the pools report unknown ones. */
    if (!fields_allowed && input_check(parsed, NULL, 0, &fields) != 0) {
        if (fields != NULL)
            http_send_error_with(ex, 400, "ValidationError", "Validation failed",
                                 json_pack("{s:o}", "fields", fields), "");
        else
            http_send_error(ex, 500, "InternalError", "Internal error", "");
        json_decref(parsed);
        return M360_EINVAL;
    }
    json_decref(parsed);
    return 0;
}

static void http_access_log(const struct http_exchange *ex)
{
    int64_t latency_us = http_now_us() - ex->started_us;

    metrics_request(ex->match.route != NULL ? route_index(ex->match.route) : -1, ex->status,
                    latency_us);
    if (ex->match.route != NULL && (ex->match.route->flags & ROUTE_LOGIN))
        metrics_login(ex->status);
    log_info(HTTP_LOG_MODULE,
             "event=request method=%s route=%s status=%d latency_us=%lld req_id=%s user_id=%s",
             ex->match.route != NULL ? ex->match.route->method : "-",
             ex->match.route != NULL ? ex->match.route->pattern : "unmatched", ex->status,
             (long long)latency_us, ex->request_id, ex->authenticated ? ex->claims.sub : "-");
}

/* Routes, reads and checks one request; the answer is sent by whichever step decides. */
static void http_serve(struct http_exchange *ex)
{
    int rc = route_find(ex->req->request_method, ex->req->local_uri, &ex->match);

    if (rc == M360_ENOTFOUND) {
        http_send_error(ex, 404, "NotFound", "No such route", "");
        return;
    }
    if (rc != 0) {
        char allow[ROUTE_ALLOW_MAX_BYTES + 16];
        snprintf(allow, sizeof(allow), "Allow: %s\r\n", ex->match.allow);
        http_send_error(ex, 405, "MethodNotAllowed", "Method not allowed on this route", allow);
        return;
    }

    rc = http_read_body(ex);
    if (rc != 0) {
        /* The rest of the body is never read, so the connection cannot be reused. */
        ex->close = true;
        mg_disable_connection_keep_alive(ex->conn);
        if (rc == M360_EIO)
            http_send_error(ex, 400, "InvalidJson", "The body could not be read whole", "");
        else
            http_send_error(ex, 413, "PayloadTooLarge", "The body is larger than 64 KiB", "");
        return;
    }

    if (ex->match.route->guard == ROUTE_AUTHENTICATED &&
        (http_authenticate(ex) != 0 || http_guard(ex) != 0))
        return;
    /* Local answers take no fields; a pool checks the fields of its own messages. */
    if (http_check_body(ex, ex->match.route->target != ROUTE_LOCAL) != 0)
        return;
    if (ex->match.route->target == ROUTE_LOCAL) {
        http_serve_local(ex);
        return;
    }
    http_dispatch(ex);
}

static int http_handle(struct mg_connection *conn, void *data)
{
    struct http_exchange ex = {
        .server = data,
        .conn = conn,
        .req = mg_get_request_info(conn),
        .thread = mg_get_thread_pointer(conn),
        .started_us = http_now_us(),
        .status = 500,
    };

    atomic_fetch_add(&ex.server->in_flight, 1);
    http_request_id(mg_get_header(conn, "X-Request-Id"), ex.request_id);
    if (atomic_load(&ex.server->draining)) {
        ex.close = true;
        mg_disable_connection_keep_alive(conn);
        http_send_error(&ex, 503, "ServiceUnavailable", "The server is shutting down",
                        "Retry-After: 1\r\n");
    } else {
        http_serve(&ex);
    }
    http_guard_finish(&ex);
    authz_decision_release(&ex.decision);
    http_access_log(&ex);
    free(ex.body);
    atomic_fetch_sub(&ex.server->in_flight, 1);
    return ex.status;
}

/*
 * Errors civetweb decides itself (a malformed request line or header) still get the
 * contract's JSON body and a request id.
 */
static int http_error_page(struct mg_connection *conn, int status, const char *message)
{
    static const struct {
        int status;
        const char *error;
    } codes[] = {{400, "ValidationError"},      {404, "NotFound"},
                 {405, "MethodNotAllowed"},     {413, "PayloadTooLarge"},
                 {415, "UnsupportedMediaType"}, {503, "ServiceUnavailable"}};
    struct http_exchange ex = {.conn = conn, .req = mg_get_request_info(conn), .status = status};
    const char *error = "InternalError";

    (void)message;
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        if (codes[i].status == status)
            error = codes[i].error;
    }
    http_request_id(mg_get_header(conn, "X-Request-Id"), ex.request_id);
    ex.close = true;
    http_send_error(&ex, status == 200 ? 500 : status, error, "The request could not be read", "");
    return 0;
}

/* civetweb reports its own failures through this callback; they go to our log. */
static int http_log_message(const struct mg_connection *conn, const char *message)
{
    char quoted[512];

    (void)conn;
    log_warn(HTTP_LOG_MODULE, "event=civetweb_message text=%s",
             log_quote(quoted, sizeof(quoted), message));
    return 1;
}

/* Each request thread gets its own pool clients: ZeroMQ sockets belong to one thread. */
static void *http_thread_init(const struct mg_context *ctx, int thread_type)
{
    struct http_server *server = mg_get_user_data(ctx);
    struct http_thread *thread;

    if (thread_type != 1)
        return NULL;
    thread = calloc(1, sizeof(*thread));
    for (int i = 0; thread != NULL && i < HTTP_POOLS; i++)
        thread->clients[i] =
            pool_client_new(server->zmq_ctx, server->endpoints[i], &server->stats[i]);
    return thread;
}

static void http_thread_exit(const struct mg_context *ctx, int thread_type, void *pointer)
{
    struct http_thread *thread = pointer;

    (void)ctx;
    (void)thread_type;
    if (thread == NULL)
        return;
    for (int i = 0; i < HTTP_POOLS; i++)
        pool_client_destroy(&thread->clients[i]);
    free(thread);
}

/* Writes pending session activity to the auth pool in batches. */
static void http_activity_flush(struct http_server *server, struct pool_client *client)
{
    struct session_activity batch[HTTP_ACTIVITY_BATCH];
    int n;

    while ((n = session_cache_take_activity(server->sessions, batch, HTTP_ACTIVITY_BATCH)) > 0) {
        json_t *rows = json_array();
        json_t *body;

        for (int i = 0; i < n; i++)
            json_array_append_new(
                rows, json_pack("[s, I]", batch[i].session_id, (json_int_t)batch[i].at));
        body = json_pack("{s:o}", "sessions", rows);
        if (body == NULL || http_internal_call(client, (int)server->cfg->pool_timeout_s * 1000,
                                               "session.touch", body, NULL) != 0)
            log_warn(HTTP_LOG_MODULE, "event=activity_flush_failed sessions=%d", n);
        json_decref(body);
    }
}

/* Pushes queued audit events to the audit writer as COPY rows; what cannot be sent now
 * waits in the queue. */
static void http_audit_flush(struct http_server *server, void *push)
{
    struct audit_rows rows = {0};
    json_t *events;

    while (push != NULL && (events = audit_queue_take(server->audit)) != NULL) {
        size_t i;
        json_t *event;

        audit_rows_reset(&rows);
        json_array_foreach(events, i, event) audit_rows_add(&rows, event);
        if (rows.failed ||
            (rows.len > 0 && zmq_send(push, rows.data, rows.len, ZMQ_DONTWAIT) < 0)) {
            audit_queue_requeue(server->audit, events);
            break;
        }
        json_decref(events);
    }
    audit_rows_release(&rows);
}

/*
 * A PUSH socket to the audit writer. Messages queue only for a connected writer, so while
 * there is none, events wait in the bounded queue here; on close, what was sent is still
 * delivered for up to HTTP_AUDIT_LINGER_MS.
 */
static void *http_audit_push_new(struct http_server *server)
{
    void *push = zmq_socket(server->zmq_ctx, ZMQ_PUSH);
    int immediate = 1;
    int linger = HTTP_AUDIT_LINGER_MS;

    if (push == NULL)
        return NULL;
    zmq_setsockopt(push, ZMQ_IMMEDIATE, &immediate, sizeof(immediate));
    zmq_setsockopt(push, ZMQ_LINGER, &linger, sizeof(linger));
    if (zmq_connect(push, server->cfg->audit_ingest_endpoint) != 0) {
        log_err(HTTP_LOG_MODULE, "event=audit_connect_failed endpoint=%s",
                server->cfg->audit_ingest_endpoint);
        zmq_close(push);
        return NULL;
    }
    return push;
}

/*
 * The front end's housekeeping: audit batches every tick, quota settlements and session
 * activity less often, and everything once more on the way out, after the last request.
 */
static void *http_housekeeping_main(void *arg)
{
    struct http_server *server = arg;
    struct pool_client *clients[HTTP_POOLS] = {NULL};
    struct http_quota_link link = {NULL, (int)server->cfg->pool_timeout_s * 1000};
    struct quota_backend backend;
    void *audit_push = http_audit_push_new(server);
    bool last = false;
    int64_t ticks = 0;

    for (int i = 0; i < HTTP_POOLS; i++)
        clients[i] = pool_client_new(server->zmq_ctx, server->endpoints[i], &server->stats[i]);
    link.client = clients[HTTP_POOL_BILLING];
    http_quota_backend(&link, &backend);

    while (!last) {
        poll_sleep_ms(HTTP_HOUSEKEEPING_TICK_MS);
        last = atomic_load(&server->stopping);
        ticks++;
        if (last || ticks % (QUOTA_SETTLE_INTERVAL_MS / HTTP_HOUSEKEEPING_TICK_MS) == 0)
            quota_settle(server->quota, &backend, (int64_t)time(NULL), last);
        if ((last || ticks % (HTTP_ACTIVITY_FLUSH_MS / HTTP_HOUSEKEEPING_TICK_MS) == 0) &&
            clients[HTTP_POOL_AUTH] != NULL)
            http_activity_flush(server, clients[HTTP_POOL_AUTH]);
        http_audit_flush(server, audit_push);
    }

    for (int i = 0; i < HTTP_POOLS; i++)
        pool_client_destroy(&clients[i]);
    if (audit_push != NULL)
        zmq_close(audit_push);
    return NULL;
}

static void http_session_ended(void *arg, const char *payload)
{
    struct http_server *server = arg;

    if (strlen(payload) == SESSION_ID_BYTES - 1)
        session_cache_end(server->sessions, payload);
}

static void http_account_changed(void *arg, const char *payload)
{
    struct http_server *server = arg;

    /* Sessions hold whether their account is active: a changed account's are loaded again. */
    user_cache_drop(server->users, payload);
    authz_drop(server->authz, payload);
    quota_forget(server->quota, payload);
    if (strcmp(payload, "*") != 0)
        session_cache_forget_user(server->sessions, payload);
}

/* After a gap in listening, nothing cached can be trusted: tombstones alone stay true. */
static void http_caches_flush(void *arg)
{
    struct http_server *server = arg;

    session_cache_flush(server->sessions);
    user_cache_drop(server->users, "*");
    authz_drop(server->authz, "*");
    quota_forget(server->quota, "*");
}

static struct watch *http_watch_start(struct http_server *server)
{
    const struct watch_channel channels[] = {
        {SESSION_CHANNEL, http_session_ended, server},
        {USER_CACHE_CHANNEL, http_account_changed, server},
    };

    return watch_new(server->cfg, channels, 2, http_caches_flush, server);
}

/*
 * Gives the listening connection a moment before the first request, so a server that answers
 * at all is ready too; a database that is slow to answer is reported by /readyz instead.
 */
static void http_watch_wait(struct watch *watch)
{
    for (int waited = 0; waited < HTTP_WATCH_WAIT_MS && !watch_connected(watch); waited += 10)
        poll_sleep_ms(10);
    if (!watch_connected(watch))
        log_warn(HTTP_LOG_MODULE, "event=listener_not_connected waited_ms=%d", HTTP_WATCH_WAIT_MS);
}

struct http_server *http_server_new(const struct cfg *cfg, void *zmq_ctx)
{
    struct http_server *server = calloc(1, sizeof(*server));
    struct mg_callbacks callbacks = {0};
    char port[16];
    char threads[16];
    const char *options[] = {
        "listening_ports",
        port,
        "num_threads",
        threads,
        "enable_keep_alive",
        "yes",
        "tcp_nodelay",
        "1",
        "request_timeout_ms",
        HTTP_REQUEST_TIMEOUT_MS,
        "keep_alive_timeout_ms",
        HTTP_KEEP_ALIVE_TIMEOUT_MS,
        NULL,
    };

    if (server == NULL)
        return NULL;
    server->cfg = cfg;
    server->zmq_ctx = zmq_ctx;
    server->keys = (struct token_keys){cfg->jwt_secret, cfg->jwt_refresh_secret, cfg->jwt_expiry_s,
                                       cfg->jwt_refresh_expiry_s};
    server->endpoints[HTTP_POOL_AUTH] = cfg->auth_endpoint;
    server->endpoints[HTTP_POOL_BILLING] = cfg->billing_endpoint;
    server->endpoints[HTTP_POOL_AUDIT] = cfg->audit_endpoint;
    server->endpoints[HTTP_POOL_NOTIFIER] = cfg->notifier_endpoint;
    for (int i = 0; i < HTTP_POOLS; i++)
        server->pool_names[i] = http_pool_names[i];
    atomic_init(&server->stopping, false);
    atomic_init(&server->draining, false);
    atomic_init(&server->in_flight, 0);

    server->sessions = session_cache_new();
    server->users = user_cache_new();
    server->authz = authz_cache_new();
    server->quota = quota_new();
    server->audit = audit_queue_new();
    if (server->sessions == NULL || server->users == NULL || server->authz == NULL ||
        server->quota == NULL || server->audit == NULL)
        goto fail;
    server->watch = http_watch_start(server);
    if (server->watch != NULL)
        http_watch_wait(server->watch);
    if (server->watch == NULL ||
        pthread_create(&server->housekeeping_thread, NULL, http_housekeeping_main, server) != 0)
        goto fail;
    server->housekeeping_started = true;

    snprintf(port, sizeof(port), "%d", cfg->port);
    snprintf(threads, sizeof(threads), "%d", cfg->http_threads);
    callbacks.log_message = http_log_message;
    callbacks.http_error = http_error_page;
    callbacks.init_thread = http_thread_init;
    callbacks.exit_thread = http_thread_exit;
    mg_init_library(0);
    server->library_ready = true;
    server->ctx = mg_start(&callbacks, server, options);
    if (server->ctx == NULL) {
        log_err(HTTP_LOG_MODULE, "event=listen_failed port=%d", cfg->port);
        goto fail;
    }
    mg_set_request_handler(server->ctx, "/", http_handle, server);
    log_notice(HTTP_LOG_MODULE, "event=listening port=%d threads=%d", cfg->port, cfg->http_threads);
    return server;

fail:
    http_server_destroy(&server);
    return NULL;
}

void http_server_destroy(struct http_server **server_ptr)
{
    struct http_server *server = server_ptr != NULL ? *server_ptr : NULL;

    if (server == NULL)
        return;

    /*
     * civetweb stops writing the moment mg_stop begins, so requests in flight must finish
     * before it: new ones are turned away meanwhile. Their activity is then written by the
     * last flush.
     */
    atomic_store(&server->draining, true);
    for (int waited = 0; waited < HTTP_DRAIN_MS && atomic_load(&server->in_flight) > 0;
         waited += 10)
        poll_sleep_ms(10);
    if (server->ctx != NULL)
        mg_stop(server->ctx);
    if (server->library_ready)
        mg_exit_library();
    atomic_store(&server->stopping, true);
    if (server->housekeeping_started)
        pthread_join(server->housekeeping_thread, NULL);
    watch_destroy(&server->watch);
    session_cache_destroy(&server->sessions);
    user_cache_destroy(&server->users);
    authz_cache_destroy(&server->authz);
    quota_destroy(&server->quota);
    audit_queue_destroy(&server->audit);
    free(server);
    *server_ptr = NULL;
}
