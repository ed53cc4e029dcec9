/* SPDX-License-Identifier: MIT */
/*
 * Accounts by email in the auth pool: the verification message queued at registration,
 * confirming an address, and resetting a forgotten password. One-time tokens are 32 random
 * bytes in base64url; only their SHA-256 is stored, and a presented token is found by its
 * hash. The raw token lives in the outbox payload until the message is sent.
 */
#include "auth_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "manas360/err.h"
#include "manas360/log.h"
#include "manas360/notify.h"
#include "manas360/pw.h"

#define AUTH_OTT_RANDOM_BYTES 32
#define AUTH_OTT_BYTES                                                                             \
    sodium_base64_ENCODED_LEN(AUTH_OTT_RANDOM_BYTES, sodium_base64_VARIANT_URLSAFE_NO_PADDING)
#define AUTH_OTT_MAX_CHARS 256 /* longer than any token issued; anything longer is refused */
#define AUTH_OTT_HASH_HEX_BYTES 65
#define AUTH_VERIFY_TTL_S 86400 /* 24 hours */
#define AUTH_RESET_TTL_S 3600   /* 1 hour */
#define AUTH_RESET_MAX 5        /* reset messages per account ... */
#define AUTH_RESET_WINDOW_S 900 /* ... within 15 minutes */
#define AUTH_EMAIL_INT_BYTES 24
#define AUTH_NAME_MAX_BYTES (2 * INPUT_NAME_MAX_CHARS * 4 + 2)

#define AUTH_PURPOSE_VERIFY "verify_email"
#define AUTH_PURPOSE_RESET "password_reset"

static const struct db_stmt auth_email_stmts[] = {
    {"auth_ott_insert",
     "INSERT INTO one_time_tokens (token_hash, user_id, purpose, expires_at)"
     " VALUES (decode($1, 'hex'), $2, $3, now() + make_interval(secs => $4))",
     4},
    /* A live token of a usable account; the lock makes a second use wait, then miss. */
    {"auth_ott_lock",
     "SELECT t.user_id FROM one_time_tokens t JOIN user_accounts u ON u.id = t.user_id"
     " WHERE t.token_hash = decode($1, 'hex') AND t.purpose = $2 AND t.used_at IS NULL"
     "   AND t.expires_at > now() AND u.is_active AND u.deleted_at IS NULL"
     "   FOR UPDATE OF t",
     2},
    /* Uses the token, and voids the account's other outstanding ones of that purpose. */
    {"auth_ott_use",
     "UPDATE one_time_tokens SET used_at = now()"
     " WHERE user_id = $1 AND purpose = $2 AND used_at IS NULL",
     2},
    {"auth_user_verify", "UPDATE user_accounts SET is_verified = true WHERE id = $1", 1},
    {"auth_reset_user",
     "SELECT id, email, nullif(concat_ws(' ', first_name, last_name), '') FROM user_accounts"
     " WHERE lower(email) = lower($1) AND is_active AND deleted_at IS NULL",
     1},
    /* Serialises the count and the issue of one account's reset tokens across processes. */
    {"auth_reset_lock", "SELECT pg_advisory_xact_lock(hashtextextended('reset:' || $1, 0))", 1},
    {"auth_reset_count",
     "SELECT count(*) FROM one_time_tokens"
     " WHERE user_id = $1 AND purpose = 'password_reset'"
     "   AND created_at > now() - make_interval(secs => $2)",
     2},
    {"auth_reset_password",
     "UPDATE user_accounts SET password_hash = $2"
     " WHERE id = $1 AND is_active AND deleted_at IS NULL",
     2},
};

int auth_email_prepare(struct db *db)
{
    int rc =
        db_prepare(db, auth_email_stmts, sizeof(auth_email_stmts) / sizeof(auth_email_stmts[0]));

    return rc == 0 ? notify_prepare(db) : rc;
}

/*
 * Stores the hash of a new token for `user_id` and queues its message to `email` in the
 * caller's transaction. The raw token leaves this function only inside the outbox payload.
 */
static int auth_ott_issue(struct db *db, const char *user_id, const char *purpose, int64_t ttl_s,
                          const char *email, const char *name)
{
    unsigned char raw[AUTH_OTT_RANDOM_BYTES];
    char token[AUTH_OTT_BYTES];
    char hash[AUTH_OTT_HASH_HEX_BYTES];
    char ttl[AUTH_EMAIL_INT_BYTES];
    const char *params[] = {hash, user_id, purpose, ttl};
    struct notify_message msg = {.to_address = email, .to_name = name, .template = purpose};
    json_t *payload = NULL;
    int rc;

    randombytes_buf(raw, sizeof(raw));
    sodium_bin2base64(token, sizeof(token), raw, sizeof(raw),
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    token_hash_hex(token, hash);
    snprintf(ttl, sizeof(ttl), "%" PRId64, ttl_s);

    rc = db_exec(db, "auth_ott_insert", 4, params, NULL);
    if (rc == 0) {
        payload = json_pack("{s:s}", "token", token);
        msg.payload = payload;
        rc = payload != NULL ? notify_queue(db, &msg) : M360_ENOMEM;
    }

    json_decref(payload);
    sodium_memzero(raw, sizeof(raw));
    sodium_memzero(token, sizeof(token));
    return rc;
}

int auth_email_verification_queue(struct db *db, const char *user_id, const char *email,
                                  const char *first_name, const char *last_name)
{
    char name[AUTH_NAME_MAX_BYTES];

    snprintf(name, sizeof(name), "%s%s%s", first_name != NULL ? first_name : "",
             first_name != NULL && last_name != NULL ? " " : "",
             last_name != NULL ? last_name : "");
    return auth_ott_issue(db, user_id, AUTH_PURPOSE_VERIFY, AUTH_VERIFY_TTL_S, email,
                          name[0] != '\0' ? name : NULL);
}

/* Locks the live token whose hash is `hash`; *user_id is "" when there is none. */
static int auth_ott_lock(struct db *db, const char *hash, const char *purpose,
                         char user_id[TOKEN_ID_BYTES])
{
    const char *params[] = {hash, purpose};
    PGresult *res = NULL;
    int rc = db_exec(db, "auth_ott_lock", 2, params, &res);

    user_id[0] = '\0';
    if (rc == 0 && PQntuples(res) == 1)
        snprintf(user_id, TOKEN_ID_BYTES, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    return rc;
}

static int auth_ott_use(struct db *db, const char *user_id, const char *purpose)
{
    const char *params[] = {user_id, purpose};

    return db_exec(db, "auth_ott_use", 2, params, NULL);
}

static void auth_reply_bad_token(struct pool_reply *reply)
{
    worker_reply_invalid_field(reply, "token", "is invalid, used or expired");
}

/* ---- auth.verify_email --------------------------------------------------------------- */

static const struct input_field auth_token_spec[] = {
    {"token", INPUT_STRING, INPUT_REQUIRED, AUTH_OTT_MAX_CHARS},
};

struct auth_verify_tx {
    const struct pool_request *req;
    const char *hash;
    char user_id[TOKEN_ID_BYTES]; /* "" when the token was refused */
};

static int auth_verify_body(struct db *db, void *arg)
{
    struct auth_verify_tx *tx = arg;
    struct worker_audit audit = {
        .event = "email_verified", .resource_type = "user", .action = "verify"};
    const char *params[1];
    int rc;

    rc = auth_ott_lock(db, tx->hash, AUTH_PURPOSE_VERIFY, tx->user_id);
    if (rc != 0 || tx->user_id[0] == '\0')
        return rc;

    params[0] = tx->user_id;
    rc = auth_ott_use(db, tx->user_id, AUTH_PURPOSE_VERIFY);
    if (rc == 0)
        rc = db_exec(db, "auth_user_verify", 1, params, NULL);
    if (rc != 0)
        return rc;
    audit.user_id = tx->user_id;
    audit.resource_id = tx->user_id;
    audit.details = json_object();
    return worker_audit_write(db, tx->req, &audit);
}

int auth_verify_email(struct pool_worker *worker, const struct pool_request *req,
                      struct pool_reply *reply)
{
    char hash[AUTH_OTT_HASH_HEX_BYTES];
    struct auth_verify_tx tx = {.req = req, .hash = hash};
    int rc;

    if (!worker_body_ok(req, auth_token_spec, 1, reply))
        return 0;
    token_hash_hex(input_str(req->body, "token"), hash);

    rc = db_tx(worker->db, auth_verify_body, &tx);
    if (rc != 0)
        return rc;
    if (tx.user_id[0] == '\0') {
        auth_reply_bad_token(reply);
        return 0;
    }
    log_info(AUTH_LOG_MODULE, "event=email_verified req_id=%s user_id=%s",
             worker_ctx_request_id(req), tx.user_id);
    return worker_reply_json(reply, 200,
                             json_pack("{s:b, s:s}", "success", 1, "message", "Email verified"));
}

/* ---- auth.password_forgot ------------------------------------------------------------ */

static const struct input_field auth_forgot_spec[] = {
    {"email", INPUT_EMAIL, INPUT_REQUIRED, 0},
};

struct auth_forgot_tx {
    const struct pool_request *req;
    const char *user_id;
    const char *email;
    const char *name;
    bool queued;
};

static int auth_forgot_body(struct db *db, void *arg)
{
    struct auth_forgot_tx *tx = arg;
    char window[AUTH_EMAIL_INT_BYTES];
    const char *params[] = {tx->user_id, window};
    struct worker_audit audit = {.user_id = tx->user_id,
                                 .event = "password_reset_requested",
                                 .resource_type = "user",
                                 .resource_id = tx->user_id,
                                 .action = "request"};
    PGresult *res = NULL;
    int rc;

    tx->queued = false;
    snprintf(window, sizeof(window), "%d", AUTH_RESET_WINDOW_S);
    rc = db_exec(db, "auth_reset_lock", 1, params, NULL);
    if (rc == 0)
        rc = db_exec(db, "auth_reset_count", 2, params, &res);
    if (rc == 0 && row_int(res, 0, 0) < AUTH_RESET_MAX) {
        rc = auth_ott_issue(db, tx->user_id, AUTH_PURPOSE_RESET, AUTH_RESET_TTL_S, tx->email,
                            tx->name);
        tx->queued = rc == 0;
    }
    PQclear(res);
    if (rc != 0)
        return rc;

    audit.details = json_pack("{s:b}", "queued", tx->queued);
    return worker_audit_write(db, tx->req, &audit);
}

/* The same 202 whether or not the address belongs to anyone, or anything was queued. */
static int auth_forgot_reply(struct pool_reply *reply)
{
    return worker_reply_json(reply, 202,
                             json_pack("{s:b, s:s}", "success", 1, "message",
                                       "If the account exists, a reset email is on its way"));
}

int auth_password_forgot(struct pool_worker *worker, const struct pool_request *req,
                         struct pool_reply *reply)
{
    char email[INPUT_EMAIL_MAX_BYTES];
    const char *params[] = {email};
    struct auth_forgot_tx tx = {.req = req};
    PGresult *res = NULL;
    int rc;

    if (!worker_body_ok(req, auth_forgot_spec, 1, reply))
        return 0;
    if (input_email_normalize(input_str(req->body, "email"), email) != 0)
        return M360_EINTERNAL;

    rc = db_exec(worker->db, "auth_reset_user", 1, params, &res);
    if (rc != 0 || PQntuples(res) != 1) {
        PQclear(res);
        return rc != 0 ? rc : auth_forgot_reply(reply);
    }

    tx.user_id = PQgetvalue(res, 0, 0);
    tx.email = PQgetvalue(res, 0, 1);
    tx.name = row_text(res, 0, 2);
    rc = db_tx(worker->db, auth_forgot_body, &tx);
    if (rc == 0) {
        log_info(AUTH_LOG_MODULE, "event=password_reset_requested req_id=%s user_id=%s queued=%s",
                 worker_ctx_request_id(req), tx.user_id, tx.queued ? "yes" : "no");
        rc = auth_forgot_reply(reply);
    }
    PQclear(res);
    return rc;
}

/* ---- auth.password_reset ------------------------------------------------------------- */

static const struct input_field auth_reset_spec[] = {
    {"token", INPUT_STRING, INPUT_REQUIRED, AUTH_OTT_MAX_CHARS},
    {"newPassword", INPUT_PASSWORD, INPUT_REQUIRED, 0},
};

struct auth_reset_tx {
    const struct pool_request *req;
    const char *hash;
    const char *new_hash;
    char user_id[TOKEN_ID_BYTES]; /* "" when the token was refused */
    int ended;
};

static int auth_reset_body(struct db *db, void *arg)
{
    struct auth_reset_tx *tx = arg;
    const char *params[] = {tx->user_id, tx->new_hash};
    int rc;

    rc = auth_ott_lock(db, tx->hash, AUTH_PURPOSE_RESET, tx->user_id);
    if (rc != 0 || tx->user_id[0] == '\0')
        return rc;

    rc = db_exec(db, "auth_reset_password", 2, params, NULL);
    if (rc == 0)
        rc = auth_ott_use(db, tx->user_id, AUTH_PURPOSE_RESET);
    if (rc == 0)
        rc = auth_sessions_end_user(db, tx->user_id, NULL, AUTH_END_RESET, &tx->ended);
    if (rc != 0)
        return rc;

    {
        struct worker_audit audit = {.user_id = tx->user_id,
                                     .event = "password_reset",
                                     .resource_type = "user",
                                     .resource_id = tx->user_id,
                                     .action = "reset",
                                     .details = json_pack("{s:i}", "sessionsEnded", tx->ended)};

        rc = worker_audit_write(db, tx->req, &audit);
    }
    return rc;
}

int auth_password_reset(struct pool_worker *worker, const struct pool_request *req,
                        struct pool_reply *reply)
{
    char hash[AUTH_OTT_HASH_HEX_BYTES];
    char new_hash[PW_HASH_MAX_BYTES];
    struct auth_reset_tx tx = {.req = req, .hash = hash, .new_hash = new_hash};
    int rc;

    if (!worker_body_ok(req, auth_reset_spec, sizeof(auth_reset_spec) / sizeof(auth_reset_spec[0]),
                        reply))
        return 0;
    token_hash_hex(input_str(req->body, "token"), hash);

    /* A token that is plainly no good costs no password hashing. */
    rc = auth_ott_lock(worker->db, hash, AUTH_PURPOSE_RESET, tx.user_id);
    if (rc != 0)
        return rc;
    if (tx.user_id[0] == '\0') {
        auth_reply_bad_token(reply);
        return 0;
    }

    rc = pw_hash(input_str(req->body, "newPassword"), new_hash);
    if (rc == 0)
        rc = db_tx(worker->db, auth_reset_body, &tx);
    sodium_memzero(new_hash, sizeof(new_hash));
    if (rc != 0)
        return rc;

    /* Another request used the token while this one hashed. */
    if (tx.user_id[0] == '\0') {
        auth_reply_bad_token(reply);
        return 0;
    }
    log_info(AUTH_LOG_MODULE, "event=password_reset req_id=%s user_id=%s sessions_ended=%d",
             worker_ctx_request_id(req), tx.user_id, tx.ended);
    return worker_reply_json(reply, 200,
                             json_pack("{s:b, s:s}", "success", 1, "message", "Password reset"));
}
