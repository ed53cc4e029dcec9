/* SPDX-License-Identifier: MIT */
/*
 * The super administrator's routes over real HTTP: system settings, new roles, new features
 * and plan changes, each seen through the public catalogue or the database afterwards.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "test_support.h"

#define PASSWORD "correct horse battery"
#define CATCH_UP_MS 1000 /* plan changes reach every process within a second */

static struct tsupport_server server;

static void superadmin_setup(void)
{
    tsupport_server_start(&server, NULL);
}

static void superadmin_teardown(void)
{
    tsupport_server_destroy(&server);
}

TestSuite(http_superadmin, .init = superadmin_setup, .fini = superadmin_teardown);

/* Every test ends here: SIGTERM, and a clean exit 0 (no leak, no sanitizer report). */
static void superadmin_stop(void)
{
    cr_expect_eq(tsupport_server_stop(&server), 0, "the server did not stop cleanly");
}

/* ---- Helpers --------------------------------------------------------------------------- */

static void request(const char *method, const char *path, const char *token, const char *body,
                    struct tsupport_response *res)
{
    tsupport_json(server.port, method, path, token, body, res);
}

/* Registers `email`, gives it `role` in the database, then logs in. */
static void user_with_role(const char *email, const char *role, struct tsupport_user *user)
{
    tsupport_register(server.port, email, PASSWORD);
    tsupport_user_role(server.db.url, email, role);
    cr_assert_eq(tsupport_login(server.port, email, PASSWORD, NULL, user), 200);
}

/* `method path` with `body` answers 400 ValidationError naming `field`. */
static void expect_invalid(const char *method, const char *path, const char *token,
                           const char *body, const char *field)
{
    struct tsupport_response res;
    json_t *fields;

    request(method, path, token, body, &res);
    cr_expect_eq(res.status, 400, "%s: %ld %s", body, res.status, res.body);
    if (res.status == 400) {
        tsupport_expect_error(&res, 400, "ValidationError");
        fields = tsupport_get(res.json, "fields");
        cr_expect(json_is_string(json_object_get(fields, field)), "%s: no fields.%s in %s", body,
                  field, res.body);
    }
    tsupport_response_cleanup(&res);
}

static void expect_error(const char *method, const char *path, const char *token, const char *body,
                         long status, const char *error)
{
    struct tsupport_response res;

    request(method, path, token, body, &res);
    tsupport_expect_error(&res, status, error);
    tsupport_response_cleanup(&res);
}

static long db_scalar(const char *sql, const char *param)
{
    PGconn *conn = tsupport_connect(server.db.url);
    const char *params[] = {param};
    long value = tsupport_scalar(conn, sql, param != NULL ? 1 : 0, params);

    PQfinish(conn);
    return value;
}

/* The plan `name` of GET /api/public/features, copied; NULL when it is not listed. */
static json_t *public_plan(const char *name)
{
    struct tsupport_response res;
    json_t *plans;
    json_t *found = NULL;

    request("GET", "/api/public/features", NULL, NULL, &res);
    cr_assert_eq(res.status, 200, "%s", res.body);
    plans = tsupport_get(res.json, "plans");
    for (size_t i = 0; i < json_array_size(plans); i++) {
        if (strcmp(tsupport_str(json_array_get(plans, i), "name"), name) == 0)
            found = json_deep_copy(json_array_get(plans, i));
    }
    tsupport_response_cleanup(&res);
    return found;
}

/* True when the JSON array `names` holds the string `name`. */
static bool has_name(const json_t *names, const char *name)
{
    for (size_t i = 0; i < json_array_size(names); i++) {
        if (strcmp(json_string_value(json_array_get(names, i)), name) == 0)
            return true;
    }
    return false;
}

/* ---- Settings -------------------------------------------------------------------------- */

Test(http_superadmin, settings_round_trip)
{
    struct tsupport_user boss;
    struct tsupport_response res;
    json_t *settings;

    user_with_role("boss@example.com", "superadmin", &boss);

    /* The seed's settings. */
    request("GET", "/api/admin/settings", boss.access, NULL, &res);
    cr_assert_eq(res.status, 200, "%s", res.body);
    cr_expect(json_is_true(tsupport_get(res.json, "success")));
    cr_expect(json_is_false(tsupport_get(res.json, "settings.maintenance_mode")), "%s", res.body);
    cr_expect_str_eq(tsupport_str(res.json, "settings.support_email"), "support@manas360.example");
    tsupport_response_cleanup(&res);

    /* A shallow merge of any JSON values; null is stored like any value. */
    request("PATCH", "/api/admin/settings", boss.access,
            "{\"signupsOpen\": true, \"limits\": {\"a\": [1, 2.5, \"x\"]},"
            " \"maintenance_mode\": null, \"smtpPassword\": \"hunter2-secret\"}",
            &res);
    cr_assert_eq(res.status, 200, "%s", res.body);
    settings = json_deep_copy(tsupport_get(res.json, "settings"));
    tsupport_response_cleanup(&res);
    cr_expect_eq(json_object_size(settings), 5);
    cr_expect(json_is_true(json_object_get(settings, "signupsOpen")));
    cr_expect(json_is_null(json_object_get(settings, "maintenance_mode")));
    cr_expect_str_eq(json_string_value(json_object_get(settings, "support_email")),
                     "support@manas360.example");
    cr_expect_eq(json_real_value(
                     json_array_get(json_object_get(json_object_get(settings, "limits"), "a"), 1)),
                 2.5);

    /* A later read agrees; the change is audited by key, never by value. */
    request("GET", "/api/admin/settings", boss.access, NULL, &res);
    cr_expect(json_equal(tsupport_get(res.json, "settings"), settings), "%s", res.body);
    tsupport_response_cleanup(&res);
    cr_expect_eq(db_scalar("SELECT count(*) FROM audit_logs WHERE event_type = 'settings_changed'"
                           "   AND user_id = $1 AND details->'keys' ? 'smtpPassword'",
                           boss.id),
                 1);
    cr_expect_eq(
        db_scalar("SELECT count(*) FROM audit_logs WHERE details::text LIKE $1", "%hunter2%"), 0);
    cr_expect_eq(db_scalar("SELECT count(*) FROM settings WHERE updated_by = $1", boss.id), 4);

    /* The same values again change nothing and write no audit row. */
    request("PATCH", "/api/admin/settings", boss.access, "{\"signupsOpen\": true}", &res);
    cr_expect_eq(res.status, 200, "%s", res.body);
    tsupport_response_cleanup(&res);
    cr_expect_eq(
        db_scalar("SELECT count(*) FROM audit_logs WHERE event_type = 'settings_changed'", NULL),
        1);

    /* Keys of 1 to 100 characters; no NUL anywhere. */
    {
        char key[128];
        char body[256];

        snprintf(key, sizeof(key), "%0101d", 0);
        snprintf(body, sizeof(body), "{\"%s\": 1}", key);
        expect_invalid("PATCH", "/api/admin/settings", boss.access, body, key);
        key[100] = '\0';
        snprintf(body, sizeof(body), "{\"%s\": 1}", key);
        request("PATCH", "/api/admin/settings", boss.access, body, &res);
        cr_expect_eq(res.status, 200, "a 100-character key: %s", res.body);
        tsupport_response_cleanup(&res);
    }
    expect_invalid("PATCH", "/api/admin/settings", boss.access, "{\"\": 1}", "");
    expect_invalid("PATCH", "/api/admin/settings", boss.access, "{\"motd\": \"a\\u0000b\"}",
                   "motd");
    /* A NUL in a key never gets past the JSON parser. */
    expect_error("PATCH", "/api/admin/settings", boss.access, "{\"motd\": {\"k\\u0000\": true}}",
                 400, "InvalidJson");
    json_decref(settings);
    superadmin_stop();
}

/* ---- Roles ----------------------------------------------------------------------------- */

Test(http_superadmin, roles_create)
{
    static const char path[] = "/api/admin/roles";
    struct tsupport_user boss;
    struct tsupport_response res;
    json_t *role;

    user_with_role("roles@example.com", "superadmin", &boss);

    request("POST", path, boss.access,
            "{\"name\": \"auditor\", \"description\": \"Reads the audit log\","
            " \"privilegeLevel\": 20, \"permissions\": [\"view_audit_logs\", \"read_profile\"]}",
            &res);
    cr_assert_eq(res.status, 201, "%s", res.body);
    role = tsupport_get(res.json, "role");
    cr_expect(tsupport_is_uuid(tsupport_str(role, "id")), "%s", res.body);
    cr_expect_str_eq(tsupport_str(role, "name"), "auditor");
    cr_expect_str_eq(tsupport_str(role, "description"), "Reads the audit log");
    cr_expect_eq(json_integer_value(json_object_get(role, "privilegeLevel")), 20);
    cr_expect_eq(json_array_size(json_object_get(role, "permissions")), 2, "%s", res.body);
    cr_expect_str_eq(json_string_value(json_array_get(json_object_get(role, "permissions"), 0)),
                     "read_profile");
    cr_expect_eq(db_scalar("SELECT count(*) FROM role_permissions rp JOIN roles r"
                           " ON r.id = rp.role_id WHERE r.name = $1",
                           "auditor"),
                 2);
    cr_expect_eq(db_scalar("SELECT count(*) FROM audit_logs WHERE event_type = 'role_created'"
                           " AND user_id = $1",
                           boss.id),
                 1);
    tsupport_response_cleanup(&res);

    /* A role without permissions is allowed. */
    request("POST", path, boss.access,
            "{\"name\": \"visitor\", \"description\": \"\", \"privilegeLevel\": 1,"
            " \"permissions\": []}",
            &res);
    cr_expect_eq(res.status, 201, "%s", res.body);
    tsupport_response_cleanup(&res);

    expect_error("POST", path, boss.access,
                 "{\"name\": \"auditor\", \"description\": \"again\", \"privilegeLevel\": 30,"
                 " \"permissions\": []}",
                 409, "Conflict");
    expect_error("POST", path, boss.access,
                 "{\"name\": \"admin\", \"description\": \"x\", \"privilegeLevel\": 30,"
                 " \"permissions\": []}",
                 409, "Conflict");

    /* Levels 1 to 99, integers only; every member required; known, distinct permissions. */
    expect_invalid("POST", path, boss.access,
                   "{\"name\": \"r0\", \"description\": \"\", \"privilegeLevel\": 0,"
                   " \"permissions\": []}",
                   "privilegeLevel");
    expect_invalid("POST", path, boss.access,
                   "{\"name\": \"r100\", \"description\": \"\", \"privilegeLevel\": 100,"
                   " \"permissions\": []}",
                   "privilegeLevel");
    expect_invalid("POST", path, boss.access,
                   "{\"name\": \"rx\", \"description\": \"\", \"privilegeLevel\": \"x\","
                   " \"permissions\": []}",
                   "privilegeLevel");
    expect_invalid("POST", path, boss.access,
                   "{\"name\": \"rf\", \"description\": \"\", \"privilegeLevel\": 5.5,"
                   " \"permissions\": []}",
                   "privilegeLevel");
    expect_invalid("POST", path, boss.access,
                   "{\"name\": \"rm\", \"description\": \"\", \"privilegeLevel\": 5}",
                   "permissions");
    expect_invalid("POST", path, boss.access,
                   "{\"name\": \"ru\", \"description\": \"\", \"privilegeLevel\": 5,"
                   " \"permissions\": [\"fly\"]}",
                   "permissions");
    expect_invalid("POST", path, boss.access,
                   "{\"name\": \"rd\", \"description\": \"\", \"privilegeLevel\": 5,"
                   " \"permissions\": [\"read_profile\", \"read_profile\"]}",
                   "permissions");
    expect_invalid("POST", path, boss.access,
                   "{\"name\": \"rn\", \"description\": \"\", \"privilegeLevel\": 5,"
                   " \"permissions\": [1]}",
                   "permissions");
    expect_invalid("POST", path, boss.access,
                   "{\"name\": \"\", \"description\": \"\", \"privilegeLevel\": 5,"
                   " \"permissions\": []}",
                   "name");
    expect_invalid("POST", path, boss.access,
                   "{\"description\": \"\", \"privilegeLevel\": 5, \"permissions\": []}", "name");
    expect_invalid("POST", path, boss.access,
                   "{\"name\": \"re\", \"description\": \"\", \"privilegeLevel\": 5,"
                   " \"permissions\": [], \"extra\": 1}",
                   "extra");
    cr_expect_eq(db_scalar("SELECT count(*) FROM roles", NULL), 7);
    superadmin_stop();
}

/* ---- Features and plans ---------------------------------------------------------------- */

Test(http_superadmin, features_create)
{
    static const char path[] = "/api/admin/features";
    struct tsupport_user boss;
    struct tsupport_response res;
    json_t *feature;

    user_with_role("features@example.com", "superadmin", &boss);

    request("POST", path, boss.access,
            "{\"name\": \"team_chat\", \"description\": \"Chat with your team\","
            " \"category\": \"collaboration\", \"plans\": [\"Enterprise\", \"pro\"]}",
            &res);
    cr_assert_eq(res.status, 201, "%s", res.body);
    feature = tsupport_get(res.json, "feature");
    cr_expect(tsupport_is_uuid(tsupport_str(feature, "id")), "%s", res.body);
    cr_expect_str_eq(tsupport_str(feature, "name"), "team_chat");
    cr_expect_str_eq(tsupport_str(feature, "category"), "collaboration");
    cr_expect_str_eq(tsupport_str(feature, "description"), "Chat with your team");
    cr_expect_eq(json_array_size(json_object_get(feature, "plans")), 2, "%s", res.body);
    cr_expect_str_eq(json_string_value(json_array_get(json_object_get(feature, "plans"), 0)),
                     "Pro");
    tsupport_response_cleanup(&res);

    /* The catalogue lists it for the named plans only. */
    {
        json_t *pro = public_plan("Pro");
        json_t *enterprise = public_plan("Enterprise");
        json_t *free_plan = public_plan("Free");

        cr_expect(has_name(json_object_get(pro, "features"), "team_chat"));
        cr_expect(has_name(json_object_get(enterprise, "features"), "team_chat"));
        cr_expect(!has_name(json_object_get(free_plan, "features"), "team_chat"));
        json_decref(pro);
        json_decref(enterprise);
        json_decref(free_plan);
    }
    cr_expect_eq(db_scalar("SELECT count(*) FROM audit_logs WHERE event_type = 'feature_created'"
                           " AND user_id = $1",
                           boss.id),
                 1);

    expect_error("POST", path, boss.access,
                 "{\"name\": \"team_chat\", \"description\": \"\", \"category\": \"c\","
                 " \"plans\": []}",
                 409, "Conflict");
    expect_invalid("POST", path, boss.access,
                   "{\"name\": \"video\", \"description\": \"\", \"category\": \"c\","
                   " \"plans\": [\"Pro\", \"Platinum\"]}",
                   "plans");
    expect_invalid("POST", path, boss.access,
                   "{\"name\": \"video\", \"description\": \"\", \"category\": \"\","
                   " \"plans\": []}",
                   "category");
    expect_invalid("POST", path, boss.access,
                   "{\"name\": \"video\", \"description\": \"\", \"category\": \"c\","
                   " \"plans\": \"Pro\"}",
                   "plans");
    expect_invalid("POST", path, boss.access,
                   "{\"name\": \"video\", \"description\": \"\", \"category\": \"c\"}", "plans");
    cr_expect_eq(db_scalar("SELECT count(*) FROM features WHERE name = $1", "video"), 0);

    /* A feature that no plan has yet. */
    request("POST", path, boss.access,
            "{\"name\": \"video\", \"description\": \"Video calls\", \"category\": \"c\","
            " \"plans\": []}",
            &res);
    cr_expect_eq(res.status, 201, "%s", res.body);
    cr_expect_eq(json_array_size(tsupport_get(res.json, "feature.plans")), 0, "%s", res.body);
    tsupport_response_cleanup(&res);
    superadmin_stop();
}

Test(http_superadmin, plans_patch)
{
    struct tsupport_user boss;
    struct tsupport_response res;
    json_t *plan;
    long long started;

    user_with_role("plans@example.com", "superadmin", &boss);

    request("PATCH", "/api/admin/plans/Pro", boss.access,
            "{\"priceMonthlyPaise\": 149900, \"maxApiRequestsPerMonth\": 20000,"
            " \"trialPeriodDays\": 7, \"isFeatured\": false,"
            " \"features\": [\"premium_dashboard\", \"api_access\"]}",
            &res);
    cr_assert_eq(res.status, 200, "%s", res.body);
    plan = tsupport_get(res.json, "plan");
    cr_expect_str_eq(tsupport_str(plan, "name"), "Pro");
    cr_expect_eq(json_integer_value(json_object_get(plan, "priceMonthlyPaise")), 149900);
    cr_expect_eq(json_integer_value(json_object_get(plan, "maxApiRequestsPerMonth")), 20000);
    cr_expect_eq(json_integer_value(json_object_get(plan, "trialPeriodDays")), 7);
    cr_expect(json_is_false(json_object_get(plan, "isFeatured")));
    cr_expect(json_is_true(json_object_get(plan, "isActive")));
    cr_expect_eq(json_array_size(json_object_get(plan, "features")), 2, "%s", res.body);
    cr_expect_str_eq(json_string_value(json_array_get(json_object_get(plan, "features"), 0)),
                     "api_access");

    /* The catalogue shows the same plan within a second. */
    started = tsupport_now_ms();
    {
        json_t *want = json_deep_copy(plan);
        bool equal = false;

        json_object_del(want, "isActive");
        do {
            json_t *seen = public_plan("Pro");

            equal = json_equal(seen, want);
            json_decref(seen);
            if (!equal)
                usleep(25000);
        } while (!equal && tsupport_now_ms() - started <= CATCH_UP_MS);
        cr_expect(equal, "the catalogue still differs from %s", res.body);
        json_decref(want);
    }
    tsupport_response_cleanup(&res);
    cr_expect_eq(db_scalar("SELECT count(*) FROM audit_logs WHERE event_type = 'plan_changed'"
                           " AND resource_id = $1",
                           "Pro"),
                 1);

    /* Names in the path match exactly; unknown names and features are refused. */
    expect_error("PATCH", "/api/admin/plans/pro", boss.access, "{\"isFeatured\": true}", 404,
                 "NotFound");
    expect_error("PATCH", "/api/admin/plans/Gold", boss.access, "{}", 404, "NotFound");
    expect_error("PATCH", "/api/admin/plans/Pr%00o", boss.access, "{}", 404, "NotFound");
    expect_error("PATCH", "/api/admin/plans/%ff", boss.access, "{}", 404, "NotFound");
    expect_invalid("PATCH", "/api/admin/plans/Pro", boss.access,
                   "{\"features\": [\"api_access\", \"teleport\"]}", "features");
    expect_invalid("PATCH", "/api/admin/plans/Pro", boss.access, "{\"priceMonthlyPaise\": -1}",
                   "priceMonthlyPaise");
    expect_invalid("PATCH", "/api/admin/plans/Pro", boss.access, "{\"priceMonthlyPaise\": \"999\"}",
                   "priceMonthlyPaise");
    expect_invalid("PATCH", "/api/admin/plans/Pro", boss.access, "{\"priceMonthlyPaise\": 99.5}",
                   "priceMonthlyPaise");
    expect_invalid("PATCH", "/api/admin/plans/Pro", boss.access, "{\"trialPeriodDays\": 4000}",
                   "trialPeriodDays");
    expect_invalid("PATCH", "/api/admin/plans/Pro", boss.access, "{\"isActive\": \"no\"}",
                   "isActive");
    expect_invalid("PATCH", "/api/admin/plans/Pro", boss.access, "{\"tier\": 3}", "tier");

    /* Nothing above changed the plan, and an empty body answers it unchanged. */
    request("PATCH", "/api/admin/plans/Pro", boss.access, "{}", &res);
    cr_expect_eq(res.status, 200, "%s", res.body);
    cr_expect_eq(json_integer_value(tsupport_get(res.json, "plan.priceMonthlyPaise")), 149900);
    cr_expect_eq(json_array_size(tsupport_get(res.json, "plan.features")), 2, "%s", res.body);
    tsupport_response_cleanup(&res);

    /* Deactivated: still answered, gone from the catalogue. */
    request("PATCH", "/api/admin/plans/Pro", boss.access, "{\"isActive\": false}", &res);
    cr_expect_eq(res.status, 200, "%s", res.body);
    cr_expect(json_is_false(tsupport_get(res.json, "plan.isActive")), "%s", res.body);
    tsupport_response_cleanup(&res);
    {
        json_t *gone = public_plan("Pro");

        cr_expect_null(gone, "an inactive plan is still listed");
        json_decref(gone);
    }
    superadmin_stop();
}

Test(http_superadmin, admin_lacks_the_permissions)
{
    struct tsupport_user admin;
    struct tsupport_response res;

    user_with_role("admin@example.com", "admin", &admin);
    request("GET", "/api/admin/settings", admin.access, NULL, &res);
    tsupport_expect_error(&res, 403, "Forbidden");
    cr_expect_str_eq(tsupport_str(res.json, "requiredPermission"), "manage_settings");
    tsupport_response_cleanup(&res);

    expect_error("PATCH", "/api/admin/settings", admin.access, "{\"a\": 1}", 403, "Forbidden");
    expect_error("POST", "/api/admin/roles", admin.access,
                 "{\"name\": \"helper\", \"description\": \"\", \"privilegeLevel\": 5,"
                 " \"permissions\": []}",
                 403, "Forbidden");
    expect_error("POST", "/api/admin/features", admin.access,
                 "{\"name\": \"f\", \"description\": \"\", \"category\": \"c\", \"plans\": []}",
                 403, "Forbidden");
    expect_error("PATCH", "/api/admin/plans/Pro", admin.access, "{\"isActive\": false}", 403,
                 "Forbidden");
    superadmin_stop();
}

/* The privilege rule holds in the pool itself: a role at or above the caller's own level is
 * refused whatever the permission check said. */
Test(http_superadmin, roles_rank_below_the_caller)
{
    struct tsupport_user boss;

    user_with_role("lesser@example.com", "superadmin", &boss);
    tsupport_db_run(server.db.url,
                    "UPDATE roles SET privilege_level = 40 WHERE name = 'superadmin'", 0, NULL);
    expect_error("POST", "/api/admin/roles", boss.access,
                 "{\"name\": \"peer\", \"description\": \"\", \"privilegeLevel\": 40,"
                 " \"permissions\": []}",
                 403, "Forbidden");
    expect_error("POST", "/api/admin/roles", boss.access,
                 "{\"name\": \"higher\", \"description\": \"\", \"privilegeLevel\": 60,"
                 " \"permissions\": []}",
                 403, "Forbidden");
    {
        struct tsupport_response res;

        request("POST", "/api/admin/roles", boss.access,
                "{\"name\": \"lower\", \"description\": \"\", \"privilegeLevel\": 39,"
                " \"permissions\": []}",
                &res);
        cr_expect_eq(res.status, 201, "%s", res.body);
        tsupport_response_cleanup(&res);
    }
    superadmin_stop();
}

/* A role never grants more than its creator holds: a role maker without manage_settings
 * cannot mint a role that has it. */
Test(http_superadmin, roles_hold_only_what_the_caller_holds)
{
    struct tsupport_user maker;
    struct tsupport_response res;

    tsupport_db_run(server.db.url,
                    "INSERT INTO roles (name, description, privilege_level)"
                    " VALUES ('rolemaker', 'creates roles', 80)",
                    0, NULL);
    tsupport_db_run(server.db.url,
                    "INSERT INTO role_permissions (role_id, permission_id)"
                    " SELECT r.id, p.id FROM roles r, permissions p"
                    "  WHERE r.name = 'rolemaker' AND p.name IN ('manage_roles', 'read_profile')",
                    0, NULL);
    user_with_role("maker@example.com", "rolemaker", &maker);
    expect_error("POST", "/api/admin/roles", maker.access,
                 "{\"name\": \"escalated\", \"description\": \"\", \"privilegeLevel\": 10,"
                 " \"permissions\": [\"read_profile\", \"manage_settings\"]}",
                 403, "Forbidden");
    cr_expect_eq(db_scalar("SELECT count(*) FROM roles WHERE name = 'escalated'", NULL), 0);

    request("POST", "/api/admin/roles", maker.access,
            "{\"name\": \"reader\", \"description\": \"\", \"privilegeLevel\": 10,"
            " \"permissions\": [\"read_profile\"]}",
            &res);
    cr_expect_eq(res.status, 201, "%s", res.body);
    tsupport_response_cleanup(&res);
    superadmin_stop();
}
