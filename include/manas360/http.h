/* SPDX-License-Identifier: MIT */
/*
 * The HTTP front end: civetweb with keep-alive and TCP_NODELAY, the route table, the access
 * decision, and dispatch to the worker pools over ZeroMQ with a deadline. Every response is
 * built in one buffer and sent with one write.
 */
#ifndef MANAS360_HTTP_H
#define MANAS360_HTTP_H

#include "manas360/cfg.h"

#define HTTP_REQUEST_ID_MAX 128
#define HTTP_BODY_MAX_BYTES 65536
#define HTTP_JSON_DEPTH_MAX 32

struct http_server;

/*
 * Starts listening on cfg->port with cfg->http_threads threads, talking to the pools at the
 * cfg's endpoints through `zmq_ctx`, and LISTENing for ended sessions. `cfg` and `zmq_ctx` are
 * borrowed and must outlive the server. Returns NULL when the port cannot be bound (logged).
 */
struct http_server *http_server_new(const struct cfg *cfg, void *zmq_ctx);

/*
 * Stops accepting, lets in-flight requests finish, writes the pending session activity,
 * frees the server and sets *server to NULL.
 */
void http_server_destroy(struct http_server **server);

/*
 * Writes the request id to use into `out` (HTTP_REQUEST_ID_MAX + 1 bytes): `incoming` when it
 * is 1 to 128 characters of A-Z a-z 0-9 . _ -, else a fresh random one. Thread-safe.
 */
void http_request_id(const char *incoming, char *out);

/*
 * Checks that `body` (of `len` bytes) nests arrays and objects at most `max_depth` deep,
 * without parsing it. Returns 0 or M360_EINVAL.
 */
int http_json_depth_check(const char *body, size_t len, int max_depth);

#endif
