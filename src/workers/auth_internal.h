/* SPDX-License-Identifier: MIT */
/* What the auth pool's files share: their handlers, the audit helper and reply helpers. */
#ifndef MANAS360_AUTH_INTERNAL_H
#define MANAS360_AUTH_INTERNAL_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

#include "manas360/auth.h"
#include "manas360/db.h"
#include "manas360/input.h"
#include "manas360/pool.h"
#include "manas360/token.h"
#include "row.h"

#define AUTH_LOG_MODULE "auth"
#define AUTH_USER_AGENT_MAX_CHARS 512
#define AUTH_USER_AGENT_MAX_BYTES (AUTH_USER_AGENT_MAX_CHARS * 4 + 1) /* UTF-8, and a NUL */
#define AUTH_IP_MAX_BYTES 64

/* The announcement of one ended session, for a statement whose `ended` CTE returns ids. */
#define AUTH_SQL_NOTIFY_ENDED "SELECT pg_notify('" AUTH_SESSION_CHANNEL "', id::text) FROM ended"

/* Why a session ended: values of the schema's session_end_reason domain. */
#define AUTH_END_LOGOUT "logout"
#define AUTH_END_BY_USER "ended_by_user"
#define AUTH_END_PASSWORD "password_changed"
#define AUTH_END_REUSE "refresh_token_reuse"
#define AUTH_END_IDLE "idle_timeout"

/* The caller as the database stores it: a valid address or NULL, and a bounded agent. */
struct auth_client {
    const char *ip; /* points into ip_buf, or NULL */
    char ip_buf[AUTH_IP_MAX_BYTES];
    const char *user_agent; /* points into agent_buf, or NULL */
    char agent_buf[AUTH_USER_AGENT_MAX_BYTES];
};

/* One audit_logs row. Strings are borrowed; NULL is SQL NULL. */
struct auth_audit {
    const char *user_id; /* NULL for an anonymous event (a login with an unknown email) */
    const char *event;   /* one of audit_logs_event_type_check */
    const char *resource_type;
    const char *resource_id;
    const char *action;
    bool failed;
    json_t *details; /* an object, never a secret; stolen by auth_audit_write (NULL: no memory) */
};

/* ---- auth.c: shared helpers ---------------------------------------------------------- */

/* Reads ctx.ip (kept only when it parses as an address) and ctx.user_agent (cut to 512
 * characters). `req` may be NULL, for work that no client asked for. */
void auth_client_read(const struct pool_request *req, struct auth_client *out);

/*
 * Writes one audit row in the caller's transaction, with the caller's address and agent
 * and ctx.request_id added to the details, and releases row->details whatever happens.
 * Returns 0, M360_ENOMEM when row->details is NULL, or a database code.
 */
int auth_audit_write(struct db *db, const struct pool_request *req, const struct auth_audit *row);

/* ctx.user_id / ctx.session_id when they are UUIDs, else NULL. */
const char *auth_ctx_user(const struct pool_request *req);
const char *auth_ctx_session(const struct pool_request *req);

/* ctx.request_id when it is safe to log bare (what the front end accepts), else "none". */
const char *auth_ctx_request_id(const struct pool_request *req);

/*
 * Checks the body against `spec`. True when it passes; otherwise the reply is filled
 * (400 ValidationError with `fields`, or 500 when memory ran out) and the handler is done.
 */
bool auth_body_ok(const struct pool_request *req, const struct input_field *spec, size_t nspec,
                  struct pool_reply *reply);

/* 400 ValidationError with `fields` (stolen). */
void auth_reply_invalid(struct pool_reply *reply, json_t *fields);

/* 401 Unauthorized: the caller's user or session is gone. */
void auth_reply_unauthorized(struct pool_reply *reply);

/* Fills the reply with `status` and `body` (stolen); M360_ENOMEM when body is NULL. */
int auth_reply_json(struct pool_reply *reply, int status, json_t *body);

/* A column of a result: NULL for SQL NULL; bools are 't'/'f'; integers in base 10. */

/* ---- auth_session.c ------------------------------------------------------------------ */

int auth_session_prepare(struct db *db);

/* "bot", "tablet", "mobile", "desktop" or "unknown" from a User-Agent (NULL allowed). */
const char *auth_device_type(const char *user_agent);

/*
 * Opens a session for `user_id` lasting `ttl_s`, with the caller's address, agent and
 * device type; writes its id to `sid`. Runs in the caller's transaction.
 */
int auth_session_open(struct db *db, const struct pool_request *req, const char *user_id,
                      int64_t ttl_s, char sid[TOKEN_ID_BYTES]);

/*
 * Ends every open session of `user_id` but `keep_sid` (NULL: all of them) for `reason`,
 * revokes their refresh tokens and the user's other live ones, and announces each ended
 * session. Writes the number ended to *ended. Runs in the caller's transaction.
 */
int auth_sessions_end_user(struct db *db, const char *user_id, const char *keep_sid,
                           const char *reason, int *ended);

/*
 * Ends session `sid` for `reason` when it is open (and belongs to `user_id`, unless that is
 * NULL), revokes all its tokens and announces it. Writes the owner's id to `owner` when it
 * ended, or an empty string when nothing matched. Runs in the caller's transaction.
 */
int auth_session_end(struct db *db, const char *sid, const char *user_id, const char *reason,
                     char owner[TOKEN_ID_BYTES]);

int auth_sessions_list(struct pool_worker *worker, const struct pool_request *req,
                       struct pool_reply *reply);
int auth_sessions_delete(struct pool_worker *worker, const struct pool_request *req,
                         struct pool_reply *reply);
int auth_session_get(struct pool_worker *worker, const struct pool_request *req,
                     struct pool_reply *reply);
int auth_session_touch(struct pool_worker *worker, const struct pool_request *req,
                       struct pool_reply *reply);
int auth_session_end_idle(struct pool_worker *worker, const struct pool_request *req,
                          struct pool_reply *reply);
int auth_stats(struct pool_worker *worker, const struct pool_request *req,
               struct pool_reply *reply);

/* ---- auth_profile.c ------------------------------------------------------------------ */

int auth_profile_prepare(struct db *db);

int auth_profile_get(struct pool_worker *worker, const struct pool_request *req,
                     struct pool_reply *reply);
int auth_profile_patch(struct pool_worker *worker, const struct pool_request *req,
                       struct pool_reply *reply);
int auth_profile_password(struct pool_worker *worker, const struct pool_request *req,
                          struct pool_reply *reply);

#endif
