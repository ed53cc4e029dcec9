/* SPDX-License-Identifier: MIT */
/* The caller's own account in the auth pool: the profile, its changes and the password. */
#include "auth_internal.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "manas360/err.h"
#include "manas360/log.h"
#include "manas360/pw.h"

/* The profile's columns, in the order of auth_profile_select. */
enum auth_profile_col {
    AUTH_COL_ID,
    AUTH_COL_EMAIL,
    AUTH_COL_FIRST_NAME,
    AUTH_COL_LAST_NAME,
    AUTH_COL_PHONE,
    AUTH_COL_ROLE,
    AUTH_COL_VERIFIED,
    AUTH_COL_TWO_FACTOR,
    AUTH_COL_CREATED,
    AUTH_COL_LAST_LOGIN,
    AUTH_COL_SUB_ID,
    /* then the ROW_SUBSCRIPTION_COLUMNS of SQL_SUBSCRIPTION_COLUMNS */
};

/* clang-format off */
static const struct db_stmt auth_profile_stmts[] = {
    {"auth_profile_select",
     "SELECT id, email, first_name, last_name, phone_number, role_name, is_verified,"
     "       two_factor_enabled,"
     "       " SQL_TIME_RFC3339("created_at") ","
     "       " SQL_TIME_RFC3339("last_login_at") ","
     "       " SQL_SUBSCRIPTION_COLUMNS
     "  FROM vw_users_with_subscription"
     " WHERE id = $1 AND is_active AND deleted_at IS NULL",
     1},
    /* Each flag says whether its field was sent; a field sent as null clears the column. */
    {"auth_profile_update",
     "UPDATE user_accounts"
     "   SET first_name = CASE WHEN $2 THEN $3 ELSE first_name END,"
     "       last_name = CASE WHEN $4 THEN $5 ELSE last_name END,"
     "       phone_number = CASE WHEN $6 THEN $7 ELSE phone_number END"
     " WHERE id = $1 AND is_active AND deleted_at IS NULL",
     7},
    {"auth_password_select",
     "SELECT password_hash FROM user_accounts"
     " WHERE id = $1 AND is_active AND deleted_at IS NULL",
     1},
    /* Replaces only the hash that was verified: a change that won a race is not undone. */
    {"auth_password_update",
     "UPDATE user_accounts SET password_hash = $2 WHERE id = $1 AND password_hash = $3",
     3},
};
/* clang-format on */

int auth_profile_prepare(struct db *db)
{
    return db_prepare(db, auth_profile_stmts,
                      sizeof(auth_profile_stmts) / sizeof(auth_profile_stmts[0]));
}

/* Loads the profile row; *out is NULL when the user is missing, inactive or deleted. */
static int auth_profile_load(struct db *db, const char *user_id, PGresult **out)
{
    const char *params[] = {user_id};
    PGresult *res = NULL;
    int rc = db_exec(db, "auth_profile_select", 1, params, &res);

    *out = NULL;
    if (rc == 0 && PQntuples(res) == 1)
        *out = res;
    else
        PQclear(res);
    return rc;
}

/* The user object of the profile row; NULL when out of memory. */
static json_t *auth_profile_json(const PGresult *res)
{
    json_t *subscription = row_subscription_json(res, 0, AUTH_COL_SUB_ID);

    if (subscription == NULL)
        return NULL;
    return json_pack(
        "{s:s, s:s, s:s?, s:s?, s:s?, s:s, s:b, s:b, s:s, s:s?, s:o}", "id",
        PQgetvalue(res, 0, AUTH_COL_ID), "email", PQgetvalue(res, 0, AUTH_COL_EMAIL), "firstName",
        row_text(res, 0, AUTH_COL_FIRST_NAME), "lastName", row_text(res, 0, AUTH_COL_LAST_NAME),
        "phoneNumber", row_text(res, 0, AUTH_COL_PHONE), "role", PQgetvalue(res, 0, AUTH_COL_ROLE),
        "isVerified", row_bool(res, 0, AUTH_COL_VERIFIED), "twoFactorEnabled",
        row_bool(res, 0, AUTH_COL_TWO_FACTOR), "createdAt", PQgetvalue(res, 0, AUTH_COL_CREATED),
        "lastLoginAt", row_text(res, 0, AUTH_COL_LAST_LOGIN), "subscription", subscription);
}

/* Answers 200 with the profile, or 401 when there is none. */
static int auth_profile_reply(struct pool_reply *reply, const PGresult *res)
{
    json_t *user;

    if (res == NULL) {
        worker_reply_unauthorized(reply);
        return 0;
    }
    user = auth_profile_json(res);
    if (user == NULL)
        return M360_ENOMEM;
    return worker_reply_json(reply, 200, json_pack("{s:b, s:o}", "success", 1, "user", user));
}

int auth_profile_user(struct db *db, const char *user_id, json_t **user)
{
    PGresult *res = NULL;
    int rc = auth_profile_load(db, user_id, &res);

    *user = NULL;
    if (rc == 0 && res != NULL) {
        *user = auth_profile_json(res);
        if (*user == NULL)
            rc = M360_ENOMEM;
    }
    PQclear(res);
    return rc;
}

/* ---- profile.get --------------------------------------------------------------------- */

int auth_profile_get(struct pool_worker *worker, const struct pool_request *req,
                     struct pool_reply *reply)
{
    const char *user_id = worker_ctx_user(req);
    PGresult *res = NULL;
    int rc;

    if (!worker_body_ok(req, NULL, 0, reply))
        return 0;
    if (user_id == NULL) {
        worker_reply_unauthorized(reply);
        return 0;
    }

    rc = auth_profile_load(worker->db, user_id, &res);
    if (rc == 0)
        rc = auth_profile_reply(reply, res);
    PQclear(res);
    return rc;
}

/* ---- profile.patch ------------------------------------------------------------------- */

static const struct input_field auth_patch_spec[] = {
    {"firstName", INPUT_NAME, INPUT_NULLABLE, 0},
    {"lastName", INPUT_NAME, INPUT_NULLABLE, 0},
    {"phoneNumber", INPUT_PHONE, INPUT_NULLABLE, 0},
};

#define AUTH_PATCH_FIELDS (sizeof(auth_patch_spec) / sizeof(auth_patch_spec[0]))

struct auth_patch_tx {
    const struct pool_request *req;
    const char *user_id;
    PGresult *user; /* the profile after the change; NULL when the user is gone */
};

/* Applies the fields that were sent and audits which ones (their names, not values). */
static int auth_patch_apply(struct db *db, struct auth_patch_tx *tx, json_t *changed)
{
    const char *params[1 + 2 * AUTH_PATCH_FIELDS] = {tx->user_id};
    PGresult *res = NULL;
    bool gone;
    int rc;

    for (size_t i = 0; i < AUTH_PATCH_FIELDS; i++) {
        params[1 + 2 * i] = input_has(tx->req->body, auth_patch_spec[i].name) ? "t" : "f";
        params[2 + 2 * i] = input_str(tx->req->body, auth_patch_spec[i].name);
    }
    rc = db_exec(db, "auth_profile_update", 1 + 2 * AUTH_PATCH_FIELDS, params, &res);
    gone = rc == 0 && strcmp(PQcmdTuples(res), "0") == 0;
    PQclear(res);
    if (rc != 0 || gone)
        return rc;

    {
        struct worker_audit audit = {.user_id = tx->user_id,
                                     .event = "profile_update",
                                     .resource_type = "user",
                                     .resource_id = tx->user_id,
                                     .action = "update",
                                     .details = json_pack("{s:O}", "fields", changed)};

        rc = worker_audit_write(db, tx->req, &audit);
    }
    return rc;
}

static int auth_patch_body(struct db *db, void *arg)
{
    struct auth_patch_tx *tx = arg;
    json_t *changed = json_array();
    int rc = changed != NULL ? 0 : M360_ENOMEM;

    /* A retried transaction starts over. */
    PQclear(tx->user);
    tx->user = NULL;
    for (size_t i = 0; rc == 0 && i < AUTH_PATCH_FIELDS; i++) {
        if (input_has(tx->req->body, auth_patch_spec[i].name) &&
            json_array_append_new(changed, json_string(auth_patch_spec[i].name)) != 0)
            rc = M360_ENOMEM;
    }

    /* An empty body changes nothing and writes no audit row; it still answers the user. */
    if (rc == 0 && json_array_size(changed) > 0)
        rc = auth_patch_apply(db, tx, changed);
    if (rc == 0)
        rc = auth_profile_load(db, tx->user_id, &tx->user);
    json_decref(changed);
    return rc;
}

int auth_profile_patch(struct pool_worker *worker, const struct pool_request *req,
                       struct pool_reply *reply)
{
    struct auth_patch_tx tx = {.req = req, .user_id = worker_ctx_user(req)};
    int rc;

    if (!worker_body_ok(req, auth_patch_spec, AUTH_PATCH_FIELDS, reply))
        return 0;
    if (tx.user_id == NULL) {
        worker_reply_unauthorized(reply);
        return 0;
    }

    rc = db_tx(worker->db, auth_patch_body, &tx);
    if (rc == 0)
        rc = auth_profile_reply(reply, tx.user);
    PQclear(tx.user);
    return rc;
}

/* ---- profile.password ---------------------------------------------------------------- */

static const struct input_field auth_password_spec[] = {
    {"currentPassword", INPUT_STRING, INPUT_REQUIRED, 0},
    {"newPassword", INPUT_PASSWORD, INPUT_REQUIRED, 0},
};

struct auth_password_tx {
    const struct pool_request *req;
    const char *user_id;
    const char *old_hash;
    const char *new_hash;
    bool stale; /* the hash changed since it was verified */
    int ended;
};

static int auth_password_body(struct db *db, void *arg)
{
    struct auth_password_tx *tx = arg;
    const char *params[] = {tx->user_id, tx->new_hash, tx->old_hash};
    PGresult *res = NULL;
    int rc;

    rc = db_exec(db, "auth_password_update", 3, params, &res);
    tx->stale = rc == 0 && strcmp(PQcmdTuples(res), "1") != 0;
    PQclear(res);
    if (rc != 0 || tx->stale)
        return rc;

    /* Every other login goes; the one that changed the password stays. */
    rc = auth_sessions_end_user(db, tx->user_id, worker_ctx_session(tx->req), AUTH_END_PASSWORD,
                                &tx->ended);
    if (rc != 0)
        return rc;
    {
        struct worker_audit audit = {.user_id = tx->user_id,
                                     .event = "password_changed",
                                     .resource_type = "user",
                                     .resource_id = tx->user_id,
                                     .action = "update",
                                     .details = json_pack("{s:i}", "sessionsEnded", tx->ended)};

        rc = worker_audit_write(db, tx->req, &audit);
    }
    return rc;
}

/* A wrong current password: audited (one statement), then 400 naming the field. */
static int auth_password_refuse(struct db *db, const struct auth_password_tx *tx,
                                struct pool_reply *reply)
{
    struct worker_audit audit = {.user_id = tx->user_id,
                                 .event = "password_changed",
                                 .resource_type = "user",
                                 .resource_id = tx->user_id,
                                 .action = "update",
                                 .failed = true,
                                 .details = json_pack("{s:s}", "reason", "wrong_current_password")};
    int rc = worker_audit_write(db, tx->req, &audit);

    if (rc == 0)
        worker_reply_invalid(reply, json_pack("{s:s}", "currentPassword", "is incorrect"));
    return rc;
}

int auth_profile_password(struct pool_worker *worker, const struct pool_request *req,
                          struct pool_reply *reply)
{
    struct auth_password_tx tx = {.req = req, .user_id = worker_ctx_user(req)};
    char new_hash[PW_HASH_MAX_BYTES];
    const char *params[1];
    PGresult *res = NULL;
    int rc;

    if (!worker_body_ok(req, auth_password_spec,
                        sizeof(auth_password_spec) / sizeof(auth_password_spec[0]), reply))
        return 0;
    if (tx.user_id == NULL) {
        worker_reply_unauthorized(reply);
        return 0;
    }

    params[0] = tx.user_id;
    rc = db_exec(worker->db, "auth_password_select", 1, params, &res);
    if (rc != 0)
        return rc;
    if (PQntuples(res) != 1) {
        worker_reply_unauthorized(reply);
        goto done;
    }
    tx.old_hash = PQgetvalue(res, 0, 0);
    if (pw_verify(input_str(req->body, "currentPassword"), tx.old_hash, NULL) != 0) {
        rc = auth_password_refuse(worker->db, &tx, reply);
        goto done;
    }

    /* Hashed before the transaction, like every hash. */
    rc = pw_hash(input_str(req->body, "newPassword"), new_hash);
    if (rc != 0)
        goto done;
    tx.new_hash = new_hash;
    rc = db_tx(worker->db, auth_password_body, &tx);
    sodium_memzero(new_hash, sizeof(new_hash));
    if (rc != 0)
        goto done;

    if (tx.stale) {
        rc = auth_password_refuse(worker->db, &tx, reply);
        goto done;
    }
    log_info(AUTH_LOG_MODULE, "event=password_changed req_id=%s user_id=%s sessions_ended=%d",
             worker_ctx_request_id(req), tx.user_id, tx.ended);
    rc = worker_reply_json(reply, 200,
                           json_pack("{s:b, s:s}", "success", 1, "message", "Password changed"));

done:
    PQclear(res);
    return rc;
}
