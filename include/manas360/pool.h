/* SPDX-License-Identifier: MIT */
/*
 * The worker runtime: a pool is a set of threads behind one ZeroMQ endpoint, each thread with
 * its own socket and PostgreSQL connection, dispatching requests by message type. The front
 * end talks to a pool through a pool_client, one per thread, with a deadline on every call.
 *
 * Wire format. Request frames: [empty][seq: 8 bytes][type][payload], where payload is a
 * JSON object {"ctx": {...}, "body": {...}, "params": {...}, "query": {...},
 * "deadline_ms": N}. Reply frames:
 * [empty][seq][status: decimal text][headers: "Name: value\r\n"...][body: JSON text].
 */
#ifndef MANAS360_POOL_H
#define MANAS360_POOL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "manas360/cfg.h"
#include "manas360/db.h"

#define POOL_HEADERS_MAX_BYTES 256
#define POOL_PING_TIMEOUT_MS 1000 /* what /readyz waits for each pool */

/* What a handler gets: the request, parsed. The json_t pointers are borrowed. */
struct pool_request {
    const char *type;
    const json_t *ctx;    /* caller: user_id, session_id, ip, user_agent, request_id */
    const json_t *body;   /* the client's JSON object, or an empty object */
    const json_t *params; /* path parameters ({"id": "..."}) */
    const json_t *query;  /* query parameters, decoded strings ({"page": "2"}) */
    int64_t now;          /* Unix seconds when the worker took the request */
};

/* What a handler fills. The runtime sends it and frees body. */
struct pool_reply {
    int status;                           /* HTTP status */
    json_t *body;                         /* owned; NULL sends {"success": true} */
    char headers[POOL_HEADERS_MAX_BYTES]; /* extra header lines, each ending "\r\n" */
};

/* The thread a handler runs on: its database connection and the configuration. */
struct pool_worker {
    struct db *db;
    const struct cfg *cfg;
    const char *pool_name;
    int index;
};

/* A handler answers one message type. A non-zero return becomes a 500 (or 503 for
 * M360_EUNAVAILABLE / M360_ETIMEDOUT) with the contract's error body; details are logged. */
typedef int (*pool_handler_fn)(struct pool_worker *worker, const struct pool_request *req,
                               struct pool_reply *reply);

struct pool_route {
    const char *type; /* "auth.login" */
    pool_handler_fn handler;
};

/* Prepares per-thread state on a fresh connection (statements); 0 or a status code. */
typedef int (*pool_thread_init_fn)(struct pool_worker *worker);

/* What a pool is: its name, its message table and its statements. */
struct pool_def {
    const char *name;
    const struct pool_route *routes;
    int nroutes;
    pool_thread_init_fn thread_init; /* may be NULL */
};

struct pool;

/*
 * Binds `endpoint` (tcp://, ipc:// or inproc:// in `zmq_ctx`) and starts `threads` workers,
 * each connecting to cfg->database_url. Every pool also answers "ping" (its database with
 * `SELECT 1`). Returns NULL when the endpoint cannot be bound or no worker can start
 * (logged). `def` and `cfg` are borrowed and must outlive the pool.
 */
struct pool *pool_new(void *zmq_ctx, const struct pool_def *def, const struct cfg *cfg,
                      const char *endpoint, int threads);

/*
 * Stops taking requests, lets each worker finish the one it holds, joins the threads and
 * frees the pool; sets *pool to NULL. Safe on NULL.
 */
void pool_destroy(struct pool **pool);

/* Fills the reply with the contract's error body: {"success": false, "error", "message"}
 * plus the members of `extra` (stolen, may be NULL). */
void pool_reply_error(struct pool_reply *reply, int status, const char *error, const char *message,
                      json_t *extra);

/* Fills the reply with `status` and `body` (stolen). */
void pool_reply_json(struct pool_reply *reply, int status, json_t *body);

/* Appends one header line ("Retry-After: 30"); the runtime adds "\r\n". */
void pool_reply_header(struct pool_reply *reply, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define POOL_REPLY_BUCKETS 8 /* <=1ms, 2, 5, 10, 25, 50, 100, +Inf */

/* Counters of one pool as its clients see them, shared by every client thread. */
struct pool_stats {
    _Atomic uint64_t calls;
    _Atomic uint64_t timeouts;
    _Atomic uint64_t unavailable; /* not connected: refused at once */
    _Atomic uint64_t in_flight;   /* calls waiting for a reply right now */
    _Atomic uint64_t reply_us_sum;
    _Atomic uint64_t reply_us_buckets[POOL_REPLY_BUCKETS];
};

/* A copy of the counters at one moment. */
struct pool_stats_view {
    uint64_t calls;
    uint64_t timeouts;
    uint64_t unavailable;
    uint64_t in_flight;
    uint64_t reply_us_sum;
    uint64_t reply_us_buckets[POOL_REPLY_BUCKETS];
};

struct pool_client;

/*
 * A client of the pool at `endpoint`, for one thread. Calls fail at once with
 * M360_EUNAVAILABLE while no pool is connected, instead of queueing work that nobody will
 * wait for. `stats` is shared by all clients of the pool (atomics). Returns NULL on failure.
 */
struct pool_client *pool_client_new(void *zmq_ctx, const char *endpoint, struct pool_stats *stats);

void pool_client_destroy(struct pool_client **client);

/*
 * Sends one request and waits up to `timeout_ms` for its reply. On success fills *status,
 * and *headers and *body with malloc'd text the caller frees. A late reply to an earlier
 * call that timed out is recognised by its sequence number and dropped. Returns 0,
 * M360_ETIMEDOUT or M360_EUNAVAILABLE.
 */
int pool_client_call(struct pool_client *client, const char *type, const char *payload,
                     size_t payload_len, int timeout_ms, int *status, char **headers, char **body);

/* Reads the shared counters. */
void pool_stats_read(struct pool_stats *stats, struct pool_stats_view *out);

#endif
