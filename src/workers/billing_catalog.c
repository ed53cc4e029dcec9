/* SPDX-License-Identifier: MIT */
/*
 * The administrators' changes to the catalogue in the billing pool: new features and changes
 * to plans. Front ends read plans and features fresh or drop what they cached when the
 * database announces a change (migrations/004), so a change reaches them on its own.
 */
#include "billing_internal.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "manas360/err.h"
#include "manas360/log.h"

#define BILLING_TEXT_MAX_CHARS 500                              /* descriptions */
#define BILLING_NAME_MAX_BYTES (BILLING_NAME_MAX_CHARS * 4 + 1) /* UTF-8, and a NUL */
#define BILLING_TRIAL_MAX_DAYS 3650 /* ten years; any longer is a typing error */
#define BILLING_REASON_BYTES (64 + BILLING_NAME_MAX_BYTES) /* "unknown plan: " and a name */
#define BILLING_INT_TEXT_BYTES 24

/* Columns of billing_feature_select. */
enum billing_feature_col {
    BILLING_FEATURE_ID,
    BILLING_FEATURE_NAME,
    BILLING_FEATURE_DESCRIPTION,
    BILLING_FEATURE_CATEGORY,
    BILLING_FEATURE_PLANS,
};

/* A request's list of names, as JSON text, expanded in SQL. */
#define BILLING_SQL_NAMES(param) "SELECT value FROM json_array_elements_text(" param "::json)"

/* clang-format off */
static const struct db_stmt billing_catalog_stmts[] = {
    /* Plan names in bodies are matched without regard to case, like the unique index. */
    {"billing_plans_unknown",
     BILLING_SQL_NAMES("$1") " AS e (value)"
     " WHERE NOT EXISTS (SELECT 1 FROM subscription_plans p WHERE lower(p.name) = lower(value))",
     1},
    {"billing_feature_insert",
     "INSERT INTO features (name, description, category) VALUES ($1, $2, $3) RETURNING id",
     3},
    {"billing_feature_plans_add",
     "INSERT INTO plan_features (plan_id, feature_id)"
     " SELECT p.id, $2 FROM subscription_plans p"
     "  WHERE lower(p.name) IN (SELECT lower(value) FROM json_array_elements_text($1::json))"
     " ON CONFLICT DO NOTHING",
     2},
    /* The feature with the names of its plans, in tier order. */
    {"billing_feature_select",
     "SELECT f.id, f.name, f.description, f.category,"
     "       coalesce(json_agg(p.name ORDER BY p.tier) FILTER (WHERE p.id IS NOT NULL),"
     "                '[]')::text"
     "  FROM features f"
     "  LEFT JOIN plan_features pf ON pf.feature_id = f.id"
     "  LEFT JOIN subscription_plans p ON p.id = pf.plan_id"
     " WHERE f.id = $1"
     " GROUP BY f.id",
     1},
    /* Feature names are compared exactly. */
    {"billing_features_unknown",
     BILLING_SQL_NAMES("$1") " AS e (value)"
     " WHERE NOT EXISTS (SELECT 1 FROM features f WHERE f.name = value)",
     1},
    /* A plan in a path is matched exactly, letter case included. */
    {"billing_plan_lock", "SELECT id FROM subscription_plans WHERE name = $1 FOR UPDATE", 1},
    {"billing_plan_update",
     "UPDATE subscription_plans"
     "   SET price_monthly_paise = coalesce($2::bigint, price_monthly_paise),"
     "       max_api_requests_per_month = coalesce($3::bigint, max_api_requests_per_month),"
     "       trial_period_days = coalesce($4::integer, trial_period_days),"
     "       is_active = coalesce($5::boolean, is_active),"
     "       is_featured = coalesce($6::boolean, is_featured)"
     " WHERE id = $1",
     6},
    /* The new list replaces the old: what is not in it goes, what is new comes, and the
     * features that stay keep their rows. */
    {"billing_plan_features_drop",
     "DELETE FROM plan_features pf"
     " WHERE pf.plan_id = $1"
     "   AND pf.feature_id NOT IN (SELECT f.id FROM features f"
     "                              WHERE f.name IN (" BILLING_SQL_NAMES("$2") "))",
     2},
    {"billing_plan_features_add",
     "INSERT INTO plan_features (plan_id, feature_id)"
     " SELECT $1, f.id FROM features f WHERE f.name IN (" BILLING_SQL_NAMES("$2") ")"
     " ON CONFLICT DO NOTHING",
     2},
    {"billing_plan_select",
     "SELECT " BILLING_SQL_PLAN_COLUMNS
     "  FROM subscription_plans p" BILLING_SQL_PLAN_JOINS
     " WHERE p.id = $1"
     " GROUP BY p.id",
     1},
};
/* clang-format on */

int billing_catalog_prepare(struct db *db)
{
    return db_prepare(db, billing_catalog_stmts,
                      sizeof(billing_catalog_stmts) / sizeof(billing_catalog_stmts[0]));
}

/* ---- Body checks --------------------------------------------------------------------- */

/* An integer member of a request body and its inclusive range. */
struct billing_int_field {
    const char *name;
    long long min;
    long long max;
};

/* Adds one problem to *fields, creating it; false when memory ran out. */
static bool billing_problem_add(json_t **fields, const char *name, const char *reason)
{
    if (*fields == NULL)
        *fields = json_object();
    return *fields != NULL && json_object_set_new(*fields, name, json_string(reason)) == 0;
}

/* The reason an integer member is refused, or NULL. */
static const char *billing_int_problem(const json_t *value, const struct billing_int_field *field)
{
    if (!json_is_integer(value))
        return "must be an integer";
    if (json_integer_value(value) < field->min || json_integer_value(value) > field->max)
        return "is out of range";
    return NULL;
}

/*
 * worker_body_ok() for a body that also holds integers: input_check() covers the other
 * members on a copy without them, and the integers are checked here.
 */
static bool billing_body_ok(const struct pool_request *req, const struct input_field *spec,
                            size_t nspec, const struct billing_int_field *ints, size_t nints,
                            struct pool_reply *reply)
{
    json_t *rest = json_copy((json_t *)req->body);
    json_t *fields = NULL;
    int rc = rest != NULL ? 0 : M360_ENOMEM;

    for (size_t i = 0; rc == 0 && json_is_object(rest) && i < nints; i++)
        json_object_del(rest, ints[i].name);
    if (rc == 0)
        rc = input_check(rest, spec, nspec, &fields);
    json_decref(rest);

    for (size_t i = 0; rc != M360_ENOMEM && json_is_object(req->body) && i < nints; i++) {
        const json_t *value = json_object_get(req->body, ints[i].name);
        const char *reason = value != NULL ? billing_int_problem(value, &ints[i]) : NULL;

        if (reason != NULL && !billing_problem_add(&fields, ints[i].name, reason))
            rc = M360_ENOMEM;
    }

    if (rc == M360_ENOMEM) {
        json_decref(fields);
        pool_reply_error(reply, 500, "InternalError", "Internal error", NULL);
        return false;
    }
    if (fields != NULL)
        worker_reply_invalid(reply, fields);
    return fields == NULL;
}

/* True when the string member `name` is present and empty. */
static bool billing_empty(const json_t *body, const char *name)
{
    const char *text = input_str(body, name);

    return text != NULL && text[0] == '\0';
}

/* The reason `names` is not a list of distinct names of 1 to 64 characters, or NULL. */
static const char *billing_names_problem(const json_t *names)
{
    for (size_t i = 0; i < json_array_size(names); i++) {
        const json_t *name = json_array_get(names, i);
        size_t len = json_string_length(name);

        if (!json_is_string(name))
            return "must be an array of strings";
        if (strlen(json_string_value(name)) != len)
            return "must not contain NUL characters";
        if (len == 0 || input_utf8_chars(json_string_value(name), len) > BILLING_NAME_MAX_CHARS)
            return "names must be 1 to 64 characters";
        for (size_t j = 0; j < i; j++) {
            if (json_equal(name, json_array_get(names, j)))
                return "must not repeat a name";
        }
    }
    return NULL;
}

/*
 * Runs the `stmt` that lists the names of `text` that do not exist; when some do not,
 * fills a 400 naming `field` and sets *refused.
 */
static int billing_names_known(struct db *db, const char *stmt, const char *text, const char *field,
                               char *reason, size_t size, bool *refused)
{
    const char *params[] = {text};
    PGresult *res = NULL;
    int rc = db_exec(db, stmt, 1, params, &res);

    *refused = rc == 0 && PQntuples(res) > 0;
    if (*refused)
        snprintf(reason, size, "unknown %s: %s", field, PQgetvalue(res, 0, 0));
    PQclear(res);
    return rc;
}

/* ---- admin.features.create ----------------------------------------------------------- */

static const struct input_field billing_feature_spec[] = {
    {"name", INPUT_STRING, INPUT_REQUIRED, BILLING_NAME_MAX_CHARS},
    {"description", INPUT_STRING, INPUT_REQUIRED, BILLING_TEXT_MAX_CHARS},
    {"category", INPUT_STRING, INPUT_REQUIRED, BILLING_NAME_MAX_CHARS},
    {"plans", INPUT_ARRAY, INPUT_REQUIRED, 0},
};

/* What input_check() cannot see: empty names and the plan list's items. */
static bool billing_feature_ok(const json_t *body, struct pool_reply *reply)
{
    const char *plans = billing_names_problem(json_object_get(body, "plans"));

    if (billing_empty(body, "name")) {
        worker_reply_invalid_field(reply, "name", "must be 1 to 64 characters");
        return false;
    }
    if (billing_empty(body, "category")) {
        worker_reply_invalid_field(reply, "category", "must be 1 to 64 characters");
        return false;
    }
    if (plans != NULL) {
        worker_reply_invalid_field(reply, "plans", plans);
        return false;
    }
    return true;
}

struct billing_feature_tx {
    const struct pool_request *req;
    const char *caller_id;
    const char *plans; /* the plan names as JSON text */
    bool refused;
    char reason[BILLING_REASON_BYTES];
    char id[INPUT_UUID_CHARS + 1];
};

static int billing_feature_body(struct db *db, void *arg)
{
    struct billing_feature_tx *tx = arg;
    const json_t *body = tx->req->body;
    const char *feature[] = {input_str(body, "name"), input_str(body, "description"),
                             input_str(body, "category")};
    PGresult *res = NULL;
    int rc;

    tx->id[0] = '\0';
    rc = billing_names_known(db, "billing_plans_unknown", tx->plans, "plan", tx->reason,
                             sizeof(tx->reason), &tx->refused);
    if (rc != 0 || tx->refused)
        return rc;

    rc = db_exec(db, "billing_feature_insert", 3, feature, &res);
    if (rc == 0)
        snprintf(tx->id, sizeof(tx->id), "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    if (rc == 0) {
        const char *params[] = {tx->plans, tx->id};

        rc = db_exec(db, "billing_feature_plans_add", 2, params, NULL);
    }
    if (rc != 0)
        return rc;

    {
        struct worker_audit audit = {.user_id = tx->caller_id,
                                     .event = "feature_created",
                                     .resource_type = "feature",
                                     .resource_id = tx->id,
                                     .action = "create",
                                     .details = json_pack("{s:s, s:O}", "name", feature[0], "plans",
                                                          json_object_get(body, "plans"))};

        return worker_audit_write(db, tx->req, &audit);
    }
}

/* Answers 201 with the feature `id` and its plans. */
static int billing_feature_reply(struct db *db, const char *id, struct pool_reply *reply)
{
    const char *params[] = {id};
    PGresult *res = NULL;
    json_t *plans = NULL;
    int rc = db_exec(db, "billing_feature_select", 1, params, &res);

    if (rc == 0 && PQntuples(res) != 1)
        rc = M360_EINTERNAL;
    if (rc == 0)
        plans = json_loads(PQgetvalue(res, 0, BILLING_FEATURE_PLANS), 0, NULL);
    if (rc == 0 && !json_is_array(plans))
        rc = M360_EINTERNAL;
    if (rc == 0) {
        rc = worker_reply_json(
            reply, 201,
            json_pack("{s:b, s:{s:s, s:s, s:s?, s:s?, s:O}}", "success", 1, "feature", "id",
                      PQgetvalue(res, 0, BILLING_FEATURE_ID), "name",
                      PQgetvalue(res, 0, BILLING_FEATURE_NAME), "description",
                      row_text(res, 0, BILLING_FEATURE_DESCRIPTION), "category",
                      row_text(res, 0, BILLING_FEATURE_CATEGORY), "plans", plans));
    }
    json_decref(plans);
    PQclear(res);
    return rc;
}

int billing_admin_feature_create(struct pool_worker *worker, const struct pool_request *req,
                                 struct pool_reply *reply)
{
    struct billing_feature_tx tx = {.req = req, .caller_id = worker_ctx_user(req)};
    char *plans = NULL;
    int rc;

    if (!worker_body_ok(req, billing_feature_spec,
                        sizeof(billing_feature_spec) / sizeof(billing_feature_spec[0]), reply) ||
        !billing_feature_ok(req->body, reply))
        return 0;
    if (tx.caller_id == NULL) {
        worker_reply_unauthorized(reply);
        return 0;
    }

    plans = json_dumps(json_object_get(req->body, "plans"), JSON_COMPACT);
    if (plans == NULL)
        return M360_ENOMEM;
    tx.plans = plans;
    rc = db_tx(worker->db, billing_feature_body, &tx);
    free(plans);

    if (rc == M360_ECONFLICT) {
        pool_reply_error(reply, 409, "Conflict", "A feature of this name already exists", NULL);
        return 0;
    }
    if (rc != 0)
        return rc;
    if (tx.refused) {
        worker_reply_invalid_field(reply, "plans", tx.reason);
        return 0;
    }
    log_info(BILLING_LOG_MODULE, "event=feature_created req_id=%s feature_id=%s",
             worker_ctx_request_id(req), tx.id);
    return billing_feature_reply(worker->db, tx.id, reply);
}

/* ---- admin.plans.patch --------------------------------------------------------------- */

static const struct input_field billing_plan_spec[] = {
    {"isActive", INPUT_BOOLEAN, INPUT_OPTIONAL, 0},
    {"isFeatured", INPUT_BOOLEAN, INPUT_OPTIONAL, 0},
    {"features", INPUT_ARRAY, INPUT_OPTIONAL, 0},
};

static const struct billing_int_field billing_plan_ints[] = {
    {"priceMonthlyPaise", 0, INT64_MAX},
    {"maxApiRequestsPerMonth", 0, INT64_MAX},
    {"trialPeriodDays", 0, BILLING_TRIAL_MAX_DAYS},
};

#define BILLING_PLAN_INTS (sizeof(billing_plan_ints) / sizeof(billing_plan_ints[0]))
#define BILLING_PLAN_FLAGS (sizeof(billing_plan_spec) / sizeof(billing_plan_spec[0]))

static int billing_hex(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* Percent-decodes a path segment into `out`; false when it is malformed, holds a NUL or
 * cannot be a plan's name for its length. */
static bool billing_path_decode(const char *raw, char out[BILLING_NAME_MAX_BYTES])
{
    size_t n = 0;

    for (const char *p = raw; *p != '\0'; p++) {
        int c = (unsigned char)*p;

        if (c == '%') {
            int hi = billing_hex(p[1]);
            int lo = hi >= 0 ? billing_hex(p[2]) : -1;

            if (lo < 0)
                return false;
            c = hi * 16 + lo;
            p += 2;
        }
        if (c == 0 || n + 1 >= BILLING_NAME_MAX_BYTES)
            return false;
        out[n++] = (char)c;
    }
    out[n] = '\0';
    return n > 0;
}

struct billing_plan_tx {
    const struct pool_request *req;
    const char *caller_id;
    const char *name;
    const char *features; /* the new feature list as JSON text, or NULL */
    bool missing;
    bool refused;
    char reason[BILLING_REASON_BYTES];
    char id[INPUT_UUID_CHARS + 1];
};

/* An integer member as text for a parameter, or NULL when absent. */
static const char *billing_int_text(const json_t *body, const char *name, char *buf, size_t size)
{
    const json_t *value = json_object_get(body, name);

    if (value == NULL)
        return NULL;
    snprintf(buf, size, "%lld", (long long)json_integer_value(value));
    return buf;
}

static const char *billing_bool_text(const json_t *body, const char *name)
{
    const json_t *value = json_object_get(body, name);

    if (value == NULL)
        return NULL;
    return json_is_true(value) ? "t" : "f";
}

/* Sets the members that were sent, replaces the feature list when it was sent. */
static int billing_plan_apply(struct db *db, struct billing_plan_tx *tx)
{
    const json_t *body = tx->req->body;
    char ints[BILLING_PLAN_INTS][BILLING_INT_TEXT_BYTES];
    const char *params[] = {
        tx->id,
        billing_int_text(body, "priceMonthlyPaise", ints[0], sizeof(ints[0])),
        billing_int_text(body, "maxApiRequestsPerMonth", ints[1], sizeof(ints[1])),
        billing_int_text(body, "trialPeriodDays", ints[2], sizeof(ints[2])),
        billing_bool_text(body, "isActive"),
        billing_bool_text(body, "isFeatured"),
    };
    const char *list[] = {tx->id, tx->features};
    int rc = db_exec(db, "billing_plan_update", 6, params, NULL);

    if (rc == 0 && tx->features != NULL)
        rc = db_exec(db, "billing_plan_features_drop", 2, list, NULL);
    if (rc == 0 && tx->features != NULL)
        rc = db_exec(db, "billing_plan_features_add", 2, list, NULL);
    return rc;
}

/* The sent members' names, for the audit row. */
static json_t *billing_plan_fields(const json_t *body)
{
    json_t *names = json_array();
    const char *key;
    json_t *value;

    json_object_foreach((json_t *)body, key, value)
    {
        if (names != NULL && json_array_append_new(names, json_string(key)) != 0) {
            json_decref(names);
            names = NULL;
        }
    }
    return names;
}

static int billing_plan_body(struct db *db, void *arg)
{
    struct billing_plan_tx *tx = arg;
    const char *name[] = {tx->name};
    PGresult *res = NULL;
    int rc;

    tx->missing = false;
    tx->refused = false;
    rc = db_exec(db, "billing_plan_lock", 1, name, &res);
    tx->missing = rc == 0 && PQntuples(res) != 1;
    if (rc == 0 && !tx->missing)
        snprintf(tx->id, sizeof(tx->id), "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    if (rc != 0 || tx->missing)
        return rc;

    if (tx->features != NULL)
        rc = billing_names_known(db, "billing_features_unknown", tx->features, "feature",
                                 tx->reason, sizeof(tx->reason), &tx->refused);
    if (rc != 0 || tx->refused)
        return rc;

    /* An empty body changes nothing and writes no audit row; it still answers the plan. */
    if (json_object_size(tx->req->body) == 0)
        return 0;
    rc = billing_plan_apply(db, tx);
    if (rc != 0)
        return rc;

    {
        struct worker_audit audit = {
            .user_id = tx->caller_id,
            .event = "plan_changed",
            .resource_type = "plan",
            .resource_id = tx->name,
            .action = "update",
            .details = json_pack("{s:o}", "fields", billing_plan_fields(tx->req->body))};

        return worker_audit_write(db, tx->req, &audit);
    }
}

/* Answers 200 with the plan `id`, inactive or not. */
static int billing_plan_reply(struct db *db, const char *id, struct pool_reply *reply)
{
    const char *params[] = {id};
    PGresult *res = NULL;
    json_t *plan = NULL;
    int rc = db_exec(db, "billing_plan_select", 1, params, &res);

    if (rc == 0 && PQntuples(res) != 1)
        rc = M360_EINTERNAL;
    if (rc == 0)
        plan = billing_plan_json(res, 0);
    if (rc == 0 &&
        (plan == NULL ||
         json_object_set_new(plan, "isActive",
                             json_boolean(row_bool(res, 0, BILLING_PLAN_COL_ACTIVE))) != 0))
        rc = M360_ENOMEM;
    if (rc == 0) {
        rc = worker_reply_json(reply, 200, json_pack("{s:b, s:O}", "success", 1, "plan", plan));
    }
    json_decref(plan);
    PQclear(res);
    return rc;
}

int billing_admin_plan_patch(struct pool_worker *worker, const struct pool_request *req,
                             struct pool_reply *reply)
{
    struct billing_plan_tx tx = {.req = req, .caller_id = worker_ctx_user(req)};
    const char *raw = input_str(req->params, "name");
    const char *problem = billing_names_problem(json_object_get(req->body, "features"));
    char name[BILLING_NAME_MAX_BYTES];
    char *features = NULL;
    int rc;

    if (raw == NULL || !billing_path_decode(raw, name)) {
        worker_reply_not_found(reply);
        return 0;
    }
    if (!billing_body_ok(req, billing_plan_spec, BILLING_PLAN_FLAGS, billing_plan_ints,
                         BILLING_PLAN_INTS, reply))
        return 0;
    if (problem != NULL) {
        worker_reply_invalid_field(reply, "features", problem);
        return 0;
    }
    if (tx.caller_id == NULL) {
        worker_reply_unauthorized(reply);
        return 0;
    }

    if (json_object_get(req->body, "features") != NULL) {
        features = json_dumps(json_object_get(req->body, "features"), JSON_COMPACT);
        if (features == NULL)
            return M360_ENOMEM;
    }
    tx.name = name;
    tx.features = features;
    rc = db_tx(worker->db, billing_plan_body, &tx);
    free(features);

    /* A name that is not valid text cannot name a plan. */
    if (rc == M360_EINVAL && strcmp(db_last_sqlstate(worker->db), "22021") == 0)
        tx.missing = true;
    else if (rc != 0)
        return rc;
    if (tx.missing) {
        worker_reply_not_found(reply);
        return 0;
    }
    if (tx.refused) {
        worker_reply_invalid_field(reply, "features", tx.reason);
        return 0;
    }
    log_info(BILLING_LOG_MODULE, "event=plan_changed req_id=%s plan_id=%s",
             worker_ctx_request_id(req), tx.id);
    return billing_plan_reply(worker->db, tx.id, reply);
}
