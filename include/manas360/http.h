/* SPDX-License-Identifier: MIT */
/*
 * The HTTP front end: civetweb with keep-alive and TCP_NODELAY, every response built in one
 * buffer and sent with one write, a request id on every response.
 */
#ifndef MANAS360_HTTP_H
#define MANAS360_HTTP_H

#include "manas360/cfg.h"

#define HTTP_REQUEST_ID_MAX 128

struct http_server;

/*
 * Starts listening on cfg->port with cfg->http_threads threads. `cfg` is borrowed and must
 * outlive the server. Returns NULL when the port cannot be bound (logged).
 */
struct http_server *http_server_new(const struct cfg *cfg);

/* Stops accepting, lets in-flight requests finish, frees the server, sets *server to NULL. */
void http_server_destroy(struct http_server **server);

/*
 * Writes the request id to use into `out` (HTTP_REQUEST_ID_MAX + 1 bytes): `incoming` when it
 * is 1 to 128 characters of A-Z a-z 0-9 . _ -, else a fresh random one. Thread-safe.
 */
void http_request_id(const char *incoming, char *out);

#endif
