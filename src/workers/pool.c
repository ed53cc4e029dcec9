/* SPDX-License-Identifier: MIT */
/*
 * The worker runtime. A broker thread sits between the pool's public ROUTER socket and its
 * workers: it hands each request to an idle worker only, so a slow request (a password
 * hash) never holds up a quick one queued behind it on the same thread.
 */
#include "manas360/pool.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <zmq.h>

#include "manas360/err.h"
#include "manas360/log.h"

#define POOL_THREADS_MAX 64
#define POOL_FRAMES_MAX 8
#define POOL_POLL_MS 100
#define POOL_DRAIN_MS 10000 /* how long shutdown waits for requests a worker holds */
#define POOL_READY "READY"
#define POOL_LOG_MODULE "pool"

/* One worker thread: what its handlers see, and what the runtime keeps beside it. */
struct pool_thread {
    struct pool_worker worker;
    struct pool *pool;
    pthread_t thread;
    bool started;
};

struct pool {
    const struct pool_def *def;
    const struct cfg *cfg;
    void *zmq_ctx;
    void *frontend; /* ROUTER bound on the public endpoint; owned by the broker thread */
    void *backend;  /* ROUTER bound on an inproc endpoint the workers connect to */
    char backend_endpoint[96];
    pthread_t broker;
    bool broker_started;
    struct pool_thread threads[POOL_THREADS_MAX];
    int nthreads;
    atomic_bool stopping;
};

/* One message of up to POOL_FRAMES_MAX frames. */
struct pool_msg {
    zmq_msg_t frames[POOL_FRAMES_MAX];
    int count;
};

static int64_t pool_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t pool_monotonic_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void pool_msg_close(struct pool_msg *msg)
{
    for (int i = 0; i < msg->count; i++)
        zmq_msg_close(&msg->frames[i]);
    msg->count = 0;
}

/* Receives every frame of one message; frames past the limit are read and dropped. */
static int pool_msg_recv(void *socket, struct pool_msg *msg)
{
    int more = 1;

    msg->count = 0;
    while (more) {
        zmq_msg_t frame;
        size_t more_size = sizeof(more);

        zmq_msg_init(&frame);
        if (zmq_msg_recv(&frame, socket, 0) < 0) {
            zmq_msg_close(&frame);
            pool_msg_close(msg);
            return M360_EIO;
        }
        zmq_getsockopt(socket, ZMQ_RCVMORE, &more, &more_size);
        if (msg->count < POOL_FRAMES_MAX)
            msg->frames[msg->count++] = frame;
        else
            zmq_msg_close(&frame);
    }
    return 0;
}

/* Sends frames [from, count) of `msg`, after an optional leading frame; closes them. */
static int pool_msg_send(void *socket, const zmq_msg_t *lead, struct pool_msg *msg, int from)
{
    int rc = 0;

    if (lead != NULL) {
        zmq_msg_t copy;
        zmq_msg_init(&copy);
        zmq_msg_copy(&copy, (zmq_msg_t *)lead);
        if (zmq_msg_send(&copy, socket, from < msg->count ? ZMQ_SNDMORE : 0) < 0) {
            zmq_msg_close(&copy);
            rc = M360_EIO;
        }
    }
    for (int i = from; i < msg->count && rc == 0; i++) {
        if (zmq_msg_send(&msg->frames[i], socket, i + 1 < msg->count ? ZMQ_SNDMORE : 0) < 0)
            rc = M360_EIO;
    }
    pool_msg_close(msg);
    return rc;
}

/* ---- Broker ---------------------------------------------------------------------------- */

/* Idle workers, by their backend identity. Owned by the broker thread. */
struct pool_idle {
    zmq_msg_t ids[POOL_THREADS_MAX];
    int count;
};

/*
 * A worker's message is [worker id][empty][READY] at start, or [worker id][empty][client
 * id][empty][seq][status][headers][body] as a reply: either way the worker is idle again.
 */
static void pool_broker_from_worker(struct pool *pool, struct pool_idle *idle, int *busy)
{
    struct pool_msg msg;

    if (pool_msg_recv(pool->backend, &msg) != 0)
        return;
    if (msg.count < 3 || idle->count == POOL_THREADS_MAX) {
        pool_msg_close(&msg);
        return;
    }
    zmq_msg_init(&idle->ids[idle->count]);
    zmq_msg_move(&idle->ids[idle->count], &msg.frames[0]);
    idle->count++;

    if (msg.count == 3) {
        pool_msg_close(&msg);
        return;
    }
    (*busy)--;
    pool_msg_send(pool->frontend, NULL, &msg, 2);
}

/* A client's message is [client id][empty][seq][type][payload]: give it to an idle worker. */
static void pool_broker_from_client(struct pool *pool, struct pool_idle *idle, int *busy)
{
    struct pool_msg msg;
    zmq_msg_t empty;
    zmq_msg_t worker_id;

    if (pool_msg_recv(pool->frontend, &msg) != 0)
        return;
    if (msg.count != 5) {
        pool_msg_close(&msg);
        return;
    }
    idle->count--;
    zmq_msg_init(&worker_id);
    zmq_msg_move(&worker_id, &idle->ids[idle->count]);
    zmq_msg_close(&idle->ids[idle->count]);

    zmq_msg_init(&empty);
    zmq_msg_send(&worker_id, pool->backend, ZMQ_SNDMORE);
    pool_msg_send(pool->backend, &empty, &msg, 0);
    zmq_msg_close(&empty);
    zmq_msg_close(&worker_id);
    (*busy)++;
}

static void *pool_broker_main(void *arg)
{
    struct pool *pool = arg;
    struct pool_idle idle = {.count = 0};
    int64_t drain_until = 0;
    int busy = 0;

    for (;;) {
        /* Clients are read only while a worker is idle: the rest wait in the socket. */
        zmq_pollitem_t items[] = {
            {pool->backend, 0, ZMQ_POLLIN, 0},
            {pool->frontend, 0, ZMQ_POLLIN, 0},
        };
        bool stopping = atomic_load(&pool->stopping);
        int nitems = (idle.count > 0 && !stopping) ? 2 : 1;

        if (stopping && drain_until == 0)
            drain_until = pool_now_ms() + POOL_DRAIN_MS;
        if (stopping && (busy == 0 || pool_now_ms() > drain_until))
            break;
        if (zmq_poll(items, nitems, POOL_POLL_MS) < 0 && errno != EINTR)
            break;
        if (items[0].revents & ZMQ_POLLIN)
            pool_broker_from_worker(pool, &idle, &busy);
        if (nitems == 2 && (items[1].revents & ZMQ_POLLIN))
            pool_broker_from_client(pool, &idle, &busy);
    }

    for (int i = 0; i < idle.count; i++)
        zmq_msg_close(&idle.ids[i]);
    return NULL;
}

/* ---- Replies --------------------------------------------------------------------------- */

void pool_reply_json(struct pool_reply *reply, int status, json_t *body)
{
    json_decref(reply->body);
    reply->status = status;
    reply->body = body;
}

void pool_reply_error(struct pool_reply *reply, int status, const char *error, const char *message,
                      json_t *extra)
{
    json_t *body = json_pack("{s:b, s:s, s:s}", "success", 0, "error", error, "message", message);

    if (extra != NULL) {
        json_object_update(body, extra);
        json_decref(extra);
    }
    pool_reply_json(reply, status, body);
}

void pool_reply_header(struct pool_reply *reply, const char *fmt, ...)
{
    size_t used = strlen(reply->headers);
    size_t room = sizeof(reply->headers) - used;
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(reply->headers + used, room, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n + 2 >= room) {
        reply->headers[used] = '\0';
        return;
    }
    memcpy(reply->headers + used + n, "\r\n", 3);
}

/* ---- Workers --------------------------------------------------------------------------- */

static int pool_ping(struct pool_worker *worker, const struct pool_request *req,
                     struct pool_reply *reply)
{
    int rc = db_exec_script(worker->db, "SELECT 1", NULL);

    (void)req;
    if (rc != 0)
        return rc;
    pool_reply_json(reply, 200, json_pack("{s:b, s:s}", "success", 1, "pool", worker->pool_name));
    return 0;
}

static pool_handler_fn pool_route_find(const struct pool_def *def, const char *type)
{
    if (strcmp(type, "ping") == 0)
        return pool_ping;
    for (int i = 0; i < def->nroutes; i++) {
        if (strcmp(def->routes[i].type, type) == 0)
            return def->routes[i].handler;
    }
    return NULL;
}

/* Runs a handler with the request's deadline on the thread's connection. */
static int pool_worker_handle(struct pool_worker *worker, pool_handler_fn handler,
                              const struct pool_request *req, int64_t deadline_ms,
                              struct pool_reply *reply)
{
    int rc;

    db_deadline_set(worker->db, deadline_ms > 0 ? deadline_ms : 0);
    rc = handler(worker, req, reply);
    db_deadline_set(worker->db, 0);
    return rc;
}

/* Runs the handler for one request and fills `reply`; every failure becomes a reply. */
static void pool_worker_dispatch(struct pool_thread *thread, const char *type, const char *payload,
                                 size_t payload_len, struct pool_reply *reply)
{
    struct pool_worker *worker = &thread->worker;
    pool_handler_fn handler = pool_route_find(thread->pool->def, type);
    struct pool_request req = {.type = type};
    /* NUL escapes pass: the handler's field checks name the field that holds one. */
    json_t *root = json_loadb(payload, payload_len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, NULL);
    json_t *empty = json_object();
    json_int_t deadline;
    int rc;

    req.ctx = json_object_get(root, "ctx") != NULL ? json_object_get(root, "ctx") : empty;
    req.body = json_object_get(root, "body") != NULL ? json_object_get(root, "body") : empty;
    req.params = json_object_get(root, "params") != NULL ? json_object_get(root, "params") : empty;
    req.query = json_object_get(root, "query") != NULL ? json_object_get(root, "query") : empty;
    req.now = pool_now_ms() / 1000;
    deadline = json_integer_value(json_object_get(root, "deadline_ms"));

    if (handler == NULL || root == NULL) {
        log_err(POOL_LOG_MODULE, "event=bad_request pool=%s type=%.64s", worker->pool_name, type);
        pool_reply_error(reply, 500, "InternalError", "Internal error", NULL);
    } else if (deadline > 0 && pool_now_ms() > deadline) {
        /* Nobody waits for this answer any more: skip the work, keep the queue short. */
        pool_reply_error(reply, 503, "ServiceUnavailable", "Service busy, retry later", NULL);
    } else if ((rc = pool_worker_handle(worker, handler, &req, deadline, reply)) != 0) {
        int status = err_http_status(rc) == 503 ? 503 : 500;

        log_err(POOL_LOG_MODULE, "event=handler_failed pool=%s type=%s code=%s", worker->pool_name,
                type, err_str(rc));
        pool_reply_error(reply, status, err_api_name(status == 503 ? rc : M360_EINTERNAL),
                         status == 503 ? "Service unavailable, retry later" : "Internal error",
                         NULL);
        if (status == 503)
            pool_reply_header(reply, "Retry-After: 1");
    }
    json_decref(root);
    json_decref(empty);
}

/* Sends [client id][empty][seq][status][headers][body] back through the broker. */
static void pool_worker_reply(void *socket, struct pool_msg *req, const struct pool_reply *reply)
{
    char status[8];
    char *body = reply->body != NULL ? json_dumps(reply->body, JSON_COMPACT) : NULL;
    const char *text = body != NULL ? body : "{\"success\":true}";

    snprintf(status, sizeof(status), "%d", reply->status);
    zmq_msg_send(&req->frames[0], socket, ZMQ_SNDMORE);
    zmq_msg_send(&req->frames[1], socket, ZMQ_SNDMORE);
    zmq_msg_send(&req->frames[2], socket, ZMQ_SNDMORE);
    zmq_send(socket, status, strlen(status), ZMQ_SNDMORE);
    zmq_send(socket, reply->headers, strlen(reply->headers), ZMQ_SNDMORE);
    zmq_send(socket, text, strlen(text), 0);
    free(body);
}

/* Handles one request [client id][empty][seq][type][payload]. */
static void pool_worker_serve(struct pool_thread *thread, void *socket, struct pool_msg *req)
{
    struct pool_reply reply = {.status = 200, .body = NULL, .headers = ""};
    char type[64];
    size_t type_len = zmq_msg_size(&req->frames[3]);

    if (type_len >= sizeof(type))
        type_len = sizeof(type) - 1;
    memcpy(type, zmq_msg_data(&req->frames[3]), type_len);
    type[type_len] = '\0';

    pool_worker_dispatch(thread, type, zmq_msg_data(&req->frames[4]), zmq_msg_size(&req->frames[4]),
                         &reply);
    pool_worker_reply(socket, req, &reply);
    json_decref(reply.body);
}

static void *pool_worker_main(void *arg)
{
    struct pool_thread *thread = arg;
    struct pool *pool = thread->pool;
    void *socket = zmq_socket(pool->zmq_ctx, ZMQ_REQ);
    int linger = 0;

    zmq_setsockopt(socket, ZMQ_LINGER, &linger, sizeof(linger));
    if (zmq_connect(socket, pool->backend_endpoint) != 0 ||
        zmq_send(socket, POOL_READY, strlen(POOL_READY), 0) < 0) {
        log_err(POOL_LOG_MODULE, "event=worker_connect_failed pool=%s", pool->def->name);
        zmq_close(socket);
        return NULL;
    }

    /* The broker hands a request only to a worker that asked for one, so after the last
     * reply of a drain no request is waiting here. */
    while (!atomic_load(&pool->stopping)) {
        zmq_pollitem_t item = {socket, 0, ZMQ_POLLIN, 0};
        struct pool_msg req;

        if (zmq_poll(&item, 1, POOL_POLL_MS) <= 0 || !(item.revents & ZMQ_POLLIN))
            continue;
        if (pool_msg_recv(socket, &req) != 0)
            break;
        if (req.count == 5)
            pool_worker_serve(thread, socket, &req);
        else
            log_warn(POOL_LOG_MODULE, "event=malformed_request pool=%s frames=%d", pool->def->name,
                     req.count);
        pool_msg_close(&req);
    }
    zmq_close(socket);
    return NULL;
}

/* Opens the thread's database connection and lets the pool prepare its statements. */
static int pool_thread_start(struct pool *pool, struct pool_thread *thread, int index)
{
    thread->pool = pool;
    thread->worker.cfg = pool->cfg;
    thread->worker.pool_name = pool->def->name;
    thread->worker.index = index;
    thread->worker.db = db_new(pool->cfg->database_url);
    if (thread->worker.db == NULL)
        return M360_EUNAVAILABLE;
    if (pool->def->thread_init != NULL && pool->def->thread_init(&thread->worker) != 0)
        return M360_EDB;
    if (pthread_create(&thread->thread, NULL, pool_worker_main, thread) != 0)
        return M360_ENOMEM;
    thread->started = true;
    return 0;
}

static void *pool_router_bind(void *zmq_ctx, const char *endpoint)
{
    void *socket = zmq_socket(zmq_ctx, ZMQ_ROUTER);
    int linger = 0;

    if (socket == NULL)
        return NULL;
    zmq_setsockopt(socket, ZMQ_LINGER, &linger, sizeof(linger));
    if (zmq_bind(socket, endpoint) != 0) {
        log_err(POOL_LOG_MODULE, "event=bind_failed endpoint=%s reason=%s", endpoint,
                zmq_strerror(zmq_errno()));
        zmq_close(socket);
        return NULL;
    }
    return socket;
}

struct pool *pool_new(void *zmq_ctx, const struct pool_def *def, const struct cfg *cfg,
                      const char *endpoint, int threads)
{
    struct pool *pool = calloc(1, sizeof(*pool));

    if (pool == NULL)
        return NULL;
    pool->def = def;
    pool->cfg = cfg;
    pool->zmq_ctx = zmq_ctx;
    atomic_init(&pool->stopping, false);
    snprintf(pool->backend_endpoint, sizeof(pool->backend_endpoint), "inproc://pool-%s-%p",
             def->name, (void *)pool);

    pool->frontend = pool_router_bind(zmq_ctx, endpoint);
    pool->backend = pool_router_bind(zmq_ctx, pool->backend_endpoint);
    if (pool->frontend == NULL || pool->backend == NULL)
        goto fail;

    if (threads > POOL_THREADS_MAX)
        threads = POOL_THREADS_MAX;
    for (; pool->nthreads < threads; pool->nthreads++) {
        if (pool_thread_start(pool, &pool->threads[pool->nthreads], pool->nthreads) != 0) {
            log_err(POOL_LOG_MODULE, "event=worker_start_failed pool=%s index=%d", def->name,
                    pool->nthreads);
            pool->nthreads++;
            goto fail;
        }
    }
    if (pthread_create(&pool->broker, NULL, pool_broker_main, pool) != 0)
        goto fail;
    pool->broker_started = true;

    log_notice(POOL_LOG_MODULE, "event=pool_started pool=%s endpoint=%s threads=%d", def->name,
               endpoint, threads);
    return pool;

fail:
    pool_destroy(&pool);
    return NULL;
}

void pool_destroy(struct pool **pool_ptr)
{
    struct pool *pool = pool_ptr != NULL ? *pool_ptr : NULL;

    if (pool == NULL)
        return;

    /* The broker stops reading clients and waits for the replies workers still owe; then
     * the workers see the flag within one poll interval. */
    atomic_store(&pool->stopping, true);
    if (pool->broker_started)
        pthread_join(pool->broker, NULL);
    for (int i = 0; i < pool->nthreads; i++) {
        if (pool->threads[i].started)
            pthread_join(pool->threads[i].thread, NULL);
        db_destroy(&pool->threads[i].worker.db);
    }
    if (pool->frontend != NULL)
        zmq_close(pool->frontend);
    if (pool->backend != NULL)
        zmq_close(pool->backend);
    if (pool->broker_started)
        log_notice(POOL_LOG_MODULE, "event=pool_stopped pool=%s", pool->def->name);
    free(pool);
    *pool_ptr = NULL;
}

/* ---- Clients --------------------------------------------------------------------------- */

struct pool_client {
    void *socket; /* DEALER, owned by one thread */
    uint64_t seq;
    struct pool_stats *stats;
};

static void pool_stats_reply(struct pool_stats *stats, int64_t us)
{
    static const int64_t bounds_us[] = {1000, 2000, 5000, 10000, 25000, 50000, 100000};
    int bucket = 0;

    while (bucket < POOL_REPLY_BUCKETS - 1 && us > bounds_us[bucket])
        bucket++;
    atomic_fetch_add_explicit(&stats->reply_us_buckets[bucket], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&stats->reply_us_sum, (uint64_t)us, memory_order_relaxed);
}

void pool_stats_read(struct pool_stats *stats, struct pool_stats_view *out)
{
    out->calls = atomic_load_explicit(&stats->calls, memory_order_relaxed);
    out->timeouts = atomic_load_explicit(&stats->timeouts, memory_order_relaxed);
    out->unavailable = atomic_load_explicit(&stats->unavailable, memory_order_relaxed);
    out->in_flight = atomic_load_explicit(&stats->in_flight, memory_order_relaxed);
    out->reply_us_sum = atomic_load_explicit(&stats->reply_us_sum, memory_order_relaxed);
    for (int i = 0; i < POOL_REPLY_BUCKETS; i++)
        out->reply_us_buckets[i] =
            atomic_load_explicit(&stats->reply_us_buckets[i], memory_order_relaxed);
}

struct pool_client *pool_client_new(void *zmq_ctx, const char *endpoint, struct pool_stats *stats)
{
    struct pool_client *client = calloc(1, sizeof(*client));
    int linger = 0;
    int immediate = 1;

    if (client == NULL)
        return NULL;
    client->stats = stats;
    client->socket = zmq_socket(zmq_ctx, ZMQ_DEALER);
    if (client->socket == NULL) {
        free(client);
        return NULL;
    }

    /* Queue nothing for a pool that is not connected: the caller answers 503 at once
     * rather than have the work run later for nobody. */
    zmq_setsockopt(client->socket, ZMQ_LINGER, &linger, sizeof(linger));
    zmq_setsockopt(client->socket, ZMQ_IMMEDIATE, &immediate, sizeof(immediate));
    if (zmq_connect(client->socket, endpoint) != 0) {
        log_err(POOL_LOG_MODULE, "event=connect_failed endpoint=%s", endpoint);
        pool_client_destroy(&client);
    }
    return client;
}

void pool_client_destroy(struct pool_client **client)
{
    if (client == NULL || *client == NULL)
        return;
    zmq_close((*client)->socket);
    free(*client);
    *client = NULL;
}

/* A frame's bytes as a NUL-terminated copy; frames carry no terminator of their own. */
static char *pool_frame_text(zmq_msg_t *frame)
{
    size_t len = zmq_msg_size(frame);
    char *text = malloc(len + 1);

    if (text != NULL) {
        memcpy(text, zmq_msg_data(frame), len);
        text[len] = '\0';
    }
    return text;
}

/* Reads a reply; returns 1 when it answers call `seq`, 0 for a stale one, <0 on error. */
static int pool_client_take(struct pool_client *client, uint64_t seq, int *status, char **headers,
                            char **body)
{
    struct pool_msg msg;
    uint64_t got = 0;
    int rc = 0;

    if (pool_msg_recv(client->socket, &msg) != 0)
        return M360_EIO;
    if (msg.count == 5 && zmq_msg_size(&msg.frames[1]) == sizeof(got))
        memcpy(&got, zmq_msg_data(&msg.frames[1]), sizeof(got));
    if (got == seq) {
        char code[8] = {0};
        size_t code_len = zmq_msg_size(&msg.frames[2]);

        memcpy(code, zmq_msg_data(&msg.frames[2]), code_len < 7 ? code_len : 7);
        *status = atoi(code);
        *headers = pool_frame_text(&msg.frames[3]);
        *body = pool_frame_text(&msg.frames[4]);
        rc = (*headers != NULL && *body != NULL) ? 1 : M360_ENOMEM;
        if (rc != 1) {
            free(*headers);
            free(*body);
        }
    }
    pool_msg_close(&msg);
    return rc;
}

int pool_client_call(struct pool_client *client, const char *type, const char *payload,
                     size_t payload_len, int timeout_ms, int *status, char **headers, char **body)
{
    int64_t started = pool_monotonic_us();
    int64_t deadline = started + (int64_t)timeout_ms * 1000;
    uint64_t seq = ++client->seq;
    int rc = M360_ETIMEDOUT;

    atomic_fetch_add_explicit(&client->stats->calls, 1, memory_order_relaxed);
    if (zmq_send(client->socket, "", 0, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
        atomic_fetch_add_explicit(&client->stats->unavailable, 1, memory_order_relaxed);
        return M360_EUNAVAILABLE;
    }
    zmq_send(client->socket, &seq, sizeof(seq), ZMQ_SNDMORE);
    zmq_send(client->socket, type, strlen(type), ZMQ_SNDMORE);
    zmq_send(client->socket, payload, payload_len, 0);

    atomic_fetch_add_explicit(&client->stats->in_flight, 1, memory_order_relaxed);
    for (;;) {
        int64_t left_us = deadline - pool_monotonic_us();
        zmq_pollitem_t item = {client->socket, 0, ZMQ_POLLIN, 0};
        int taken;

        if (left_us <= 0)
            break;
        if (zmq_poll(&item, 1, (long)(left_us / 1000) + 1) < 0 && errno != EINTR)
            break;
        if (!(item.revents & ZMQ_POLLIN))
            continue;
        taken = pool_client_take(client, seq, status, headers, body);
        if (taken != 0) {
            rc = taken == 1 ? 0 : taken;
            break;
        }
    }
    atomic_fetch_sub_explicit(&client->stats->in_flight, 1, memory_order_relaxed);

    if (rc == M360_ETIMEDOUT)
        atomic_fetch_add_explicit(&client->stats->timeouts, 1, memory_order_relaxed);
    if (rc == 0)
        pool_stats_reply(client->stats, pool_monotonic_us() - started);
    return rc;
}
