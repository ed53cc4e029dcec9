/* SPDX-License-Identifier: MIT */
/* The civetweb front end: one handler, one buffer and one write per response. */
#include "manas360/http.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <civetweb.h>
#include <sodium.h>

#include "manas360/err.h"
#include "manas360/log.h"

#define HTTP_RESPONSE_MAX_BYTES 8192
#define HTTP_REQUEST_TIMEOUT_MS "30000"
#define HTTP_KEEP_ALIVE_TIMEOUT_MS "15000"
#define HTTP_LOG_MODULE "http"

struct http_server {
    struct mg_context *ctx;
};

/* One exchange as the handler sees it. */
struct http_exchange {
    struct mg_connection *conn;
    const struct mg_request_info *req;
    char request_id[HTTP_REQUEST_ID_MAX + 1];
};

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

static const char *http_reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    default:
        return "Internal Server Error";
    }
}

/*
 * Sends status line, headers and body with one write: several small writes with
 * TCP_NODELAY cost a packet each, and without it meet delayed ACKs.
 */
static void http_send(struct http_exchange *ex, int status, const char *extra_headers,
                      const char *body)
{
    char response[HTTP_RESPONSE_MAX_BYTES];
    int len =
        snprintf(response, sizeof(response),
                 "HTTP/1.1 %d %s\r\n"
                 "Content-Type: application/json; charset=utf-8\r\n"
                 "Content-Length: %zu\r\n"
                 "X-Request-Id: %s\r\n"
                 "%s"
                 "\r\n"
                 "%s",
                 status, http_reason(status), strlen(body), ex->request_id, extra_headers, body);

    if (len < 0 || (size_t)len >= sizeof(response)) {
        log_err(HTTP_LOG_MODULE, "event=response_too_large req_id=%s", ex->request_id);
        return;
    }
    mg_write(ex->conn, response, (size_t)len);
    log_info(HTTP_LOG_MODULE, "event=request method=%s route=%s status=%d req_id=%s",
             ex->req->request_method, status == 404 ? "unknown" : ex->req->local_uri, status,
             ex->request_id);
}

static int http_handle(struct mg_connection *conn, void *data)
{
    struct http_exchange ex = {conn, mg_get_request_info(conn), {0}};

    (void)data;
    http_request_id(mg_get_header(conn, "X-Request-Id"), ex.request_id);

    if (strcmp(ex.req->local_uri, "/healthz") != 0) {
        http_send(&ex, 404, "",
                  "{\"success\":false,\"error\":\"NotFound\",\"message\":\"No such route\"}");
    } else if (strcmp(ex.req->request_method, "GET") != 0) {
        http_send(&ex, 405, "Allow: GET\r\n",
                  "{\"success\":false,\"error\":\"MethodNotAllowed\","
                  "\"message\":\"Method not allowed on this route\"}");
    } else {
        http_send(&ex, 200, "", "{\"success\":true}");
    }
    return 200;
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

struct http_server *http_server_new(const struct cfg *cfg)
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
    snprintf(port, sizeof(port), "%d", cfg->port);
    snprintf(threads, sizeof(threads), "%d", cfg->http_threads);
    callbacks.log_message = http_log_message;

    mg_init_library(0);
    server->ctx = mg_start(&callbacks, server, options);
    if (server->ctx == NULL) {
        log_err(HTTP_LOG_MODULE, "event=listen_failed port=%d", cfg->port);
        http_server_destroy(&server);
        return NULL;
    }
    mg_set_request_handler(server->ctx, "/", http_handle, server);
    log_notice(HTTP_LOG_MODULE, "event=listening port=%d threads=%d", cfg->port, cfg->http_threads);
    return server;
}

void http_server_destroy(struct http_server **server)
{
    if (server == NULL || *server == NULL)
        return;
    if ((*server)->ctx != NULL)
        mg_stop((*server)->ctx);
    mg_exit_library();
    free(*server);
    *server = NULL;
}
