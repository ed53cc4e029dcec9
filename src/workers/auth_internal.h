/* SPDX-License-Identifier: MIT */
/* What the auth pool's files share: their handlers and statements. */
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
#include "worker.h"

#define AUTH_LOG_MODULE "auth"

/* The announcement of one ended session, for a statement whose `ended` CTE returns ids. */
#define AUTH_SQL_NOTIFY_ENDED "SELECT pg_notify('" AUTH_SESSION_CHANNEL "', id::text) FROM ended"

/* Why a session ended: values of the schema's session_end_reason domain. */
#define AUTH_END_LOGOUT "logout"
#define AUTH_END_BY_USER "ended_by_user"
#define AUTH_END_PASSWORD "password_changed"
#define AUTH_END_REUSE "refresh_token_reuse"
#define AUTH_END_IDLE "idle_timeout"
#define AUTH_END_DELETED "user_deleted"
#define AUTH_END_ROLE "role_changed"
#define AUTH_END_RESET "password_reset"

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

/*
 * The live sessions of `user_id`, newest first, as GET /api/sessions lists them; `current_sid`
 * (may be NULL) is the one marked current. *sessions is a new array the caller owns.
 */
int auth_sessions_json(struct db *db, const char *user_id, const char *current_sid,
                       json_t **sessions);

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

/*
 * The user object of GET /api/profile for `user_id`; *user is a new object the caller owns,
 * or NULL when the user is missing, inactive or deleted.
 */
int auth_profile_user(struct db *db, const char *user_id, json_t **user);

int auth_profile_get(struct pool_worker *worker, const struct pool_request *req,
                     struct pool_reply *reply);
int auth_profile_patch(struct pool_worker *worker, const struct pool_request *req,
                       struct pool_reply *reply);
int auth_profile_password(struct pool_worker *worker, const struct pool_request *req,
                          struct pool_reply *reply);

/* ---- auth_admin.c -------------------------------------------------------------------- */

/* The audit_logs columns auth_audit_log_json() reads, in its order, for `FROM audit_logs`. */
#define AUTH_SQL_AUDIT_COLUMNS                                                                     \
    "id, user_id, event_type, resource_type, resource_id, action, status, details::text,"          \
    " host(ip_address), " SQL_TIME_RFC3339("created_at")

int auth_admin_prepare(struct db *db);

/* One audit row of AUTH_SQL_AUDIT_COLUMNS as the contract's AuditLog; NULL when out of memory. */
json_t *auth_audit_log_json(const PGresult *res, int row);

int auth_admin_users_list(struct pool_worker *worker, const struct pool_request *req,
                          struct pool_reply *reply);
int auth_admin_users_delete(struct pool_worker *worker, const struct pool_request *req,
                            struct pool_reply *reply);
int auth_admin_users_role(struct pool_worker *worker, const struct pool_request *req,
                          struct pool_reply *reply);
int auth_admin_analytics(struct pool_worker *worker, const struct pool_request *req,
                         struct pool_reply *reply);
int auth_admin_audit_logs(struct pool_worker *worker, const struct pool_request *req,
                          struct pool_reply *reply);

/* ---- auth_export.c ------------------------------------------------------------------- */

int auth_export_prepare(struct db *db);

int auth_export(struct pool_worker *worker, const struct pool_request *req,
                struct pool_reply *reply);

/* ---- auth_settings.c ----------------------------------------------------------------- */

int auth_settings_prepare(struct db *db);

int auth_admin_settings_get(struct pool_worker *worker, const struct pool_request *req,
                            struct pool_reply *reply);
int auth_admin_settings_patch(struct pool_worker *worker, const struct pool_request *req,
                              struct pool_reply *reply);
int auth_admin_roles_create(struct pool_worker *worker, const struct pool_request *req,
                            struct pool_reply *reply);

/* ---- auth_email.c -------------------------------------------------------------------- */

/* Prepares the one-time token and outbox statements. */
int auth_email_prepare(struct db *db);

/*
 * Issues a verification token (24 hours) for `user_id` and queues its message to `email`,
 * addressed to the names when there are any (NULL allowed). Runs in the caller's
 * transaction, so the message exists exactly when the account does.
 */
int auth_email_verification_queue(struct db *db, const char *user_id, const char *email,
                                  const char *first_name, const char *last_name);

int auth_verify_email(struct pool_worker *worker, const struct pool_request *req,
                      struct pool_reply *reply);
int auth_password_forgot(struct pool_worker *worker, const struct pool_request *req,
                         struct pool_reply *reply);
int auth_password_reset(struct pool_worker *worker, const struct pool_request *req,
                        struct pool_reply *reply);

#endif
