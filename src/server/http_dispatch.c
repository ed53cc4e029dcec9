/* SPDX-License-Identifier: MIT */
/* The access decision's first step, and dispatch of a request to its pool. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <civetweb.h>
#include <jansson.h>

#include "http_internal.h"
#include "manas360/err.h"
#include "manas360/log.h"

#define HTTP_WWW_AUTHENTICATE "WWW-Authenticate: Bearer\r\n"
#define HTTP_RETRY_SOON "Retry-After: 1\r\n"
#define HTTP_CTX_TEXT_MAX 512
#define HTTP_QUERY_TEXT_MAX 1024 /* a query name or value, decoded: 254 characters of UTF-8 */
#define HTTP_QUERY_NAMES_MAX 16
#define HTTP_DISPATCH_LOG_MODULE "dispatch"

/* Workers stop this much before the front end gives up, so that work finished in time is
 * also answered in time, and work that is not is rolled back rather than done unseen. */
#define HTTP_DEADLINE_MARGIN_MS 250

void poll_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

static int64_t http_unix_now(void)
{
    return (int64_t)time(NULL);
}

json_t *http_json_text(const char *text, size_t len, size_t max)
{
    char copy[HTTP_CTX_TEXT_MAX + 1];
    size_t available = len;
    json_t *value;

    if (len > max)
        len = max;
    if (len > HTTP_CTX_TEXT_MAX)
        len = HTTP_CTX_TEXT_MAX;
    while (len > 0 && len < available && ((unsigned char)text[len] & 0xC0) == 0x80)
        len--;
    value = json_stringn(text, len);
    if (value != NULL)
        return value;

    memcpy(copy, text, len);
    for (size_t i = 0; i < len; i++) {
        if ((unsigned char)copy[i] >= 0x80 || copy[i] == '\0')
            copy[i] = '?';
    }
    return json_stringn(copy, len);
}

/* The caller's context for a pool: who, from where, which request. */
static json_t *http_ctx_json(const struct http_exchange *ex)
{
    const char *agent = mg_get_header(ex->conn, "User-Agent");
    json_t *ctx = json_object();

    json_object_set_new(ctx, "request_id", json_string(ex->request_id));
    json_object_set_new(ctx, "ip", json_string(ex->req->remote_addr));
    json_object_set_new(ctx, "user_agent",
                        agent != NULL ? http_json_text(agent, strlen(agent), HTTP_CTX_TEXT_MAX)
                                      : json_null());
    if (ex->authenticated) {
        json_object_set_new(ctx, "user_id", json_string(ex->claims.sub));
        json_object_set_new(ctx, "session_id", json_string(ex->claims.sid));
    }
    return ctx;
}

/* Path parameters as a JSON object; values are taken as they came, the pool checks them. */
static json_t *http_params_json(const struct http_exchange *ex)
{
    json_t *params = json_object();

    for (int i = 0; i < ex->match.nparams; i++) {
        const struct route_param *p = &ex->match.params[i];
        char name[32];
        size_t name_len = strcspn(p->name, "/");

        if (name_len >= sizeof(name))
            continue;
        memcpy(name, p->name, name_len);
        name[name_len] = '\0';
        json_object_set_new(params, name, http_json_text(p->value, p->len, HTTP_CTX_TEXT_MAX));
    }
    return params;
}

/*
 * The query string as a JSON object of decoded strings. The first of repeated names wins;
 * a name too long to decode here is dropped.
 */
static json_t *http_query_json(const struct http_exchange *ex)
{
    const char *query = ex->req->query_string;
    json_t *out = json_object();

    while (query != NULL && *query != '\0' && json_object_size(out) < HTTP_QUERY_NAMES_MAX) {
        size_t pair_len = strcspn(query, "&");
        size_t name_len = strcspn(query, "=&");
        char name[HTTP_QUERY_TEXT_MAX];
        char value[HTTP_QUERY_TEXT_MAX];
        int n = mg_url_decode(query, (int)name_len, name, (int)sizeof(name), 1);
        int v = name_len < pair_len
                    ? mg_url_decode(query + name_len + 1, (int)(pair_len - name_len - 1), value,
                                    (int)sizeof(value), 1)
                    : 0;

        /* A value too long to decode, or not UTF-8, is passed as a non-string, which every
         * pool refuses with a 400 naming it, rather than cut or treated as absent. */
        if (n > 0 && json_object_get(out, name) == NULL) {
            json_t *text = v >= 0 ? json_stringn(value, (size_t)v) : NULL;

            json_object_set_new(out, name, text != NULL ? text : json_false());
        }
        query += pair_len + (query[pair_len] == '&');
    }
    return out;
}

/* Joins the parts of a pool request; returns its length, or -1 without memory. */
static int http_payload_build(char **out, const char *ctx, const char *body, const char *params,
                              const char *query, long long deadline_ms)
{
    static const char format[] =
        "{\"ctx\":%s,\"body\":%s,\"params\":%s,\"query\":%s,\"deadline_ms\":%lld}";
    size_t size = sizeof(format) + strlen(ctx) + strlen(body) + strlen(params) + strlen(query) + 24;
    int len;

    *out = malloc(size);
    if (*out == NULL)
        return -1;
    len = snprintf(*out, size, format, ctx, body, params, query, deadline_ms);
    return (len > 0 && (size_t)len < size) ? len : -1;
}

int http_pool_call(struct http_exchange *ex, enum http_pool pool, const char *message,
                   const char *body_json, int timeout_ms, int *status, char **headers, char **body)
{
    json_t *ctx = http_ctx_json(ex);
    json_t *params = http_params_json(ex);
    json_t *query = http_query_json(ex);
    char *ctx_text = json_dumps(ctx, JSON_COMPACT);
    char *params_text = json_dumps(params, JSON_COMPACT);
    char *query_text = json_dumps(query, JSON_COMPACT);
    struct timespec now;
    char *payload = NULL;
    int len;
    int rc = M360_ENOMEM;

    /* The body is spliced in as received: it was checked to be one JSON object. */
    clock_gettime(CLOCK_REALTIME, &now);
    if (ctx_text != NULL && params_text != NULL && query_text != NULL)
        len = http_payload_build(&payload, ctx_text, body_json, params_text, query_text,
                                 (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000 +
                                     (timeout_ms > 2 * HTTP_DEADLINE_MARGIN_MS
                                          ? timeout_ms - HTTP_DEADLINE_MARGIN_MS
                                          : timeout_ms));
    else
        len = -1;

    if (len > 0 && ex->thread != NULL && ex->thread->clients[pool] != NULL)
        rc = pool_client_call(ex->thread->clients[pool], message, payload, (size_t)len, timeout_ms,
                              status, headers, body);
    else if (len > 0)
        rc = M360_EUNAVAILABLE;

    free(payload);
    free(ctx_text);
    free(params_text);
    free(query_text);
    json_decref(ctx);
    json_decref(params);
    json_decref(query);
    return rc;
}

int http_internal_call(struct pool_client *client, int timeout_ms, const char *type,
                       const json_t *body, json_t **reply)
{
    struct timespec now;
    json_t *payload;
    char *text = NULL;
    char *headers = NULL;
    char *answer = NULL;
    int status = 0;
    int rc = M360_ENOMEM;

    clock_gettime(CLOCK_REALTIME, &now);
    payload = json_pack("{s:{}, s:O, s:{}, s:{}, s:I}", "ctx", "body", body, "params", "query",
                        "deadline_ms",
                        (json_int_t)now.tv_sec * 1000 + now.tv_nsec / 1000000 + timeout_ms);
    if (payload != NULL)
        text = json_dumps(payload, JSON_COMPACT);
    if (text == NULL)
        goto done;

    rc = client != NULL ? pool_client_call(client, type, text, strlen(text), timeout_ms, &status,
                                           &headers, &answer)
                        : M360_EUNAVAILABLE;
    if (rc == 0 && status != 200) {
        log_warn(HTTP_DISPATCH_LOG_MODULE, "event=internal_call_refused type=%s status=%d", type,
                 status);
        rc = status == 503 ? M360_EUNAVAILABLE : M360_EINTERNAL;
    }
    if (rc == 0 && reply != NULL) {
        *reply = json_loads(answer, 0, NULL);
        rc = *reply != NULL ? 0 : M360_EINTERNAL;
    }

done:
    free(text);
    free(headers);
    free(answer);
    json_decref(payload);
    return rc;
}

static const struct route_target_pool {
    enum route_target target;
    enum http_pool pool;
} http_target_pools[] = {
    {ROUTE_POOL_AUTH, HTTP_POOL_AUTH},
    {ROUTE_POOL_BILLING, HTTP_POOL_BILLING},
};

static enum http_pool http_pool_of(enum route_target target)
{
    for (size_t i = 0; i < sizeof(http_target_pools) / sizeof(http_target_pools[0]); i++) {
        if (http_target_pools[i].target == target)
            return http_target_pools[i].pool;
    }
    return HTTP_POOL_AUTH;
}

static void http_send_unavailable(struct http_exchange *ex)
{
    http_send_error(ex, 503, "ServiceUnavailable", "A backend service is unavailable, retry soon",
                    HTTP_RETRY_SOON);
}

/* The id of the account a login answer names, for dropping its cached profile. */
static void http_drop_logged_in(struct http_exchange *ex, const char *body)
{
    json_t *reply = json_loads(body, 0, NULL);
    const char *user_id = json_string_value(json_object_get(json_object_get(reply, "user"), "id"));

    if (user_id != NULL)
        user_cache_drop(ex->server->users, user_id);
    json_decref(reply);
}

/*
 * What a successful change means for this process's caches, at once: the database's
 * announcement reaches every process within moments, but the caller's next request may come
 * sooner and must see its own change.
 */
static void http_after_reply(struct http_exchange *ex, int status, const char *body)
{
    const char *message = ex->match.route->message;

    if (status < 200 || status > 299 || strcmp(ex->match.route->method, "GET") == 0)
        return;
    if (ex->authenticated)
        user_cache_drop(ex->server->users, ex->claims.sub);
    else if (ex->match.route->flags & ROUTE_LOGIN)
        http_drop_logged_in(ex, body);

    if (strcmp(message, "auth.logout") == 0) {
        session_cache_end(ex->server->sessions, ex->claims.sid);
    } else if (strcmp(message, "sessions.delete") == 0 && ex->match.nparams == 1 &&
               ex->match.params[0].len == SESSION_ID_BYTES - 1) {
        char sid[SESSION_ID_BYTES];

        /* Ids are compared as text, and tokens carry them in lower case. */
        for (size_t i = 0; i < SESSION_ID_BYTES - 1; i++)
            sid[i] = (char)tolower((unsigned char)ex->match.params[0].value[i]);
        sid[SESSION_ID_BYTES - 1] = '\0';
        session_cache_end(ex->server->sessions, sid);
    }
}

/*
 * Answers from the account cache when it holds the caller; true when it did. A request with
 * a body goes to the pool, which refuses the fields; and while nobody listens for changes,
 * nothing cached is trusted.
 */
static bool http_dispatch_cached(struct http_exchange *ex)
{
    char *body = NULL;

    if (strcmp(ex->body, "{}") != 0 || !watch_connected(ex->server->watch))
        return false;
    if (user_cache_lookup(ex->server->users, ex->claims.sub, http_unix_now(), &body) != 0)
        return false;
    http_send(ex, 200, "", body);
    free(body);
    return true;
}

void http_dispatch(struct http_exchange *ex)
{
    const struct route *route = ex->match.route;
    bool cached = (route->flags & ROUTE_USER_CACHED) != 0;
    uint64_t generation = user_cache_generation(ex->server->users);
    char *headers = NULL;
    char *body = NULL;
    char extra[POOL_HEADERS_MAX_BYTES + sizeof(HTTP_WWW_AUTHENTICATE)];
    int status = 0;
    int rc;

    if (cached && http_dispatch_cached(ex))
        return;
    rc = http_pool_call(ex, http_pool_of(route->target), route->message, ex->body,
                        (int)ex->server->cfg->pool_timeout_s * 1000, &status, &headers, &body);
    if (rc != 0) {
        log_warn(HTTP_DISPATCH_LOG_MODULE, "event=pool_failed message=%s code=%s req_id=%s",
                 route->message, err_str(rc), ex->request_id);
        http_send_unavailable(ex);
        return;
    }

    /* A 401 on a route that needed a token is about that token. */
    snprintf(extra, sizeof(extra), "%s%s", headers,
             (status == 401 && route->guard == ROUTE_AUTHENTICATED) ? HTTP_WWW_AUTHENTICATE : "");
    /* Caches first: the caller's next request may come the moment the answer is out. */
    if (cached && status == 200)
        user_cache_store(ex->server->users, ex->claims.sub, body, http_unix_now(), generation);
    http_after_reply(ex, status, body);
    http_send(ex, status, extra, body);
    free(headers);
    free(body);
}

/* ---- Authentication -------------------------------------------------------------------- */

void http_send_unauthorized(struct http_exchange *ex, const char *error, const char *message)
{
    http_send_error(ex, 401, error, message, HTTP_WWW_AUTHENTICATE);
}

/* The bearer token of the Authorization header, or NULL. */
static const char *http_bearer(struct http_exchange *ex)
{
    const char *header = mg_get_header(ex->conn, "Authorization");

    if (header == NULL || strncasecmp(header, "Bearer ", 7) != 0)
        return NULL;
    header += 7;
    while (*header == ' ')
        header++;
    return *header != '\0' ? header : NULL;
}

/* Loads a session from the auth pool into the cache. */
static int http_session_load(struct http_exchange *ex, int64_t now, struct session_entry *entry)
{
    char request[96];
    char *headers = NULL;
    char *body = NULL;
    json_t *reply = NULL;
    int status = 0;
    int rc;

    snprintf(request, sizeof(request), "{\"session_id\":\"%s\"}", ex->claims.sid);
    rc = http_pool_call(ex, HTTP_POOL_AUTH, "session.get", request,
                        (int)ex->server->cfg->pool_timeout_s * 1000, &status, &headers, &body);
    if (rc == 0 && status == 200)
        reply = json_loads(body, 0, NULL);
    if (reply == NULL) {
        rc = rc != 0 ? rc : M360_EUNAVAILABLE;
        goto done;
    }

    memset(entry, 0, sizeof(*entry));
    snprintf(entry->user_id, sizeof(entry->user_id), "%s",
             json_string_value(json_object_get(reply, "userId")) != NULL
                 ? json_string_value(json_object_get(reply, "userId"))
                 : "");
    entry->ended = !json_is_true(json_object_get(reply, "found")) ||
                   json_is_true(json_object_get(reply, "ended"));
    entry->last_activity = json_integer_value(json_object_get(reply, "lastActivity"));
    entry->expires_at = json_integer_value(json_object_get(reply, "expiresAt"));
    entry->loaded_at = now;
    if (entry->ended)
        session_cache_end(ex->server->sessions, ex->claims.sid);
    else
        session_cache_store(ex->server->sessions, ex->claims.sid, entry);
    rc = 0;

done:
    json_decref(reply);
    free(headers);
    free(body);
    return rc;
}

/* Ends a session found idle, through the auth pool, and here at once. */
static void http_session_end_idle(struct http_exchange *ex)
{
    char request[96];
    char *headers = NULL;
    char *body = NULL;
    int status = 0;

    snprintf(request, sizeof(request), "{\"session_id\":\"%s\"}", ex->claims.sid);
    if (http_pool_call(ex, HTTP_POOL_AUTH, "session.end_idle", request,
                       (int)ex->server->cfg->pool_timeout_s * 1000, &status, &headers, &body) != 0)
        log_warn(HTTP_DISPATCH_LOG_MODULE, "event=idle_end_failed req_id=%s", ex->request_id);
    session_cache_end(ex->server->sessions, ex->claims.sid);
    free(headers);
    free(body);
}

/*
 * Decides whether the token's session is open: ended, past its end, owned by someone else or
 * idle for longer than SESSION_IDLE_TIMEOUT all refuse. An entry that looks idle is loaded
 * again first, since another process may have seen activity this one has not.
 */
static int http_session_check(struct http_exchange *ex)
{
    struct session_cache *cache = ex->server->sessions;
    int64_t idle_limit = ex->server->cfg->session_idle_timeout_s;
    int64_t now = http_unix_now();
    struct session_entry entry;
    bool fresh = false;
    /* While nobody listens for ended sessions, every request asks the database. */
    bool trusted = watch_connected(ex->server->watch);

    for (;;) {
        int64_t last;

        if (!trusted || session_cache_lookup(cache, ex->claims.sid, now, &entry) != 0) {
            if (http_session_load(ex, now, &entry) != 0)
                return M360_EUNAVAILABLE;
            fresh = true;
            trusted = true;
        }
        if (entry.ended || strcmp(entry.user_id, ex->claims.sub) != 0 || now >= entry.expires_at)
            return M360_ENOTFOUND;

        last = entry.last_activity > entry.touched_at ? entry.last_activity : entry.touched_at;
        if (now - last <= idle_limit)
            break;
        if (fresh) {
            http_session_end_idle(ex);
            return M360_ENOTFOUND;
        }
        if (http_session_load(ex, now, &entry) != 0)
            return M360_EUNAVAILABLE;
        fresh = true;
        session_cache_store(cache, ex->claims.sid, &entry);
    }

    session_cache_touch(cache, ex->claims.sid, now);
    return 0;
}

int http_authenticate(struct http_exchange *ex)
{
    const char *token = http_bearer(ex);
    enum token_verdict verdict;
    int rc;

    if (token == NULL) {
        http_send_unauthorized(ex, "Unauthorized", "A bearer access token is required");
        return M360_EINVAL;
    }
    verdict = token_verify(&ex->server->keys, TOKEN_ACCESS, token, http_unix_now(), &ex->claims);
    if (verdict == TOKEN_EXPIRED) {
        http_send_unauthorized(ex, "TokenExpired", "The access token has expired");
        return M360_EINVAL;
    }
    if (verdict != TOKEN_VALID) {
        log_info(HTTP_DISPATCH_LOG_MODULE, "event=token_rejected reason=%s req_id=%s",
                 token_verdict_name(verdict), ex->request_id);
        http_send_unauthorized(ex, "Unauthorized", "The access token is not valid");
        return M360_EINVAL;
    }

    rc = http_session_check(ex);
    if (rc == M360_EUNAVAILABLE) {
        http_send_unavailable(ex);
        return rc;
    }
    if (rc != 0) {
        http_send_unauthorized(ex, "Unauthorized", "The session has ended");
        return rc;
    }
    ex->authenticated = true;
    return 0;
}
