/* SPDX-License-Identifier: MIT */
/*
 * What every pool's handlers share: reading the caller's context, checking a body, the
 * contract's common replies, and writing an audit row in the handler's own transaction.
 */
#ifndef MANAS360_WORKERS_WORKER_H
#define MANAS360_WORKERS_WORKER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "manas360/db.h"
#include "manas360/input.h"
#include "manas360/pool.h"

#define WORKER_USER_AGENT_MAX_CHARS 512
#define WORKER_USER_AGENT_MAX_BYTES (WORKER_USER_AGENT_MAX_CHARS * 4 + 1) /* UTF-8, and a NUL */
#define WORKER_IP_MAX_BYTES 64

/* The caller as the database stores it: a valid address or NULL, and a bounded agent. */
struct worker_client {
    const char *ip; /* points into ip_buf, or NULL */
    char ip_buf[WORKER_IP_MAX_BYTES];
    const char *user_agent; /* points into agent_buf, or NULL */
    char agent_buf[WORKER_USER_AGENT_MAX_BYTES];
};

/* One audit_logs row. Strings are borrowed; NULL is SQL NULL. */
struct worker_audit {
    const char *user_id; /* NULL for an anonymous event (a login with an unknown email) */
    const char *event;   /* one of audit_logs_event_type_check */
    const char *resource_type;
    const char *resource_id;
    const char *action;
    bool failed;
    json_t *details; /* an object, never a secret; stolen by worker_audit_write (NULL: no memory) */
};

/* Prepares the statements worker_audit_write() needs on a pool thread's connection. */
int worker_prepare(struct db *db);

/* Reads ctx.ip (kept only when it parses as an address) and ctx.user_agent (cut to 512
 * characters). `req` may be NULL, for work that no client asked for. */
void worker_client_read(const struct pool_request *req, struct worker_client *out);

/*
 * Writes one audit row in the caller's transaction, with the caller's address and agent
 * and ctx.request_id added to the details, and releases row->details whatever happens.
 * Returns 0, M360_ENOMEM when row->details is NULL, or a database code.
 */
int worker_audit_write(struct db *db, const struct pool_request *req,
                       const struct worker_audit *row);

/* ctx.user_id / ctx.session_id when they are UUIDs, else NULL. */
const char *worker_ctx_user(const struct pool_request *req);
const char *worker_ctx_session(const struct pool_request *req);

/* ctx.request_id when it is safe to log bare (what the front end accepts), else "none". */
const char *worker_ctx_request_id(const struct pool_request *req);

/*
 * Checks the body against `spec` (NULL and 0: the body must be empty). True when it passes;
 * otherwise the reply is filled (400 ValidationError with `fields`, or 500 when memory ran
 * out) and the handler is done.
 */
bool worker_body_ok(const struct pool_request *req, const struct input_field *spec, size_t nspec,
                    struct pool_reply *reply);

/* 400 ValidationError with `fields` (stolen). */
void worker_reply_invalid(struct pool_reply *reply, json_t *fields);

/* 400 ValidationError naming one field and its reason. */
void worker_reply_invalid_field(struct pool_reply *reply, const char *field, const char *reason);

/* 401 Unauthorized: the caller's user or session is gone. */
void worker_reply_unauthorized(struct pool_reply *reply);

/* 404 NotFound: the resource is unknown, or the caller may not see it. */
void worker_reply_not_found(struct pool_reply *reply);

/* Fills the reply with `status` and `body` (stolen); M360_ENOMEM when body is NULL. */
int worker_reply_json(struct pool_reply *reply, int status, json_t *body);

#endif
