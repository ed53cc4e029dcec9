/* SPDX-License-Identifier: MIT */
/*
 * The auth pool: registration, login with throttling, refresh-token rotation with reuse
 * detection, logout, sessions and the profile, behind the message types below. Each reply
 * carries the HTTP status and the exact JSON body of the contract.
 *
 * Messages (payload {"ctx", "body", "params"} as in pool.h):
 *   auth.register, auth.login, auth.refresh      public routes
 *   auth.logout, profile.get, profile.patch,     authenticated: ctx.user_id and
 *   profile.password, sessions.list,             ctx.session_id are set by the front end
 *   sessions.delete (params.id)
 *   session.get {session_id}                     internal: the front end's session cache
 *   session.touch {sessions: [[sid, unix], ...]} internal: batched last activity
 *   session.end_idle {session_id}                internal: ends an idle session
 *   auth.stats                                   internal: {activeSessions} for /metrics
 * Every session that ends is announced with NOTIFY on AUTH_SESSION_CHANNEL, payload the
 * session id, in the transaction that ends it.
 */
#ifndef MANAS360_AUTH_H
#define MANAS360_AUTH_H

#include "manas360/cfg.h"
#include "manas360/db.h"
#include "manas360/pool.h"

#define AUTH_SESSION_CHANNEL "manas360_session"

/* The pool's definition, for pool_new(). Its threads prepare their statements at start. */
extern const struct pool_def auth_pool_def;

/*
 * Creates the first administrator: when no active superadmin exists and
 * cfg->bootstrap_email and cfg->bootstrap_password are both set, creates that account with
 * role superadmin, verified, on the Free plan. An existing account with that email is
 * never changed. Returns 0 (also when there was nothing to do), M360_EINVAL when the email
 * or password breaks the contract's rules, or a database code. Call once at start, before
 * serving; `db` is borrowed and gets the pool's statements prepared on it.
 */
int auth_bootstrap_admin(struct db *db, const struct cfg *cfg);

#endif
