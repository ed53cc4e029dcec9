/* SPDX-License-Identifier: MIT */
/*
 * The auth pool: its message table, registration, login with throttling, refresh-token
 * rotation with reuse detection, logout and the first administrator. Sessions and the
 * profile live in auth_session.c and auth_profile.c.
 */
#include "auth_internal.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "manas360/err.h"
#include "manas360/log.h"
#include "manas360/pw.h"

#define AUTH_LOGIN_FAILURES_MAX 5
#define AUTH_LOGIN_WINDOW_S 900 /* failures older than 15 minutes no longer count */
#define AUTH_OTP_MAX_CHARS 16
#define AUTH_HASH_HEX_BYTES 65 /* SHA-256 in hex, and a NUL */
#define AUTH_INT_TEXT_BYTES 24

static const struct db_stmt auth_stmts[] = {
    {"auth_user_insert",
     "INSERT INTO user_accounts (email, password_hash, first_name, last_name, phone_number,"
     " role_id)"
     " SELECT $1, $2, $3, $4, $5, r.id FROM roles r WHERE r.name = 'user'"
     " RETURNING id, email, first_name, last_name, " SQL_TIME_RFC3339("created_at"),
     5},
    {"auth_free_subscribe",
     "INSERT INTO user_subscriptions (user_id, plan_id, status, starts_at, ends_at)"
     " SELECT $1, p.id, 'active', now(), NULL FROM subscription_plans p"
     " WHERE lower(p.name) = 'free'",
     1},
    /* Serialises the throttle check and the count of one email across every process. */
    {"auth_throttle_lock", "SELECT pg_advisory_xact_lock(hashtextextended('login:' || $1, 0))", 1},
    /* The seconds until the window would hold one failure fewer than the limit; no row while
     * the limit is not reached. */
    {"auth_throttle_wait",
     "SELECT ceil(extract(epoch FROM attempted_at + make_interval(secs => $2) - now()))::bigint"
     "  FROM login_attempts"
     " WHERE email = $1 AND attempted_at > now() - make_interval(secs => $2)"
     " ORDER BY attempted_at DESC OFFSET $3 LIMIT 1",
     3},
    {"auth_attempt_insert",
     "INSERT INTO login_attempts (email, ip_address) VALUES ($1, $2::inet) RETURNING id", 2},
    {"auth_attempt_delete", "DELETE FROM login_attempts WHERE id = $1", 1},
    {"auth_attempts_clear", "DELETE FROM login_attempts WHERE email = $1", 1},
    {"auth_user_by_email",
     "SELECT u.id, u.email, u.password_hash, u.is_active AND u.deleted_at IS NULL,"
     "       u.two_factor_enabled, r.name"
     "  FROM user_accounts u JOIN roles r ON r.id = u.role_id"
     " WHERE lower(u.email) = lower($1)",
     1},
    /* The re-hash replaces only the hash that was verified, never a newer one. */
    {"auth_user_logged_in",
     "UPDATE user_accounts SET last_login_at = now(),"
     " password_hash = CASE WHEN $2::text IS NOT NULL AND password_hash = $3 THEN $2"
     "                      ELSE password_hash END"
     " WHERE id = $1",
     3},
    {"auth_token_insert",
     "INSERT INTO tokens (token_hash, user_id, session_id, expires_at)"
     " VALUES (decode($1, 'hex'), $2, $3, now() + make_interval(secs => $4))",
     4},
    /* The row lock makes two refreshes of one token take turns: the second sees 'rotated'. */
    {"auth_token_lock",
     "SELECT t.id, t.status, t.user_id, t.session_id, t.expires_at <= now(),"
     "       s.ended_at IS NOT NULL OR s.expires_at <= now()"
     "         OR s.last_activity <= now() - make_interval(secs => $2),"
     "       u.is_active AND u.deleted_at IS NULL"
     "  FROM tokens t"
     "  JOIN sessions s ON s.id = t.session_id"
     "  JOIN user_accounts u ON u.id = t.user_id"
     " WHERE t.token_hash = decode($1, 'hex')"
     "   FOR UPDATE OF t",
     2},
    {"auth_token_rotate",
     "WITH successor AS ("
     "  INSERT INTO tokens (token_hash, user_id, session_id, expires_at)"
     "  SELECT decode($2, 'hex'), user_id, session_id, now() + make_interval(secs => $3)"
     "    FROM tokens WHERE id = $1"
     "  RETURNING id)"
     " UPDATE tokens SET status = 'rotated', revoked_at = now(),"
     "        replaced_by = (SELECT id FROM successor)"
     "  WHERE id = $1 AND status = 'active'",
     3},
    {"auth_session_extend",
     "UPDATE sessions SET expires_at = now() + make_interval(secs => $2),"
     "       last_activity = greatest(last_activity, now())"
     " WHERE id = $1 AND ended_at IS NULL",
     2},
    {"auth_superadmin_exists",
     "SELECT EXISTS (SELECT 1 FROM user_accounts u JOIN roles r ON r.id = u.role_id"
     "                WHERE r.name = 'superadmin' AND u.is_active AND u.deleted_at IS NULL)",
     0},
    {"auth_superadmin_insert",
     "INSERT INTO user_accounts (email, password_hash, role_id, is_verified)"
     " SELECT $1, $2, r.id, true FROM roles r WHERE r.name = 'superadmin'"
     " ON CONFLICT DO NOTHING RETURNING id",
     2},
};

/* An access and a refresh token for one session; only the refresh token's hash is stored. */
struct auth_token_pair {
    char access[TOKEN_MAX_BYTES];
    char refresh[TOKEN_MAX_BYTES];
    char refresh_hash[AUTH_HASH_HEX_BYTES];
};

static void auth_int_text(char out[AUTH_INT_TEXT_BYTES], int64_t value)
{
    snprintf(out, AUTH_INT_TEXT_BYTES, "%" PRId64, value);
}

/* Copies a UUID column into a fixed buffer, so it outlives the result it came from. */
static void auth_id_copy(char out[TOKEN_ID_BYTES], const PGresult *res, int row, int col)
{
    snprintf(out, TOKEN_ID_BYTES, "%s", PQgetvalue(res, row, col));
}

/* Gives a new account the Free plan: active at once, never ending. */
static int auth_subscribe_free(struct db *db, const char *user_id)
{
    const char *params[] = {user_id};
    PGresult *res = NULL;
    int rc = db_exec(db, "auth_free_subscribe", 1, params, &res);

    if (rc == 0 && strcmp(PQcmdTuples(res), "1") != 0)
        rc = M360_EINTERNAL; /* the seed data lost its Free plan */
    PQclear(res);
    return rc;
}

static void auth_tokens_wipe(struct auth_token_pair *tokens)
{
    sodium_memzero(tokens, sizeof(*tokens));
}

/* Signs both tokens of session `sid`; keys and lifetimes come from the configuration. */
static int auth_tokens_issue(const struct cfg *cfg, int64_t now, const char *user_id,
                             const char *sid, struct auth_token_pair *out)
{
    struct token_keys keys = {cfg->jwt_secret, cfg->jwt_refresh_secret, cfg->jwt_expiry_s,
                              cfg->jwt_refresh_expiry_s};
    int rc;

    rc =
        token_issue(&keys, TOKEN_ACCESS, user_id, sid, now, out->access, sizeof(out->access), NULL);
    if (rc == 0)
        rc = token_issue(&keys, TOKEN_REFRESH, user_id, sid, now, out->refresh,
                         sizeof(out->refresh), NULL);
    if (rc == 0)
        token_hash_hex(out->refresh, out->refresh_hash);
    return rc;
}

/* Stores the refresh token's hash as the session's live token. */
static int auth_token_store(struct db *db, const struct cfg *cfg, const char *user_id,
                            const char *sid, const struct auth_token_pair *tokens)
{
    char ttl[AUTH_INT_TEXT_BYTES];
    const char *params[] = {tokens->refresh_hash, user_id, sid, ttl};

    auth_int_text(ttl, cfg->jwt_refresh_expiry_s);
    return db_exec(db, "auth_token_insert", 4, params, NULL);
}

/* ---- auth.register ------------------------------------------------------------------- */

static const struct input_field auth_register_spec[] = {
    {"email", INPUT_EMAIL, INPUT_REQUIRED, 0},
    {"password", INPUT_PASSWORD, INPUT_REQUIRED, 0},
    {"firstName", INPUT_NAME, INPUT_NULLABLE, 0},
    {"lastName", INPUT_NAME, INPUT_NULLABLE, 0},
    {"phoneNumber", INPUT_PHONE, INPUT_NULLABLE, 0},
};

struct auth_register_tx {
    const struct pool_request *req;
    const char *email;
    const char *hash;
    PGresult *user; /* id, email, first_name, last_name, created_at */
};

static int auth_register_body(struct db *db, void *arg)
{
    struct auth_register_tx *tx = arg;
    const json_t *body = tx->req->body;
    const char *params[] = {tx->email, tx->hash, input_str(body, "firstName"),
                            input_str(body, "lastName"), input_str(body, "phoneNumber")};
    struct worker_audit audit = {.event = "register", .resource_type = "user", .action = "create"};
    int rc;

    /* A retried transaction starts over. */
    PQclear(tx->user);
    tx->user = NULL;
    rc = db_exec(db, "auth_user_insert", 5, params, &tx->user);
    if (rc != 0)
        return rc;
    if (PQntuples(tx->user) != 1)
        return M360_EINTERNAL;

    audit.user_id = PQgetvalue(tx->user, 0, 0);
    audit.resource_id = audit.user_id;
    rc = auth_subscribe_free(db, audit.user_id);
    if (rc == 0)
        rc = auth_email_verification_queue(db, audit.user_id, PQgetvalue(tx->user, 0, 1),
                                           row_text(tx->user, 0, 2), row_text(tx->user, 0, 3));
    if (rc == 0) {
        audit.details = json_object();
        rc = worker_audit_write(db, tx->req, &audit);
    }
    return rc;
}

static int auth_register_reply(struct pool_reply *reply, const PGresult *user)
{
    json_t *body = json_pack("{s:b, s:{s:s, s:s, s:s, s:s?, s:s?, s:s}}", "success", 1, "user",
                             "id", PQgetvalue(user, 0, 0), "email", PQgetvalue(user, 0, 1), "role",
                             "user", "firstName", row_text(user, 0, 2), "lastName",
                             row_text(user, 0, 3), "createdAt", PQgetvalue(user, 0, 4));

    return worker_reply_json(reply, 201, body);
}

static int auth_register(struct pool_worker *worker, const struct pool_request *req,
                         struct pool_reply *reply)
{
    struct auth_register_tx tx = {.req = req};
    char email[INPUT_EMAIL_MAX_BYTES];
    char hash[PW_HASH_MAX_BYTES];
    int rc;

    if (!worker_body_ok(req, auth_register_spec,
                        sizeof(auth_register_spec) / sizeof(auth_register_spec[0]), reply))
        return 0;
    if (input_email_normalize(input_str(req->body, "email"), email) != 0)
        return M360_EINTERNAL;

    /* About 100 ms of work: done before the transaction, which then holds no lock for it. */
    rc = pw_hash(input_str(req->body, "password"), hash);
    if (rc != 0)
        return rc;

    tx.email = email;
    tx.hash = hash;
    rc = db_tx(worker->db, auth_register_body, &tx);
    if (rc == M360_ECONFLICT &&
        strcmp(db_last_constraint(worker->db), "user_accounts_email_key") == 0) {
        pool_reply_error(reply, 409, "EmailAlreadyRegistered", "This email is already registered",
                         NULL);
        rc = 0;
    } else if (rc == 0) {
        rc = auth_register_reply(reply, tx.user);
        log_info(AUTH_LOG_MODULE, "event=registered req_id=%s user_id=%s",
                 worker_ctx_request_id(req), PQgetvalue(tx.user, 0, 0));
    }

    PQclear(tx.user);
    sodium_memzero(hash, sizeof(hash));
    return rc;
}

/* ---- auth.login ---------------------------------------------------------------------- */

static const struct input_field auth_login_spec[] = {
    {"email", INPUT_EMAIL, INPUT_REQUIRED, 0},
    {"password", INPUT_STRING, INPUT_REQUIRED, 0},
    {"otp", INPUT_STRING, INPUT_NULLABLE, AUTH_OTP_MAX_CHARS},
};

/* One login attempt as it goes through its steps. */
struct auth_login {
    struct pool_worker *worker;
    const struct pool_request *req;
    char email[INPUT_EMAIL_MAX_BYTES];
    int64_t retry_after;              /* > 0: throttled, nothing was counted */
    char attempt_id[TOKEN_ID_BYTES];  /* the failure counted in advance */
    PGresult *user;                   /* id, email, hash, usable, two_factor, role; or none */
    const char *reason;               /* why it failed, for the audit row and the log */
    bool keep_attempt;                /* the failure stays counted */
    char new_hash[PW_HASH_MAX_BYTES]; /* "" unless the stored hash is replaced */
    char sid[TOKEN_ID_BYTES];
    struct auth_token_pair tokens;
};

/*
 * Counts the attempt as a failure before the password is checked, under a per-email lock:
 * parallel guesses then meet the limit too, instead of all passing the check before any
 * failure is written. A success or a refusal that is not a failure takes the count back, in
 * the transaction that writes the login's audit row.
 *
 * XXX: a crash between this count and the verdict leaves a failure counted without its audit
 * row: the account is throttled a little early, never late.
 */
static int auth_login_admit(struct db *db, void *arg)
{
    struct auth_login *login = arg;
    char window[AUTH_INT_TEXT_BYTES];
    char offset[AUTH_INT_TEXT_BYTES];
    const char *params[] = {login->email, window, offset};
    struct worker_client client;
    PGresult *res = NULL;
    int rc;

    login->retry_after = 0;
    login->attempt_id[0] = '\0';
    auth_int_text(window, AUTH_LOGIN_WINDOW_S);
    auth_int_text(offset, AUTH_LOGIN_FAILURES_MAX - 1);
    rc = db_exec(db, "auth_throttle_lock", 1, params, NULL);
    if (rc == 0)
        rc = db_exec(db, "auth_throttle_wait", 3, params, &res);
    if (rc != 0 || PQntuples(res) > 0) {
        if (rc == 0)
            login->retry_after = row_int(res, 0, 0) > 1 ? row_int(res, 0, 0) : 1;
        PQclear(res);
        return rc;
    }
    PQclear(res);
    res = NULL;

    worker_client_read(login->req, &client);
    {
        const char *insert[] = {login->email, client.ip};

        rc = db_exec(db, "auth_attempt_insert", 2, insert, &res);
    }
    if (rc == 0)
        auth_id_copy(login->attempt_id, res, 0, 0);
    PQclear(res);
    return rc;
}

/* Ends a refused attempt: the failure stays counted or is taken back, and is audited. */
static int auth_login_refuse(struct db *db, void *arg)
{
    struct auth_login *login = arg;
    const char *user_id = login->user != NULL ? PQgetvalue(login->user, 0, 0) : NULL;
    const char *params[] = {login->attempt_id};
    struct worker_audit audit = {.user_id = user_id,
                                 .event = "login",
                                 .resource_type = "user",
                                 .resource_id = user_id,
                                 .action = "login",
                                 .failed = true};
    int rc = 0;

    if (!login->keep_attempt)
        rc = db_exec(db, "auth_attempt_delete", 1, params, NULL);
    if (rc != 0)
        return rc;
    audit.details = json_pack("{s:s, s:s}", "email", login->email, "reason", login->reason);
    return worker_audit_write(db, login->req, &audit);
}

static int auth_login_succeed(struct db *db, void *arg)
{
    struct auth_login *login = arg;
    const struct cfg *cfg = login->worker->cfg;
    const char *user_id = PQgetvalue(login->user, 0, 0);
    const char *stored = PQgetvalue(login->user, 0, 2);
    const char *update[] = {user_id, login->new_hash[0] != '\0' ? login->new_hash : NULL, stored};
    const char *clear[] = {login->email};
    int rc;

    rc = auth_session_open(db, login->req, user_id, cfg->jwt_refresh_expiry_s, login->sid);
    if (rc == 0)
        rc = auth_tokens_issue(cfg, login->req->now, user_id, login->sid, &login->tokens);
    if (rc == 0)
        rc = auth_token_store(db, cfg, user_id, login->sid, &login->tokens);
    if (rc == 0)
        rc = db_exec(db, "auth_user_logged_in", 3, update, NULL);
    if (rc == 0)
        rc = db_exec(db, "auth_attempts_clear", 1, clear, NULL);
    if (rc != 0)
        return rc;

    {
        struct worker_audit audit = {.user_id = user_id,
                                     .event = "login",
                                     .resource_type = "session",
                                     .resource_id = login->sid,
                                     .action = "login",
                                     .details = json_pack("{s:s, s:b}", "sessionId", login->sid,
                                                          "rehashed", login->new_hash[0] != '\0')};

        rc = worker_audit_write(db, login->req, &audit);
    }
    return rc;
}

/* Answers a refused login after recording it. */
static int auth_login_refused(struct auth_login *login, struct pool_reply *reply, int status,
                              const char *error, const char *message)
{
    int rc = db_tx(login->worker->db, auth_login_refuse, login);

    if (rc != 0)
        return rc;
    log_info(AUTH_LOG_MODULE, "event=login_refused req_id=%s user_id=%s reason=%s",
             worker_ctx_request_id(login->req),
             login->user != NULL ? PQgetvalue(login->user, 0, 0) : "none", login->reason);
    pool_reply_error(reply, status, error, message, NULL);
    return 0;
}

static int auth_login_credentials_refused(struct auth_login *login, struct pool_reply *reply,
                                          const char *reason)
{
    login->reason = reason;
    login->keep_attempt = true;
    return auth_login_refused(login, reply, 401, "InvalidCredentials", "Invalid email or password");
}

/*
 * After a correct password: a disabled account, or a second factor that cannot be checked.
 * Answers and returns true when the login stops here.
 */
static bool auth_login_gate(struct auth_login *login, struct pool_reply *reply, int *rc)
{
    const char *otp = input_str(login->req->body, "otp");

    if (!row_bool(login->user, 0, 3)) {
        login->reason = "account_disabled";
        login->keep_attempt = false;
        *rc = auth_login_refused(login, reply, 403, "AccountDisabled", "This account is disabled");
        return true;
    }
    if (!row_bool(login->user, 0, 4))
        return false;

    /* XXX: TOTP verification is not built yet, so an account with two-factor enabled cannot
     * log in: a missing code gets OtpRequired and any code gets InvalidOtp. */
    if (otp == NULL) {
        login->reason = "otp_required";
        login->keep_attempt = false;
        *rc = auth_login_refused(login, reply, 401, "OtpRequired", "A one-time code is required");
    } else {
        login->reason = "invalid_otp";
        login->keep_attempt = true;
        *rc = auth_login_refused(login, reply, 401, "InvalidOtp", "Invalid one-time code");
    }
    return true;
}

static int auth_login_reply(struct auth_login *login, struct pool_reply *reply)
{
    json_t *body =
        json_pack("{s:b, s:s, s:s, s:s, s:I, s:{s:s, s:s, s:s}}", "success", 1, "accessToken",
                  login->tokens.access, "refreshToken", login->tokens.refresh, "tokenType",
                  "Bearer", "expiresIn", (json_int_t)login->worker->cfg->jwt_expiry_s, "user", "id",
                  PQgetvalue(login->user, 0, 0), "email", PQgetvalue(login->user, 0, 1), "role",
                  PQgetvalue(login->user, 0, 5));

    log_info(AUTH_LOG_MODULE, "event=login req_id=%s user_id=%s session_id=%s rehashed=%d",
             worker_ctx_request_id(login->req), PQgetvalue(login->user, 0, 0), login->sid,
             login->new_hash[0] != '\0');
    return worker_reply_json(reply, 200, body);
}

/* Checks the password; on a match, answers the refusals that need one, or logs in. */
static int auth_login_verified(struct auth_login *login, struct pool_reply *reply)
{
    const char *password = input_str(login->req->body, "password");
    bool rehash = false;
    int rc = 0;

    if (pw_verify(password, PQgetvalue(login->user, 0, 2), &rehash) != 0)
        return auth_login_credentials_refused(login, reply, "wrong_password");
    if (auth_login_gate(login, reply, &rc))
        return rc;

    /* An imported bcrypt hash (or weaker argon2 limits) is replaced now that we know the
     * password; hashed before the transaction, like every hash. */
    if (rehash) {
        rc = pw_hash(password, login->new_hash);
        if (rc != 0)
            return rc;
    }
    rc = db_tx(login->worker->db, auth_login_succeed, login);
    if (rc == 0)
        rc = auth_login_reply(login, reply);
    return rc;
}

static int auth_login(struct pool_worker *worker, const struct pool_request *req,
                      struct pool_reply *reply)
{
    struct auth_login *login = NULL;
    const char *params[1];
    int rc;

    if (!worker_body_ok(req, auth_login_spec, sizeof(auth_login_spec) / sizeof(auth_login_spec[0]),
                        reply))
        return 0;

    /* Two tokens and a hash are too much for a worker's stack frame to carry idly. */
    login = calloc(1, sizeof(*login));
    if (login == NULL)
        return M360_ENOMEM;
    login->worker = worker;
    login->req = req;
    rc = input_email_normalize(input_str(req->body, "email"), login->email) != 0 ? M360_EINTERNAL
                                                                                 : 0;
    if (rc == 0)
        rc = db_tx(worker->db, auth_login_admit, login);
    if (rc != 0)
        goto done;

    /* Checked before the password, so a throttled guess learns nothing, right or wrong. */
    if (login->retry_after > 0) {
        log_info(AUTH_LOG_MODULE, "event=login_throttled req_id=%s retry_after=%" PRId64,
                 worker_ctx_request_id(req), login->retry_after);
        pool_reply_error(reply, 429, "TooManyAttempts",
                         "Too many failed login attempts; try again later", NULL);
        pool_reply_header(reply, "Retry-After: %" PRId64, login->retry_after);
        goto done;
    }

    params[0] = login->email;
    rc = db_exec(worker->db, "auth_user_by_email", 1, params, &login->user);
    if (rc != 0)
        goto done;
    if (PQntuples(login->user) != 1) {
        /* Costs what a wrong password costs, so timing does not tell which emails exist. */
        PQclear(login->user);
        login->user = NULL;
        pw_verify_dummy(input_str(req->body, "password"));
        rc = auth_login_credentials_refused(login, reply, "unknown_email");
        goto done;
    }
    rc = auth_login_verified(login, reply);

done:
    if (login != NULL) {
        PQclear(login->user);
        sodium_memzero(login, sizeof(*login));
    }
    free(login);
    return rc;
}

/* ---- auth.refresh -------------------------------------------------------------------- */

static const struct input_field auth_refresh_spec[] = {
    {"refreshToken", INPUT_STRING, INPUT_REQUIRED, 0},
};

enum auth_refresh_outcome {
    AUTH_REFRESH_REFUSED,
    AUTH_REFRESH_REUSED,
    AUTH_REFRESH_ROTATED,
};

struct auth_refresh {
    struct pool_worker *worker;
    const struct pool_request *req;
    char hash[AUTH_HASH_HEX_BYTES]; /* of the presented token */
    enum auth_refresh_outcome outcome;
    char token_id[TOKEN_ID_BYTES];
    char user_id[TOKEN_ID_BYTES];
    char sid[TOKEN_ID_BYTES];
    struct auth_token_pair tokens;
};

/* A retired token came back: someone holds a copy. The whole login goes. */
static int auth_refresh_reuse(struct db *db, struct auth_refresh *r)
{
    char owner[TOKEN_ID_BYTES];
    struct worker_audit audit = {.user_id = r->user_id,
                                 .event = "refresh_token_reuse",
                                 .resource_type = "session",
                                 .resource_id = r->sid,
                                 .action = "revoke",
                                 .failed = true};
    int rc = auth_session_end(db, r->sid, NULL, AUTH_END_REUSE, owner);

    if (rc != 0)
        return rc;
    audit.details = json_pack("{s:s}", "sessionId", r->sid);
    rc = worker_audit_write(db, r->req, &audit);
    if (rc == 0)
        r->outcome = AUTH_REFRESH_REUSED;
    return rc;
}

static int auth_refresh_rotate(struct db *db, struct auth_refresh *r)
{
    const struct cfg *cfg = r->worker->cfg;
    char ttl[AUTH_INT_TEXT_BYTES];
    const char *rotate[] = {r->token_id, r->tokens.refresh_hash, ttl};
    const char *extend[] = {r->sid, ttl};
    PGresult *res = NULL;
    int rc;

    auth_int_text(ttl, cfg->jwt_refresh_expiry_s);
    rc = auth_tokens_issue(cfg, r->req->now, r->user_id, r->sid, &r->tokens);
    if (rc == 0)
        rc = db_exec(db, "auth_token_rotate", 3, rotate, &res);
    if (rc == 0 && strcmp(PQcmdTuples(res), "1") != 0)
        rc = M360_EINTERNAL; /* the row is locked and was active: it must rotate */
    PQclear(res);
    if (rc == 0)
        rc = db_exec(db, "auth_session_extend", 2, extend, NULL);
    if (rc != 0)
        return rc;

    {
        struct worker_audit audit = {.user_id = r->user_id,
                                     .event = "token_refresh",
                                     .resource_type = "session",
                                     .resource_id = r->sid,
                                     .action = "rotate",
                                     .details = json_pack("{s:s}", "sessionId", r->sid)};

        rc = worker_audit_write(db, r->req, &audit);
    }
    if (rc == 0)
        r->outcome = AUTH_REFRESH_ROTATED;
    return rc;
}

static int auth_refresh_body(struct db *db, void *arg)
{
    struct auth_refresh *r = arg;
    char idle[AUTH_INT_TEXT_BYTES];
    const char *params[] = {r->hash, idle};
    PGresult *res = NULL;
    const char *status;
    int rc;

    r->outcome = AUTH_REFRESH_REFUSED;
    auth_int_text(idle, r->worker->cfg->session_idle_timeout_s);
    rc = db_exec(db, "auth_token_lock", 2, params, &res);
    if (rc != 0 || PQntuples(res) != 1)
        goto done;

    auth_id_copy(r->token_id, res, 0, 0);
    auth_id_copy(r->user_id, res, 0, 2);
    auth_id_copy(r->sid, res, 0, 3);
    status = PQgetvalue(res, 0, 1);
    if (strcmp(status, "rotated") == 0) {
        rc = auth_refresh_reuse(db, r);
        goto done;
    }

    /* Revoked, expired, or its session or account gone: refused, and nothing changes. */
    if (strcmp(status, "active") != 0 || row_bool(res, 0, 4) || row_bool(res, 0, 5) ||
        !row_bool(res, 0, 6))
        goto done;
    rc = auth_refresh_rotate(db, r);

done:
    PQclear(res);
    return rc;
}

static int auth_refresh_reply(struct auth_refresh *r, struct pool_reply *reply)
{
    json_t *body = json_pack("{s:b, s:s, s:s, s:s, s:I}", "success", 1, "accessToken",
                             r->tokens.access, "refreshToken", r->tokens.refresh, "tokenType",
                             "Bearer", "expiresIn", (json_int_t)r->worker->cfg->jwt_expiry_s);

    return worker_reply_json(reply, 200, body);
}

static int auth_refresh(struct pool_worker *worker, const struct pool_request *req,
                        struct pool_reply *reply)
{
    const struct cfg *cfg = worker->cfg;
    struct token_keys keys = {cfg->jwt_secret, cfg->jwt_refresh_secret, cfg->jwt_expiry_s,
                              cfg->jwt_refresh_expiry_s};
    const char *token;
    struct auth_refresh *r;
    int rc;

    if (!worker_body_ok(req, auth_refresh_spec,
                        sizeof(auth_refresh_spec) / sizeof(auth_refresh_spec[0]), reply))
        return 0;
    token = input_str(req->body, "refreshToken");
    if (token_verify(&keys, TOKEN_REFRESH, token, req->now, NULL) != TOKEN_VALID) {
        pool_reply_error(reply, 401, "InvalidRefreshToken", "Invalid refresh token", NULL);
        return 0;
    }

    r = calloc(1, sizeof(*r));
    if (r == NULL)
        return M360_ENOMEM;
    r->worker = worker;
    r->req = req;
    token_hash_hex(token, r->hash);
    rc = db_tx(worker->db, auth_refresh_body, r);
    if (rc == 0 && r->outcome == AUTH_REFRESH_ROTATED) {
        rc = auth_refresh_reply(r, reply);
    } else if (rc == 0) {
        if (r->outcome == AUTH_REFRESH_REUSED)
            log_warn(AUTH_LOG_MODULE,
                     "event=refresh_token_reuse req_id=%s user_id=%s session_id=%s",
                     worker_ctx_request_id(req), r->user_id, r->sid);
        pool_reply_error(reply, 401, "InvalidRefreshToken", "Invalid refresh token", NULL);
    }

    auth_tokens_wipe(&r->tokens);
    free(r);
    return rc;
}

/* ---- auth.logout --------------------------------------------------------------------- */

struct auth_logout_tx {
    const struct pool_request *req;
    const char *user_id;
    int ended;
};

static int auth_logout_body(struct db *db, void *arg)
{
    struct auth_logout_tx *tx = arg;
    int rc;

    rc = auth_sessions_end_user(db, tx->user_id, NULL, AUTH_END_LOGOUT, &tx->ended);
    if (rc != 0)
        return rc;

    {
        struct worker_audit audit = {.user_id = tx->user_id,
                                     .event = "logout",
                                     .resource_type = "session",
                                     .resource_id = worker_ctx_session(tx->req),
                                     .action = "logout",
                                     .details = json_pack("{s:i}", "sessionsEnded", tx->ended)};

        rc = worker_audit_write(db, tx->req, &audit);
    }
    return rc;
}

static int auth_logout(struct pool_worker *worker, const struct pool_request *req,
                       struct pool_reply *reply)
{
    struct auth_logout_tx tx = {.req = req, .user_id = worker_ctx_user(req)};
    int rc;

    if (!worker_body_ok(req, NULL, 0, reply))
        return 0;
    if (tx.user_id == NULL) {
        worker_reply_unauthorized(reply);
        return 0;
    }

    rc = db_tx(worker->db, auth_logout_body, &tx);
    if (rc != 0)
        return rc;
    log_info(AUTH_LOG_MODULE, "event=logout req_id=%s user_id=%s sessions_ended=%d",
             worker_ctx_request_id(req), tx.user_id, tx.ended);
    return worker_reply_json(reply, 200,
                             json_pack("{s:b, s:s}", "success", 1, "message", "Logged out"));
}

/* ---- First administrator ------------------------------------------------------------- */

struct auth_bootstrap_tx {
    const char *email;
    const char *hash;
    bool created;
};

static int auth_bootstrap_body(struct db *db, void *arg)
{
    struct auth_bootstrap_tx *tx = arg;
    const char *params[] = {tx->email, tx->hash};
    struct worker_audit audit = {
        .event = "register", .resource_type = "user", .action = "bootstrap"};
    PGresult *res = NULL;
    int rc;

    tx->created = false;
    rc = db_exec(db, "auth_superadmin_insert", 2, params, &res);
    if (rc != 0 || PQntuples(res) != 1)
        goto done;

    audit.user_id = PQgetvalue(res, 0, 0);
    audit.resource_id = audit.user_id;
    rc = auth_subscribe_free(db, audit.user_id);
    if (rc == 0) {
        audit.details = json_object();
        rc = worker_audit_write(db, NULL, &audit);
    }
    tx->created = rc == 0;

done:
    PQclear(res);
    return rc;
}

/* True when an active superadmin exists; false also when the question fails (rc set). */
static bool auth_superadmin_exists(struct db *db, int *rc)
{
    PGresult *res = NULL;
    bool exists;

    *rc = db_exec(db, "auth_superadmin_exists", 0, NULL, &res);
    exists = *rc == 0 && row_bool(res, 0, 0);
    PQclear(res);
    return exists;
}

int auth_bootstrap_admin(struct db *db, const struct cfg *cfg)
{
    struct auth_bootstrap_tx tx = {0};
    char email[INPUT_EMAIL_MAX_BYTES];
    char hash[PW_HASH_MAX_BYTES];
    const char *password = cfg->bootstrap_password;
    int rc;

    if (cfg->bootstrap_email == NULL || password == NULL)
        return 0;
    /* The audit row of the new account needs the shared writer's statement too. */
    rc = worker_prepare(db);
    if (rc == 0)
        rc = db_prepare(db, auth_stmts, sizeof(auth_stmts) / sizeof(auth_stmts[0]));
    if (rc != 0 || auth_superadmin_exists(db, &rc))
        return rc;

    if (input_email_normalize(cfg->bootstrap_email, email) != 0 ||
        input_problem(INPUT_PASSWORD, password, strlen(password)) != NULL) {
        log_err(AUTH_LOG_MODULE, "event=bootstrap_refused reason=invalid_email_or_password");
        return M360_EINVAL;
    }

    rc = pw_hash(password, hash);
    if (rc != 0)
        return rc;
    tx.email = email;
    tx.hash = hash;
    rc = db_tx(db, auth_bootstrap_body, &tx);
    sodium_memzero(hash, sizeof(hash));
    if (rc != 0)
        return rc;

    if (tx.created)
        log_notice(AUTH_LOG_MODULE, "event=bootstrap_admin_created email=%s", email);
    else
        log_notice(AUTH_LOG_MODULE, "event=bootstrap_admin_skipped email=%s reason=email_taken",
                   email);
    return 0;
}

/* ---- The pool ------------------------------------------------------------------------ */

static const struct pool_route auth_routes[] = {
    {"auth.register", auth_register},
    {"auth.login", auth_login},
    {"auth.refresh", auth_refresh},
    {"auth.logout", auth_logout},
    {"auth.verify_email", auth_verify_email},
    {"auth.password_forgot", auth_password_forgot},
    {"auth.password_reset", auth_password_reset},
    {"profile.get", auth_profile_get},
    {"profile.patch", auth_profile_patch},
    {"profile.password", auth_profile_password},
    {"sessions.list", auth_sessions_list},
    {"sessions.delete", auth_sessions_delete},
    {"session.get", auth_session_get},
    {"session.touch", auth_session_touch},
    {"session.end_idle", auth_session_end_idle},
    {"auth.stats", auth_stats},
    {"admin.users.list", auth_admin_users_list},
    {"admin.users.delete", auth_admin_users_delete},
    {"admin.users.role", auth_admin_users_role},
    {"admin.analytics", auth_admin_analytics},
    {"admin.audit_logs", auth_admin_audit_logs},
    {"data.export", auth_export},
    {"admin.settings.get", auth_admin_settings_get},
    {"admin.settings.patch", auth_admin_settings_patch},
    {"admin.roles.create", auth_admin_roles_create},
};

static int auth_thread_init(struct pool_worker *worker)
{
    int rc;

    /* Hashing and token signing need libsodium ready; a second call is a cheap no-op. */
    if (sodium_init() < 0)
        return M360_EINTERNAL;
    rc = worker_prepare(worker->db);
    if (rc == 0)
        rc = db_prepare(worker->db, auth_stmts, sizeof(auth_stmts) / sizeof(auth_stmts[0]));
    if (rc == 0)
        rc = auth_session_prepare(worker->db);
    if (rc == 0)
        rc = auth_profile_prepare(worker->db);
    if (rc == 0)
        rc = auth_admin_prepare(worker->db);
    if (rc == 0)
        rc = auth_export_prepare(worker->db);
    if (rc == 0)
        rc = auth_settings_prepare(worker->db);
    if (rc == 0)
        rc = auth_email_prepare(worker->db);
    return rc;
}

const struct pool_def auth_pool_def = {
    .name = "auth",
    .routes = auth_routes,
    .nroutes = sizeof(auth_routes) / sizeof(auth_routes[0]),
    .thread_init = auth_thread_init,
};
