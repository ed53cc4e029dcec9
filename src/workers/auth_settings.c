/* SPDX-License-Identifier: MIT */
/* The super administrator's tools in the auth pool: the system settings and new roles. */
#include "auth_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "manas360/err.h"
#include "manas360/log.h"

#define AUTH_SETTING_KEY_MAX_CHARS 100
#define AUTH_ROLE_NAME_MAX_CHARS 64
#define AUTH_ROLE_TEXT_MAX_CHARS 500
#define AUTH_ROLE_LEVEL_MIN 1
#define AUTH_ROLE_LEVEL_MAX 99
#define AUTH_ROLE_REASON_BYTES 384
#define AUTH_ROLE_INT_TEXT_BYTES 24

/* Columns of auth_roles_select. */
enum auth_role_col {
    AUTH_ROLE_ID,
    AUTH_ROLE_NAME,
    AUTH_ROLE_DESCRIPTION,
    AUTH_ROLE_LEVEL,
    AUTH_ROLE_PERMISSIONS,
};

/* clang-format off */
static const struct db_stmt auth_settings_stmts[] = {
    {"auth_settings_all",
     "SELECT coalesce(jsonb_object_agg(key, value), '{}')::text FROM settings",
     0},
    /* Returns the key only when its value changed, so the audit names real changes. */
    {"auth_settings_put",
     "INSERT INTO settings (key, value, updated_by) VALUES ($1, $2::jsonb, $3)"
     " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_by = EXCLUDED.updated_by"
     "  WHERE settings.value IS DISTINCT FROM EXCLUDED.value"
     " RETURNING key",
     3},
    /* Read in the request's transaction, not from any cache. */
    {"auth_roles_caller_level",
     "SELECT r.privilege_level"
     "  FROM user_accounts u JOIN roles r ON r.id = u.role_id"
     " WHERE u.id = $1 AND u.is_active AND u.deleted_at IS NULL",
     1},
    {"auth_roles_unknown_permissions",
     "SELECT value FROM json_array_elements_text($1::json) AS e (value)"
     " WHERE NOT EXISTS (SELECT 1 FROM permissions p WHERE p.name = value)",
     1},
    /* The names the caller's own role does not hold: a role never grants more than its
     * creator has. */
    {"auth_roles_permissions_beyond_caller",
     "SELECT value FROM json_array_elements_text($2::json) AS e (value)"
     " WHERE NOT EXISTS (SELECT 1"
     "                     FROM user_accounts u"
     "                     JOIN role_permissions rp ON rp.role_id = u.role_id"
     "                     JOIN permissions p ON p.id = rp.permission_id"
     "                    WHERE u.id = $1 AND p.name = value)",
     2},
    {"auth_roles_insert",
     "INSERT INTO roles (name, description, privilege_level) VALUES ($1, $2, $3) RETURNING id",
     3},
    {"auth_roles_grant",
     "INSERT INTO role_permissions (role_id, permission_id)"
     " SELECT $1, p.id FROM permissions p"
     "  WHERE p.name IN (SELECT value FROM json_array_elements_text($2::json))",
     2},
    /* The role with its permission names sorted in byte order, whatever the collation. */
    {"auth_roles_select",
     "SELECT r.id, r.name, r.description, r.privilege_level,"
     "       coalesce(json_agg(p.name ORDER BY p.name COLLATE \"C\")"
     "                  FILTER (WHERE p.id IS NOT NULL), '[]')::text"
     "  FROM roles r"
     "  LEFT JOIN role_permissions rp ON rp.role_id = r.id"
     "  LEFT JOIN permissions p ON p.id = rp.permission_id"
     " WHERE r.id = $1"
     " GROUP BY r.id",
     1},
};
/* clang-format on */

int auth_settings_prepare(struct db *db)
{
    return db_prepare(db, auth_settings_stmts,
                      sizeof(auth_settings_stmts) / sizeof(auth_settings_stmts[0]));
}

/* ---- admin.settings.get -------------------------------------------------------------- */

/* Answers 200 with every setting as one object. */
static int auth_settings_reply(struct db *db, struct pool_reply *reply)
{
    PGresult *res = NULL;
    json_t *settings = NULL;
    int rc = db_exec(db, "auth_settings_all", 0, NULL, &res);

    if (rc == 0)
        settings = json_loads(PQgetvalue(res, 0, 0), JSON_DECODE_ANY, NULL);
    PQclear(res);
    if (rc != 0)
        return rc;
    if (!json_is_object(settings)) {
        json_decref(settings);
        return M360_EINTERNAL;
    }
    return worker_reply_json(reply, 200,
                             json_pack("{s:b, s:o}", "success", 1, "settings", settings));
}

int auth_admin_settings_get(struct pool_worker *worker, const struct pool_request *req,
                            struct pool_reply *reply)
{
    if (!worker_body_ok(req, NULL, 0, reply))
        return 0;
    return auth_settings_reply(worker->db, reply);
}

/* ---- admin.settings.patch ------------------------------------------------------------ */

/* True when `value` holds a NUL anywhere, in a string or a key; jsonb cannot store one. */
static bool auth_settings_has_nul(json_t *value)
{
    void *it;

    if (json_is_string(value))
        return strlen(json_string_value(value)) != json_string_length(value);
    if (json_is_array(value)) {
        for (size_t i = 0; i < json_array_size(value); i++) {
            if (auth_settings_has_nul(json_array_get(value, i)))
                return true;
        }
        return false;
    }
    for (it = json_object_iter(value); it != NULL; it = json_object_iter_next(value, it)) {
        if (strlen(json_object_iter_key(it)) != json_object_iter_key_len(it) ||
            auth_settings_has_nul(json_object_iter_value(it)))
            return true;
    }
    return false;
}

/* The reason one member of the body is refused, or NULL. The key is checked before any of
 * it is used, so a key with a NUL is never read as a C string. */
static const char *auth_settings_problem(void *it)
{
    const char *key = json_object_iter_key(it);
    size_t len = json_object_iter_key_len(it);

    if (strlen(key) != len)
        return "keys must not contain NUL characters";
    if (len == 0 || input_utf8_chars(key, len) > AUTH_SETTING_KEY_MAX_CHARS)
        return "keys must be 1 to 100 characters";
    if (auth_settings_has_nul(json_object_iter_value(it)))
        return "must not contain NUL characters";
    return NULL;
}

/* Checks every member; fills a 400 naming the first bad one by its key, or "body" when the
 * key itself cannot be shown (it holds a NUL). */
static bool auth_settings_ok(const struct pool_request *req, struct pool_reply *reply)
{
    json_t *body = (json_t *)req->body;

    if (!json_is_object(body)) {
        worker_reply_invalid_field(reply, "body", "must be an object");
        return false;
    }
    for (void *it = json_object_iter(body); it != NULL; it = json_object_iter_next(body, it)) {
        const char *key = json_object_iter_key(it);
        const char *problem = auth_settings_problem(it);

        if (problem != NULL) {
            worker_reply_invalid_field(
                reply, strlen(key) == json_object_iter_key_len(it) ? key : "body", problem);
            return false;
        }
    }
    return true;
}

struct auth_settings_tx {
    const struct pool_request *req;
    const char *caller_id;
};

/* Writes one setting; appends its key to `changed` when its value changed. */
static int auth_settings_put(struct db *db, const struct auth_settings_tx *tx, const char *key,
                             const json_t *value, json_t *changed)
{
    char *text = json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY);
    const char *params[] = {key, text, tx->caller_id};
    PGresult *res = NULL;
    int rc = text != NULL ? db_exec(db, "auth_settings_put", 3, params, &res) : M360_ENOMEM;

    if (rc == 0 && PQntuples(res) == 1 && json_array_append_new(changed, json_string(key)) != 0)
        rc = M360_ENOMEM;
    PQclear(res);
    free(text);
    return rc;
}

/* Merges the body, key by key. The audit names the changed keys, never their values: a
 * setting may hold a secret. */
static int auth_settings_body(struct db *db, void *arg)
{
    struct auth_settings_tx *tx = arg;
    json_t *changed = json_array();
    const char *key;
    json_t *value;
    int rc = changed != NULL ? 0 : M360_ENOMEM;

    json_object_foreach((json_t *)tx->req->body, key, value)
    {
        if (rc == 0)
            rc = auth_settings_put(db, tx, key, value, changed);
    }
    if (rc != 0 || json_array_size(changed) == 0) {
        json_decref(changed);
        return rc;
    }

    {
        struct worker_audit audit = {.user_id = tx->caller_id,
                                     .event = "settings_changed",
                                     .resource_type = "settings",
                                     .action = "update",
                                     .details = json_pack("{s:o}", "keys", changed)};

        return worker_audit_write(db, tx->req, &audit);
    }
}

int auth_admin_settings_patch(struct pool_worker *worker, const struct pool_request *req,
                              struct pool_reply *reply)
{
    struct auth_settings_tx tx = {.req = req, .caller_id = worker_ctx_user(req)};
    int rc;

    if (!auth_settings_ok(req, reply))
        return 0;
    if (tx.caller_id == NULL) {
        worker_reply_unauthorized(reply);
        return 0;
    }

    rc = db_tx(worker->db, auth_settings_body, &tx);
    if (rc != 0)
        return rc;
    log_info(AUTH_LOG_MODULE, "event=settings_changed req_id=%s user_id=%s keys=%zu",
             worker_ctx_request_id(req), tx.caller_id, json_object_size(req->body));
    return auth_settings_reply(worker->db, reply);
}

/* ---- admin.roles.create -------------------------------------------------------------- */

/* Every member but privilegeLevel, which input_check() has no kind for. */
static const struct input_field auth_role_spec[] = {
    {"name", INPUT_STRING, INPUT_REQUIRED, AUTH_ROLE_NAME_MAX_CHARS},
    {"description", INPUT_STRING, INPUT_REQUIRED, AUTH_ROLE_TEXT_MAX_CHARS},
    {"permissions", INPUT_ARRAY, INPUT_REQUIRED, 0},
};

/* The reason privilegeLevel is refused, or NULL. */
static const char *auth_role_level_problem(const json_t *level)
{
    if (level == NULL)
        return "is required";
    if (!json_is_integer(level))
        return "must be an integer";
    if (json_integer_value(level) < AUTH_ROLE_LEVEL_MIN ||
        json_integer_value(level) > AUTH_ROLE_LEVEL_MAX)
        return "must be 1 to 99";
    return NULL;
}

/* The reason the permission list is refused, or NULL: distinct names of 1 to 64 characters. */
static const char *auth_role_permissions_problem(const json_t *names)
{
    for (size_t i = 0; i < json_array_size(names); i++) {
        const json_t *name = json_array_get(names, i);
        size_t len = json_string_length(name);

        if (!json_is_string(name))
            return "must be an array of strings";
        if (strlen(json_string_value(name)) != len)
            return "must not contain NUL characters";
        if (len == 0 || input_utf8_chars(json_string_value(name), len) > AUTH_ROLE_NAME_MAX_CHARS)
            return "names must be 1 to 64 characters";
        for (size_t j = 0; j < i; j++) {
            if (json_equal(name, json_array_get(names, j)))
                return "must not repeat a name";
        }
    }
    return NULL;
}

/* Adds the problems input_check() cannot see to *fields (created when needed). */
static int auth_role_more_problems(const json_t *body, json_t **fields)
{
    const char *level = auth_role_level_problem(json_object_get(body, "privilegeLevel"));
    const char *permissions = auth_role_permissions_problem(json_object_get(body, "permissions"));
    const char *name = input_str(body, "name");
    json_t *found = *fields != NULL ? *fields : json_object();
    int rc = found != NULL ? 0 : M360_ENOMEM;

    if (rc == 0 && level != NULL)
        rc = json_object_set_new(found, "privilegeLevel", json_string(level));
    if (rc == 0 && permissions != NULL)
        rc = json_object_set_new(found, "permissions", json_string(permissions));
    if (rc == 0 && name != NULL && name[0] == '\0')
        rc = json_object_set_new(found, "name", json_string("must be 1 to 64 characters"));
    if (rc != 0 || json_object_size(found) == 0) {
        if (found != *fields)
            json_decref(found);
        return rc != 0 ? M360_ENOMEM : 0;
    }
    *fields = found;
    return 0;
}

/* Checks the body; fills the reply and answers false when it does not pass. */
static bool auth_role_ok(const struct pool_request *req, struct pool_reply *reply)
{
    json_t *rest = json_copy((json_t *)req->body);
    json_t *fields = NULL;
    int rc = rest != NULL ? 0 : M360_ENOMEM;

    if (json_is_object(rest))
        json_object_del(rest, "privilegeLevel");
    if (rc == 0)
        rc = input_check(rest, auth_role_spec, sizeof(auth_role_spec) / sizeof(auth_role_spec[0]),
                         &fields);
    json_decref(rest);
    if (rc != M360_ENOMEM && json_is_object(req->body))
        rc = auth_role_more_problems(req->body, &fields);

    if (rc == M360_ENOMEM) {
        json_decref(fields);
        pool_reply_error(reply, 500, "InternalError", "Internal error", NULL);
        return false;
    }
    if (fields != NULL)
        worker_reply_invalid(reply, fields);
    return fields == NULL;
}

/* Why a role is not created after its body passed. */
enum auth_role_refusal {
    AUTH_ROLE_OK,
    AUTH_ROLE_GONE,     /* the caller's account went away: 401 */
    AUTH_ROLE_TOO_HIGH, /* at or above the caller's own level: 403 */
    AUTH_ROLE_UNKNOWN,  /* a permission that does not exist: 400 */
    AUTH_ROLE_BEYOND,   /* a permission the caller does not hold: 403 */
};

struct auth_role_tx {
    const struct pool_request *req;
    const char *caller_id;
    const char *permissions; /* the names as JSON text */
    enum auth_role_refusal refusal;
    char reason[AUTH_ROLE_REASON_BYTES];
    char id[INPUT_UUID_CHARS + 1];
};

/* A caller may only create roles strictly below their own level, holding no permission the
 * caller's own role lacks. */
static int auth_role_check(struct db *db, struct auth_role_tx *tx)
{
    const char *caller[] = {tx->caller_id};
    const char *names[] = {tx->permissions};
    const char *beyond[] = {tx->caller_id, tx->permissions};
    PGresult *res = NULL;
    int rc = db_exec(db, "auth_roles_caller_level", 1, caller, &res);

    if (rc == 0 && PQntuples(res) != 1)
        tx->refusal = AUTH_ROLE_GONE;
    else if (rc == 0 && row_int(res, 0, 0) <=
                            json_integer_value(json_object_get(tx->req->body, "privilegeLevel")))
        tx->refusal = AUTH_ROLE_TOO_HIGH;
    PQclear(res);
    if (rc != 0 || tx->refusal != AUTH_ROLE_OK)
        return rc;

    rc = db_exec(db, "auth_roles_unknown_permissions", 1, names, &res);
    if (rc == 0 && PQntuples(res) > 0) {
        tx->refusal = AUTH_ROLE_UNKNOWN;
        snprintf(tx->reason, sizeof(tx->reason), "unknown permission: %s", PQgetvalue(res, 0, 0));
    }
    PQclear(res);
    res = NULL;
    if (rc != 0 || tx->refusal != AUTH_ROLE_OK)
        return rc;

    rc = db_exec(db, "auth_roles_permissions_beyond_caller", 2, beyond, &res);
    if (rc == 0 && PQntuples(res) > 0)
        tx->refusal = AUTH_ROLE_BEYOND;
    PQclear(res);
    return rc;
}

static int auth_role_body(struct db *db, void *arg)
{
    struct auth_role_tx *tx = arg;
    const json_t *body = tx->req->body;
    char level[AUTH_ROLE_INT_TEXT_BYTES];
    const char *role[] = {input_str(body, "name"), input_str(body, "description"), level};
    PGresult *res = NULL;
    int rc;

    tx->refusal = AUTH_ROLE_OK;
    rc = auth_role_check(db, tx);
    if (rc != 0 || tx->refusal != AUTH_ROLE_OK)
        return rc;

    snprintf(level, sizeof(level), "%lld",
             (long long)json_integer_value(json_object_get(body, "privilegeLevel")));
    rc = db_exec(db, "auth_roles_insert", 3, role, &res);
    if (rc == 0)
        snprintf(tx->id, sizeof(tx->id), "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    if (rc == 0) {
        const char *grant[] = {tx->id, tx->permissions};

        rc = db_exec(db, "auth_roles_grant", 2, grant, NULL);
    }
    if (rc != 0)
        return rc;

    {
        struct worker_audit audit = {
            .user_id = tx->caller_id,
            .event = "role_created",
            .resource_type = "role",
            .resource_id = tx->id,
            .action = "create",
            .details = json_pack("{s:s, s:O, s:O}", "name", role[0], "privilegeLevel",
                                 json_object_get(body, "privilegeLevel"), "permissions",
                                 json_object_get(body, "permissions"))};

        return worker_audit_write(db, tx->req, &audit);
    }
}

/* Answers 201 with the role `id` and its permissions. */
static int auth_role_reply(struct db *db, const char *id, struct pool_reply *reply)
{
    const char *params[] = {id};
    PGresult *res = NULL;
    json_t *permissions = NULL;
    int rc = db_exec(db, "auth_roles_select", 1, params, &res);

    if (rc == 0 && PQntuples(res) != 1)
        rc = M360_EINTERNAL;
    if (rc == 0)
        permissions = json_loads(PQgetvalue(res, 0, AUTH_ROLE_PERMISSIONS), 0, NULL);
    if (rc == 0 && !json_is_array(permissions))
        rc = M360_EINTERNAL;
    if (rc == 0)
        rc = worker_reply_json(
            reply, 201,
            json_pack("{s:b, s:{s:s, s:s, s:s?, s:I, s:O}}", "success", 1, "role", "id",
                      PQgetvalue(res, 0, AUTH_ROLE_ID), "name", PQgetvalue(res, 0, AUTH_ROLE_NAME),
                      "description", row_text(res, 0, AUTH_ROLE_DESCRIPTION), "privilegeLevel",
                      (json_int_t)row_int(res, 0, AUTH_ROLE_LEVEL), "permissions", permissions));
    json_decref(permissions);
    PQclear(res);
    return rc;
}

int auth_admin_roles_create(struct pool_worker *worker, const struct pool_request *req,
                            struct pool_reply *reply)
{
    struct auth_role_tx tx = {.req = req, .caller_id = worker_ctx_user(req)};
    char *permissions;
    int rc;

    if (!auth_role_ok(req, reply))
        return 0;
    if (tx.caller_id == NULL) {
        worker_reply_unauthorized(reply);
        return 0;
    }

    permissions = json_dumps(json_object_get(req->body, "permissions"), JSON_COMPACT);
    if (permissions == NULL)
        return M360_ENOMEM;
    tx.permissions = permissions;
    rc = db_tx(worker->db, auth_role_body, &tx);
    free(permissions);

    if (rc == M360_ECONFLICT) {
        pool_reply_error(reply, 409, "Conflict", "A role of this name already exists", NULL);
        return 0;
    }
    if (rc != 0)
        return rc;
    switch (tx.refusal) {
    case AUTH_ROLE_GONE:
        worker_reply_unauthorized(reply);
        return 0;
    case AUTH_ROLE_TOO_HIGH:
        pool_reply_error(reply, 403, "Forbidden", "A role must rank below your own privilege level",
                         NULL);
        return 0;
    case AUTH_ROLE_UNKNOWN:
        worker_reply_invalid_field(reply, "permissions", tx.reason);
        return 0;
    case AUTH_ROLE_BEYOND:
        pool_reply_error(reply, 403, "Forbidden",
                         "A role may only hold permissions your own role holds", NULL);
        return 0;
    case AUTH_ROLE_OK:
        break;
    }
    log_info(AUTH_LOG_MODULE, "event=role_created req_id=%s user_id=%s role_id=%s",
             worker_ctx_request_id(req), tx.caller_id, tx.id);
    return auth_role_reply(worker->db, tx.id, reply);
}
