/* SPDX-License-Identifier: MIT */
/*
 * The administrators' console over real HTTP: the user list and its search, deactivation and
 * role changes under the privilege-level rule, the analytics figures and the audit log.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "test_support.h"

#define PASSWORD "correct horse battery"
#define ENDED_WITHIN_MS 1000 /* the contract: an ended session's token is refused within 1 s */
#define UNKNOWN_ID "00000000-0000-4000-8000-000000000000"
#define ADMIN_USER_MEMBERS 10
#define AUDIT_LOG_MEMBERS 10
#define PATH_BYTES 256

static struct tsupport_server server;

static void admin_setup(void)
{
    tsupport_server_start(&server, NULL);
}

static void admin_teardown(void)
{
    tsupport_server_destroy(&server);
}

TestSuite(http_admin, .init = admin_setup, .fini = admin_teardown);

/* Every test ends here: SIGTERM, and a clean exit 0 (no leak, no sanitizer report). */
static void admin_stop(void)
{
    cr_expect_eq(tsupport_server_stop(&server), 0, "the server did not stop cleanly");
}

/* ---- Helpers --------------------------------------------------------------------------- */

static void call(const char *method, const char *path, const char *token, const char *body,
                 struct tsupport_response *res)
{
    tsupport_json(server.port, method, path, token, body, res);
}

/* Registers `email`, gives it `role` in the database (unless "user"), and logs in. */
static void account(const char *email, const char *role, struct tsupport_user *user)
{
    tsupport_register(server.port, email, PASSWORD);
    if (strcmp(role, "user") != 0)
        tsupport_user_role(server.db.url, email, role);
    cr_assert_eq(tsupport_login(server.port, email, PASSWORD, NULL, user), 200, "login %s", email);
}

/* Gives `user_id` an active, paid Pro subscription (no trial) in place of its current one. */
static void subscribe_pro(const char *user_id)
{
    const char *params[] = {user_id};

    tsupport_db_run(server.db.url,
                    "UPDATE user_subscriptions SET status = 'cancelled', cancelled_at = now()"
                    " WHERE user_id = $1 AND status = 'active'",
                    1, params);
    tsupport_db_run(server.db.url,
                    "INSERT INTO user_subscriptions (user_id, plan_id, status, starts_at, ends_at)"
                    " SELECT $1, id, 'active', now(), now() + interval '30 days'"
                    "   FROM subscription_plans WHERE name = 'Pro'",
                    1, params);
}

/* A 403 Forbidden for privilege level: it names no permission and no roles. */
static void expect_level_refused(const struct tsupport_response *res, const char *what)
{
    cr_expect_eq(res->status, 403, "%s: %ld %s", what, res->status, res->body);
    if (res->status != 403)
        return;
    tsupport_expect_error(res, 403, "Forbidden");
    cr_expect_null(tsupport_get(res->json, "requiredPermission"), "%s: %s", what, res->body);
    cr_expect_null(tsupport_get(res->json, "requiredRoles"), "%s: %s", what, res->body);
}

/* A 400 ValidationError whose `fields` names `field`. */
static void expect_invalid(const struct tsupport_response *res, const char *field, const char *what)
{
    char path[64];

    cr_expect_eq(res->status, 400, "%s: %ld %s", what, res->status, res->body);
    if (res->status != 400)
        return;
    tsupport_expect_error(res, 400, "ValidationError");
    snprintf(path, sizeof(path), "fields.%s", field);
    cr_expect_not_null(tsupport_str(res->json, path), "%s: no %s in %s", what, path, res->body);
}

/* GET `path` as `token` answers 400 ValidationError naming `field`. */
static void expect_get_invalid(const char *path, const char *token, const char *field)
{
    struct tsupport_response res;

    call("GET", path, token, NULL, &res);
    expect_invalid(&res, field, path);
    tsupport_response_cleanup(&res);
}

static void expect_status(const char *method, const char *path, const char *token, const char *body,
                          long status)
{
    struct tsupport_response res;

    call(method, path, token, body, &res);
    cr_expect_eq(res.status, status, "%s %s: %ld %s", method, path, res.status, res.body);
    if (status == 404 && res.status == 404)
        tsupport_expect_error(&res, 404, "NotFound");
    tsupport_response_cleanup(&res);
}

/* Polls GET /api/profile until `token` is refused; expects that within ENDED_WITHIN_MS. */
static void expect_refused_soon(const char *token, const char *what)
{
    long long started = tsupport_now_ms();
    long long elapsed;
    long status;

    do {
        struct tsupport_response res;

        call("GET", "/api/profile", token, NULL, &res);
        status = res.status;
        tsupport_response_cleanup(&res);
        elapsed = tsupport_now_ms() - started;
        if (status == 401)
            break;
        usleep(25000);
    } while (elapsed <= ENDED_WITHIN_MS);
    cr_expect_eq(status, 401, "%s: still %ld after %lld ms", what, status, elapsed);
    cr_expect(elapsed <= ENDED_WITHIN_MS, "%s: refused only after %lld ms", what, elapsed);
}

/* One AdminUser object with exactly the contract's members and types. */
static void expect_admin_user(const json_t *user)
{
    static const char *const nullable[] = {"firstName", "lastName", "plan", "lastLoginAt"};
    const char *created = json_string_value(json_object_get(user, "createdAt"));

    cr_assert(json_is_object(user));
    cr_expect_eq(json_object_size(user), ADMIN_USER_MEMBERS, "members: %zu",
                 json_object_size(user));
    cr_expect(tsupport_is_uuid(json_string_value(json_object_get(user, "id"))));
    cr_expect(json_is_string(json_object_get(user, "email")));
    cr_expect(json_is_string(json_object_get(user, "role")));
    cr_expect(json_is_boolean(json_object_get(user, "isActive")));
    cr_expect(json_is_boolean(json_object_get(user, "isVerified")));
    cr_expect(created != NULL && tsupport_is_rfc3339_utc(created), "createdAt %s", created);
    for (size_t i = 0; i < sizeof(nullable) / sizeof(nullable[0]); i++) {
        json_t *value = json_object_get(user, nullable[i]);

        cr_expect(json_is_string(value) || json_is_null(value), "%s", nullable[i]);
    }
}

/* The user with `id` in a list answer, or NULL. */
static json_t *find_user(const json_t *answer, const char *id)
{
    json_t *users = json_object_get(answer, "users");

    for (size_t i = 0; i < json_array_size(users); i++) {
        json_t *user = json_array_get(users, i);

        if (strcmp(json_string_value(json_object_get(user, "id")), id) == 0)
            return user;
    }
    return NULL;
}

/* GET `path` (the user list) as `token`; expects 200 and fills `res`. */
static void list_users(const char *path, const char *token, struct tsupport_response *res)
{
    call("GET", path, token, NULL, res);
    cr_assert_eq(res->status, 200, "%s: %ld %s", path, res->status, res->body);
    cr_expect(json_is_true(tsupport_get(res->json, "success")));
    cr_assert(json_is_array(tsupport_get(res->json, "users")), "%s", res->body);
}

/* The emails of a list answer, joined with spaces in order. */
static void list_emails(const json_t *answer, char *out, size_t size)
{
    json_t *users = json_object_get(answer, "users");
    size_t at = 0;

    out[0] = '\0';
    for (size_t i = 0; i < json_array_size(users) && at < size; i++)
        at +=
            (size_t)snprintf(out + at, size - at, "%s%s", i > 0 ? " " : "",
                             json_string_value(json_object_get(json_array_get(users, i), "email")));
}

static long long int_at(const json_t *root, const char *path)
{
    json_t *value = tsupport_get(root, path);

    cr_assert(json_is_integer(value), "%s is not an integer", path);
    return json_integer_value(value);
}

/* The audit log as `token` sees it at `path`; expects 200 (caller cleans up). */
static json_t *audit_logs(const char *path, const char *token, struct tsupport_response *res)
{
    json_t *logs;

    call("GET", path, token, NULL, res);
    cr_assert_eq(res->status, 200, "%s: %ld %s", path, res->status, res->body);
    logs = tsupport_get(res->json, "logs");
    cr_assert(json_is_array(logs), "%s", res->body);
    return logs;
}

/* ---- GET /api/admin/users -------------------------------------------------------------- */

Test(http_admin, users_list_pages_newest_first_and_searches_literally)
{
    static const char *const emails[] = {"a%b@example.com", "axb@example.com", "a_c@example.com",
                                         "abc@example.com", "zed@example.com"};
    struct tsupport_user users[5];
    struct tsupport_user admin;
    struct tsupport_response res;
    char seen[512];

    account("lister@example.com", "admin", &admin);
    for (size_t i = 0; i < 5; i++)
        account(emails[i], "user", &users[i]);
    subscribe_pro(users[4].id);

    /* Defaults, shape, and newest first: zed is the last registered. */
    list_users("/api/admin/users", admin.access, &res);
    cr_expect_eq(int_at(res.json, "page"), 1);
    cr_expect_eq(int_at(res.json, "limit"), 20);
    cr_expect_eq(int_at(res.json, "total"), 6);
    cr_assert_eq(json_array_size(tsupport_get(res.json, "users")), 6, "%s", res.body);
    for (size_t i = 0; i < 6; i++)
        expect_admin_user(json_array_get(tsupport_get(res.json, "users"), i));
    list_emails(res.json, seen, sizeof(seen));
    cr_expect_str_eq(seen, "zed@example.com abc@example.com a_c@example.com axb@example.com "
                           "a%b@example.com lister@example.com");
    {
        json_t *zed = find_user(res.json, users[4].id);
        json_t *abc = find_user(res.json, users[3].id);
        json_t *lister = find_user(res.json, admin.id);

        cr_assert(zed != NULL && abc != NULL && lister != NULL);
        cr_expect_str_eq(json_string_value(json_object_get(zed, "plan")), "Pro");
        cr_expect_str_eq(json_string_value(json_object_get(abc, "plan")), "Free");
        cr_expect_str_eq(json_string_value(json_object_get(lister, "role")), "admin");
        cr_expect_str_eq(json_string_value(json_object_get(abc, "role")), "user");
        cr_expect(json_is_true(json_object_get(abc, "isActive")));
        cr_expect(json_is_false(json_object_get(abc, "isVerified")));
        cr_expect(json_is_string(json_object_get(abc, "lastLoginAt")));
    }
    tsupport_response_cleanup(&res);

    /* Pages hold together, and a page past the end is empty but counts everyone. */
    list_users("/api/admin/users?page=2&limit=2", admin.access, &res);
    list_emails(res.json, seen, sizeof(seen));
    cr_expect_str_eq(seen, "a_c@example.com axb@example.com");
    cr_expect_eq(int_at(res.json, "page"), 2);
    cr_expect_eq(int_at(res.json, "limit"), 2);
    cr_expect_eq(int_at(res.json, "total"), 6);
    tsupport_response_cleanup(&res);
    list_users("/api/admin/users?page=9&limit=100", admin.access, &res);
    cr_expect_eq(json_array_size(tsupport_get(res.json, "users")), 0, "%s", res.body);
    cr_expect_eq(int_at(res.json, "total"), 6);
    tsupport_response_cleanup(&res);

    /* `%` and `_` are literal; any letter case matches. */
    list_users("/api/admin/users?q=A%25", admin.access, &res);
    list_emails(res.json, seen, sizeof(seen));
    cr_expect_str_eq(seen, "a%b@example.com");
    cr_expect_eq(int_at(res.json, "total"), 1);
    tsupport_response_cleanup(&res);
    list_users("/api/admin/users?q=a_", admin.access, &res);
    list_emails(res.json, seen, sizeof(seen));
    cr_expect_str_eq(seen, "a_c@example.com");
    tsupport_response_cleanup(&res);
    list_users("/api/admin/users?q=AB", admin.access, &res);
    list_emails(res.json, seen, sizeof(seen));
    cr_expect_str_eq(seen, "abc@example.com");
    tsupport_response_cleanup(&res);
    list_users("/api/admin/users?q=A&limit=1", admin.access, &res);
    cr_expect_eq(int_at(res.json, "total"), 4, "%s", res.body);
    cr_expect_eq(json_array_size(tsupport_get(res.json, "users")), 1);
    tsupport_response_cleanup(&res);
    list_users("/api/admin/users?q=nobody", admin.access, &res);
    cr_expect_eq(int_at(res.json, "total"), 0);
    tsupport_response_cleanup(&res);

    /* Out of range or not an integer: 400 naming the parameter. */
    expect_get_invalid("/api/admin/users?page=0", admin.access, "page");
    expect_get_invalid("/api/admin/users?page=-1", admin.access, "page");
    expect_get_invalid("/api/admin/users?page=", admin.access, "page");
    expect_get_invalid("/api/admin/users?page=99999999999999999999", admin.access, "page");
    expect_get_invalid("/api/admin/users?limit=101", admin.access, "limit");
    expect_get_invalid("/api/admin/users?limit=0", admin.access, "limit");
    expect_get_invalid("/api/admin/users?limit=abc", admin.access, "limit");
    expect_get_invalid("/api/admin/users?limit=1.5", admin.access, "limit");
    expect_get_invalid("/api/admin/users?q=a%00b", admin.access, "q");
    expect_get_invalid("/api/admin/users?q=%FF", admin.access, "q");
    {
        /* Too long for the contract, and too long to decode at all: refused, not ignored. */
        char path[2200];

        for (size_t len = 300; len <= 2000; len += 1700) {
            int at = snprintf(path, sizeof(path), "/api/admin/users?q=");

            memset(path + at, 'a', len);
            path[at + (int)len] = '\0';
            expect_get_invalid(path, admin.access, "q");
        }
    }
    admin_stop();
}

/* ---- DELETE /api/admin/users/:userId --------------------------------------------------- */

Test(http_admin, delete_respects_levels_and_disables_the_account)
{
    struct tsupport_user super, admin, other_admin, victim, bystander;
    struct tsupport_response res;
    char path[PATH_BYTES];

    account("super@example.com", "superadmin", &super);
    account("admin@example.com", "admin", &admin);
    account("admin2@example.com", "admin", &other_admin);
    account("victim@example.com", "user", &victim);
    account("bystander@example.com", "subscriber", &bystander);

    /* Equal or higher levels, oneself included, are out of reach. */
    snprintf(path, sizeof(path), "/api/admin/users/%s", other_admin.id);
    call("DELETE", path, admin.access, NULL, &res);
    expect_level_refused(&res, "admin deletes admin");
    tsupport_response_cleanup(&res);
    snprintf(path, sizeof(path), "/api/admin/users/%s", super.id);
    call("DELETE", path, admin.access, NULL, &res);
    expect_level_refused(&res, "admin deletes superadmin");
    tsupport_response_cleanup(&res);
    snprintf(path, sizeof(path), "/api/admin/users/%s", admin.id);
    call("DELETE", path, admin.access, NULL, &res);
    expect_level_refused(&res, "admin deletes itself");
    tsupport_response_cleanup(&res);
    snprintf(path, sizeof(path), "/api/admin/users/%s", super.id);
    call("DELETE", path, super.access, NULL, &res);
    expect_level_refused(&res, "superadmin deletes itself");
    tsupport_response_cleanup(&res);

    /* Unknown or malformed ids look alike. */
    expect_status("DELETE", "/api/admin/users/not-a-uuid", admin.access, NULL, 404);
    expect_status("DELETE", "/api/admin/users/" UNKNOWN_ID, admin.access, NULL, 404);
    expect_status("DELETE", "/api/admin/users/00000000-0000-4000-8000-00000000000", admin.access,
                  NULL, 404);

    /* The delete: the token dies within a second, the right password meets AccountDisabled. */
    snprintf(path, sizeof(path), "/api/admin/users/%s", victim.id);
    call("DELETE", path, admin.access, NULL, &res);
    cr_expect_eq(res.status, 200, "%s", res.body);
    cr_expect(json_is_true(tsupport_get(res.json, "success")), "%s", res.body);
    tsupport_response_cleanup(&res);
    expect_refused_soon(victim.access, "deleted user's token");
    {
        struct tsupport_user again;
        const char *body = "{\"email\":\"victim@example.com\",\"password\":\"" PASSWORD "\"}";

        call("POST", "/api/auth/login", NULL, body, &res);
        tsupport_expect_error(&res, 403, "AccountDisabled");
        tsupport_response_cleanup(&res);
        cr_expect_eq(tsupport_login(server.port, victim.email, "wrong password!", NULL, &again),
                     401, "a wrong password still gets InvalidCredentials");
    }
    {
        const char *params[] = {victim.id};
        PGconn *conn = tsupport_connect(server.db.url);

        cr_expect_eq(tsupport_scalar(conn,
                                     "SELECT count(*) FROM sessions"
                                     " WHERE user_id = $1 AND end_reason = 'user_deleted'",
                                     1, params),
                     1);
        PQfinish(conn);
    }

    /* Listed as inactive; a second delete changes nothing and still succeeds. */
    list_users("/api/admin/users?q=victim", admin.access, &res);
    cr_assert_eq(json_array_size(tsupport_get(res.json, "users")), 1);
    cr_expect(json_is_false(
        tsupport_get(json_array_get(tsupport_get(res.json, "users"), 0), "isActive")));
    tsupport_response_cleanup(&res);
    expect_status("DELETE", path, admin.access, NULL, 200);

    /* Audited once, by the administrator, about the victim. */
    {
        json_t *logs =
            audit_logs("/api/admin/audit-logs?eventType=user_deleted", admin.access, &res);

        cr_assert_eq(json_array_size(logs), 1, "%s", res.body);
        cr_expect_str_eq(tsupport_str(json_array_get(logs, 0), "userId"), admin.id);
        cr_expect_str_eq(tsupport_str(json_array_get(logs, 0), "resourceId"), victim.id);
        tsupport_response_cleanup(&res);
    }

    /* A superadmin ranks above an admin; the bystander's session never ended. */
    snprintf(path, sizeof(path), "/api/admin/users/%s", other_admin.id);
    expect_status("DELETE", path, super.access, NULL, 200);
    expect_refused_soon(other_admin.access, "deleted admin's token");
    expect_status("GET", "/api/profile", bystander.access, NULL, 200);
    admin_stop();
}

/* ---- PATCH /api/admin/users/:userId/role ----------------------------------------------- */

static void patch_role(const char *user_id, const char *token, const char *role,
                       struct tsupport_response *res)
{
    char path[PATH_BYTES];
    char body[128];

    snprintf(path, sizeof(path), "/api/admin/users/%s/role", user_id);
    snprintf(body, sizeof(body), "{\"role\":\"%s\"}", role);
    call("PATCH", path, token, body, res);
}

static void expect_role_refused(const char *user_id, const char *token, const char *role,
                                const char *what)
{
    struct tsupport_response res;

    patch_role(user_id, token, role, &res);
    expect_level_refused(&res, what);
    tsupport_response_cleanup(&res);
}

Test(http_admin, role_change_respects_levels_and_ends_sessions)
{
    struct tsupport_user super, admin, other_admin, target, bystander;
    struct tsupport_response res;
    char path[PATH_BYTES];

    account("super@example.com", "superadmin", &super);
    account("admin@example.com", "admin", &admin);
    account("admin2@example.com", "admin", &other_admin);
    account("target@example.com", "user", &target);
    account("bystander@example.com", "user", &bystander);

    /* Never to or on a level at or above the caller's. */
    expect_role_refused(target.id, admin.access, "admin", "admin grants admin");
    expect_role_refused(target.id, admin.access, "superadmin", "admin grants superadmin");
    expect_role_refused(other_admin.id, admin.access, "user", "admin demotes admin");
    expect_role_refused(super.id, admin.access, "user", "admin demotes superadmin");
    expect_role_refused(admin.id, admin.access, "user", "admin demotes itself");
    expect_role_refused(super.id, super.access, "admin", "superadmin demotes itself");

    /* Bad input. */
    patch_role(target.id, admin.access, "wizard", &res);
    expect_invalid(&res, "role", "unknown role");
    tsupport_response_cleanup(&res);
    snprintf(path, sizeof(path), "/api/admin/users/%s/role", target.id);
    call("PATCH", path, admin.access, "{}", &res);
    expect_invalid(&res, "role", "missing role");
    tsupport_response_cleanup(&res);
    call("PATCH", path, admin.access, "{\"role\":7}", &res);
    expect_invalid(&res, "role", "role of the wrong type");
    tsupport_response_cleanup(&res);
    call("PATCH", path, admin.access, "{\"role\":\"user\",\"extra\":1}", &res);
    expect_invalid(&res, "extra", "unknown member");
    tsupport_response_cleanup(&res);
    expect_status("PATCH", "/api/admin/users/nope/role", admin.access, "{\"role\":\"user\"}", 404);
    expect_status("PATCH", "/api/admin/users/" UNKNOWN_ID "/role", admin.access,
                  "{\"role\":\"user\"}", 404);
    expect_status("GET", "/api/profile", target.access, NULL, 200);

    /* The change answers the updated user and ends the target's sessions only. */
    patch_role(target.id, admin.access, "subscriber", &res);
    cr_expect_eq(res.status, 200, "%s", res.body);
    expect_admin_user(tsupport_get(res.json, "user"));
    cr_expect_str_eq(tsupport_str(res.json, "user.id"), target.id);
    cr_expect_str_eq(tsupport_str(res.json, "user.role"), "subscriber");
    tsupport_response_cleanup(&res);
    expect_refused_soon(target.access, "re-roled user's token");
    expect_status("GET", "/api/profile", bystander.access, NULL, 200);
    {
        struct tsupport_user again;

        cr_assert_eq(tsupport_login(server.port, target.email, PASSWORD, NULL, &again), 200);
        call("GET", "/api/profile", again.access, NULL, &res);
        cr_expect_str_eq(tsupport_str(res.json, "user.role"), "subscriber", "%s", res.body);
        tsupport_response_cleanup(&res);
    }

    /* Audited with both roles, by the administrator. */
    {
        json_t *logs =
            audit_logs("/api/admin/audit-logs?eventType=role_changed", admin.access, &res);
        json_t *row = json_array_get(logs, 0);

        cr_assert_eq(json_array_size(logs), 1, "%s", res.body);
        cr_expect_str_eq(tsupport_str(row, "userId"), admin.id);
        cr_expect_str_eq(tsupport_str(row, "resourceId"), target.id);
        cr_expect_str_eq(tsupport_str(row, "details.oldRole"), "user");
        cr_expect_str_eq(tsupport_str(row, "details.newRole"), "subscriber");
        tsupport_response_cleanup(&res);
    }

    /* A superadmin may make an admin, who then ranks equal to the first admin. */
    patch_role(target.id, super.access, "admin", &res);
    cr_expect_eq(res.status, 200, "%s", res.body);
    cr_expect_str_eq(tsupport_str(res.json, "user.role"), "admin");
    tsupport_response_cleanup(&res);
    expect_role_refused(target.id, admin.access, "user", "admin demotes the new admin");
    admin_stop();
}

/* ---- The permission guard -------------------------------------------------------------- */

Test(http_admin, routes_refuse_callers_without_the_permission)
{
    static const char *const routes[][3] = {
        {"GET", "/api/admin/users", "manage_users"},
        {"DELETE", "/api/admin/users/" UNKNOWN_ID, "manage_users"},
        {"PATCH", "/api/admin/users/" UNKNOWN_ID "/role", "manage_users"},
        {"GET", "/api/admin/analytics", "view_analytics"},
        {"GET", "/api/admin/audit-logs", "view_audit_logs"},
    };
    struct tsupport_user plain, subscriber;

    account("plain@example.com", "user", &plain);
    account("subscriber@example.com", "subscriber", &subscriber);
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        const char *body = strcmp(routes[i][0], "PATCH") == 0 ? "{\"role\":\"user\"}" : NULL;
        const char *tokens[] = {plain.access, subscriber.access};

        for (size_t t = 0; t < 2; t++) {
            struct tsupport_response res;

            call(routes[i][0], routes[i][1], tokens[t], body, &res);
            tsupport_expect_error(&res, 403, "Forbidden");
            cr_expect_str_eq(tsupport_str(res.json, "requiredPermission"), routes[i][2], "%s %s",
                             routes[i][0], routes[i][1]);
            tsupport_response_cleanup(&res);
        }
    }
    admin_stop();
}

/* ---- GET /api/admin/analytics ---------------------------------------------------------- */

static void analytics(const char *token, struct tsupport_response *res)
{
    call("GET", "/api/admin/analytics", token, NULL, res);
    cr_assert_eq(res->status, 200, "%ld %s", res->status, res->body);
    cr_expect(json_is_true(tsupport_get(res->json, "success")));
}

Test(http_admin, analytics_counts_follow_logins_and_subscriptions)
{
    static const char *const reasons[] = {"role", "permission", "subscription", "feature", "quota"};
    struct tsupport_user admin, payer, trial, quitter;
    struct tsupport_response before, after;
    struct tsupport_user ignored;

    account("analyst@example.com", "admin", &admin);
    account("payer@example.com", "user", &payer);
    account("trial@example.com", "user", &trial);
    account("quitter@example.com", "user", &quitter);

    analytics(admin.access, &before);
    cr_expect_eq(int_at(before.json, "users.total"), 4);
    cr_expect_eq(int_at(before.json, "users.active"), 4);
    cr_expect_eq(int_at(before.json, "users.byPlan.Free"), 4, "%s", before.body);
    cr_expect_eq(int_at(before.json, "users.byPlan.Pro"), 0, "%s", before.body);
    cr_expect_eq(int_at(before.json, "logins24h.success"), 4);
    cr_expect_eq(int_at(before.json, "logins24h.failure"), 0);
    cr_expect_geq(int_at(before.json, "activeSessions"), 4);
    cr_expect_eq(int_at(before.json, "mrrPaise"), 0);
    for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++) {
        char path[64];

        snprintf(path, sizeof(path), "denials24h.%s", reasons[i]);
        cr_expect_eq(int_at(before.json, path), 0, "%s", path);
    }

    /* One login each way; a paid Pro, a Pro trial, and a deactivated account. */
    cr_expect_eq(tsupport_login(server.port, payer.email, PASSWORD, NULL, &ignored), 200);
    cr_expect_eq(tsupport_login(server.port, payer.email, "not the password", NULL, &ignored), 401);
    subscribe_pro(payer.id);
    subscribe_pro(trial.id);
    {
        const char *params[] = {trial.id};

        tsupport_db_run(server.db.url,
                        "UPDATE user_subscriptions SET is_trial = true"
                        " WHERE user_id = $1 AND status = 'active'",
                        1, params);
    }
    {
        char path[PATH_BYTES];

        snprintf(path, sizeof(path), "/api/admin/users/%s", quitter.id);
        expect_status("DELETE", path, admin.access, NULL, 200);
    }

    analytics(admin.access, &after);
    cr_expect_eq(int_at(after.json, "logins24h.success"),
                 int_at(before.json, "logins24h.success") + 1);
    cr_expect_eq(int_at(after.json, "logins24h.failure"),
                 int_at(before.json, "logins24h.failure") + 1);
    cr_expect_eq(int_at(after.json, "users.total"), 4);
    cr_expect_eq(int_at(after.json, "users.active"), 3);
    cr_expect_eq(int_at(after.json, "users.byPlan.Pro"), 2, "%s", after.body);
    cr_expect_eq(int_at(after.json, "users.byPlan.Free"), 1, "%s", after.body);
    cr_expect_eq(int_at(after.json, "mrrPaise"), 99900, "trials and Free earn nothing");
    cr_expect_eq(int_at(after.json, "activeSessions"), int_at(before.json, "activeSessions"),
                 "one login more, the deactivated account's session less");
    tsupport_response_cleanup(&before);
    tsupport_response_cleanup(&after);

    /* A denial written by the access decision is counted under its reason. */
    tsupport_db_run(server.db.url,
                    "INSERT INTO audit_logs (event_type, status, details)"
                    " VALUES ('permission_denied', 'failure',"
                    "         '{\"reason\": \"feature\", \"route\": \"/api/data/export\"}')",
                    0, NULL);
    analytics(admin.access, &after);
    cr_expect_eq(int_at(after.json, "denials24h.feature"), 1, "%s", after.body);
    cr_expect_eq(int_at(after.json, "denials24h.quota"), 0);
    tsupport_response_cleanup(&after);
    admin_stop();
}

/* ---- GET /api/admin/audit-logs --------------------------------------------------------- */

/* Every row has the contract's members; createdAt never rises down the list. */
static void expect_audit_rows(const json_t *logs)
{
    const char *previous = NULL;

    for (size_t i = 0; i < json_array_size(logs); i++) {
        json_t *row = json_array_get(logs, i);
        const char *created = tsupport_str(row, "createdAt");

        cr_expect_geq(json_object_size(row), AUDIT_LOG_MEMBERS, "members: %zu",
                      json_object_size(row));
        cr_expect(json_is_object(json_object_get(row, "details")));
        cr_expect(json_is_string(json_object_get(row, "eventType")));
        cr_expect(json_is_string(json_object_get(row, "status")));
        cr_expect(json_object_get(row, "userId") != NULL);
        cr_expect(json_object_get(row, "resourceType") != NULL);
        cr_expect(json_object_get(row, "resourceId") != NULL);
        cr_expect(json_object_get(row, "action") != NULL);
        cr_expect(json_object_get(row, "ipAddress") != NULL);
        cr_assert(created != NULL && tsupport_is_rfc3339_utc(created), "createdAt");
        if (previous != NULL)
            cr_expect(strcmp(previous, created) >= 0, "%s before %s", previous, created);
        previous = created;
    }
}

/* The number of rows of `logs` whose member `key` equals `value`. */
static size_t count_rows(const json_t *logs, const char *key, const char *value)
{
    size_t n = 0;

    for (size_t i = 0; i < json_array_size(logs); i++) {
        const char *got = tsupport_str(json_array_get(logs, i), key);

        n += got != NULL && strcmp(got, value) == 0;
    }
    return n;
}

/* The database's clock now, as RFC 3339 with microseconds. */
static void db_now(char *out, size_t size)
{
    PGconn *conn = tsupport_connect(server.db.url);
    PGresult *res = tsupport_query(
        conn,
        "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US')", 0,
        NULL);

    cr_assert_eq(PQresultStatus(res), PGRES_TUPLES_OK);
    snprintf(out, size, "%sZ", PQgetvalue(res, 0, 0));
    PQclear(res);
    PQfinish(conn);
}

Test(http_admin, audit_logs_filter_and_list_newest_first)
{
    struct tsupport_user admin, alice, bob, ignored;
    struct tsupport_response res;
    char path[PATH_BYTES];
    char since[64];
    json_t *logs;

    account("auditor@example.com", "admin", &admin);
    account("alice@example.com", "user", &alice);
    account("bob@example.com", "user", &bob);
    cr_expect_eq(tsupport_login(server.port, alice.email, "not the password", NULL, &ignored), 401);

    logs = audit_logs("/api/admin/audit-logs", admin.access, &res);
    cr_expect_eq(json_array_size(logs), 7, "3 registers, 3 logins, 1 failure: %s", res.body);
    expect_audit_rows(logs);
    cr_expect_str_eq(tsupport_str(json_array_get(logs, 0), "status"), "failure");
    cr_expect_str_eq(tsupport_str(json_array_get(logs, 0), "eventType"), "login");
    cr_expect_str_eq(tsupport_str(json_array_get(logs, 0), "details.reason"), "wrong_password");
    cr_expect(tsupport_is_uuid(tsupport_str(json_array_get(logs, 0), "id")));
    cr_expect_str_eq(tsupport_str(json_array_get(logs, 6), "eventType"), "register");
    tsupport_response_cleanup(&res);

    /* By user, by event type, both, and a limit. */
    snprintf(path, sizeof(path), "/api/admin/audit-logs?userId=%s", alice.id);
    logs = audit_logs(path, admin.access, &res);
    cr_expect_eq(json_array_size(logs), 3, "%s", res.body);
    cr_expect_eq(count_rows(logs, "userId", alice.id), 3);
    expect_audit_rows(logs);
    tsupport_response_cleanup(&res);
    logs = audit_logs("/api/admin/audit-logs?eventType=register", admin.access, &res);
    cr_expect_eq(json_array_size(logs), 3, "%s", res.body);
    cr_expect_eq(count_rows(logs, "eventType", "register"), 3);
    tsupport_response_cleanup(&res);
    snprintf(path, sizeof(path), "/api/admin/audit-logs?userId=%s&eventType=login", alice.id);
    logs = audit_logs(path, admin.access, &res);
    cr_expect_eq(json_array_size(logs), 2, "%s", res.body);
    cr_expect_eq(count_rows(logs, "status", "failure"), 1);
    tsupport_response_cleanup(&res);
    logs = audit_logs("/api/admin/audit-logs?limit=2", admin.access, &res);
    cr_expect_eq(json_array_size(logs), 2, "%s", res.body);
    cr_expect_str_eq(tsupport_str(json_array_get(logs, 0), "status"), "failure");
    tsupport_response_cleanup(&res);

    /* `since` keeps what came at or after it, in any offset. */
    usleep(20000);
    db_now(since, sizeof(since));
    cr_expect_eq(tsupport_login(server.port, bob.email, PASSWORD, NULL, &ignored), 200);
    snprintf(path, sizeof(path), "/api/admin/audit-logs?since=%s", since);
    logs = audit_logs(path, admin.access, &res);
    cr_expect_eq(json_array_size(logs), 1, "since %s: %s", since, res.body);
    cr_expect_str_eq(tsupport_str(json_array_get(logs, 0), "userId"), bob.id);
    tsupport_response_cleanup(&res);
    logs = audit_logs("/api/admin/audit-logs?since=2999-01-01T00:00:00Z", admin.access, &res);
    cr_expect_eq(json_array_size(logs), 0, "%s", res.body);
    tsupport_response_cleanup(&res);
    logs = audit_logs("/api/admin/audit-logs?since=2000-02-29T05:30:00%2B05:30&eventType=login",
                      admin.access, &res);
    cr_expect_eq(json_array_size(logs), 5, "%s", res.body);
    tsupport_response_cleanup(&res);
    logs =
        audit_logs("/api/admin/audit-logs?since=2000-01-01t00:00:00.5-01:00", admin.access, &res);
    cr_expect_eq(json_array_size(logs), 8, "%s", res.body);
    tsupport_response_cleanup(&res);

    /* Filters of the wrong form. */
    expect_get_invalid("/api/admin/audit-logs?userId=alice", admin.access, "userId");
    expect_get_invalid("/api/admin/audit-logs?eventType=bogus", admin.access, "eventType");
    expect_get_invalid("/api/admin/audit-logs?since=yesterday", admin.access, "since");
    expect_get_invalid("/api/admin/audit-logs?since=2026-02-30T00:00:00Z", admin.access, "since");
    expect_get_invalid("/api/admin/audit-logs?since=2026-01-01T00:00:00", admin.access, "since");
    expect_get_invalid("/api/admin/audit-logs?since=2026-01-01", admin.access, "since");
    expect_get_invalid("/api/admin/audit-logs?limit=0", admin.access, "limit");
    expect_get_invalid("/api/admin/audit-logs?limit=501", admin.access, "limit");
    expect_get_invalid("/api/admin/audit-logs?limit=ten", admin.access, "limit");
    logs = audit_logs("/api/admin/audit-logs?limit=500", admin.access, &res);
    cr_expect_eq(json_array_size(logs), 8, "%s", res.body);
    tsupport_response_cleanup(&res);
    admin_stop();
}

/* ---- Every guarded route, every role ------------------------------------------------- */

struct guarded_route {
    const char *method;
    const char *path;
    const char *permission;
};

/* The seed roles' permissions, as the contract's table gives them. */
static bool role_holds(const char *role, const char *permission)
{
    static const char *const user_perms[] = {"read_profile", "update_profile", "view_dashboard"};
    static const char *const admin_perms[] = {"manage_users", "view_analytics",
                                              "manage_subscriptions", "view_audit_logs"};

    if (strcmp(role, "superadmin") == 0)
        return true;
    if (strcmp(role, "guest") == 0)
        return false;
    for (size_t i = 0; i < sizeof(user_perms) / sizeof(user_perms[0]); i++) {
        if (strcmp(permission, user_perms[i]) == 0)
            return true;
    }
    for (size_t i = 0;
         strcmp(role, "admin") == 0 && i < sizeof(admin_perms) / sizeof(admin_perms[0]); i++) {
        if (strcmp(permission, admin_perms[i]) == 0)
            return true;
    }
    return false;
}

Test(http_admin, every_admin_route_refuses_every_role_without_its_permission)
{
    static const char *const roles[] = {"guest", "user", "subscriber", "admin", "superadmin"};
    static const struct guarded_route routes[] = {
        {"GET", "/api/admin/users", "manage_users"},
        {"DELETE", "/api/admin/users/" UNKNOWN_ID, "manage_users"},
        {"PATCH", "/api/admin/users/" UNKNOWN_ID "/role", "manage_users"},
        {"GET", "/api/admin/analytics", "view_analytics"},
        {"PATCH", "/api/admin/subscriptions/" UNKNOWN_ID, "manage_subscriptions"},
        {"GET", "/api/admin/audit-logs", "view_audit_logs"},
        {"GET", "/api/admin/settings", "manage_settings"},
        {"PATCH", "/api/admin/settings", "manage_settings"},
        {"POST", "/api/admin/roles", "manage_roles"},
        {"POST", "/api/admin/features", "manage_features"},
        {"PATCH", "/api/admin/plans/Nope", "manage_features"},
    };

    for (size_t r = 0; r < sizeof(roles) / sizeof(roles[0]); r++) {
        struct tsupport_user user;
        char email[64];

        snprintf(email, sizeof(email), "every-%s@example.com", roles[r]);
        account(email, roles[r], &user);
        for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
            struct tsupport_response res;
            bool holds = role_holds(roles[r], routes[i].permission);

            /* A body that can never pass, so that an allowed call changes nothing. */
            call(routes[i].method, routes[i].path, user.access,
                 strcmp(routes[i].method, "GET") == 0 || strcmp(routes[i].method, "DELETE") == 0
                     ? NULL
                     : "{\"no such member\": true}",
                 &res);
            if (holds) {
                cr_expect_neq(res.status, 403, "%s %s %s: %s", roles[r], routes[i].method,
                              routes[i].path, res.body);
            } else {
                tsupport_expect_error(&res, 403, "Forbidden");
                cr_expect_str_eq(tsupport_str(res.json, "requiredPermission"), routes[i].permission,
                                 "%s %s %s", roles[r], routes[i].method, routes[i].path);
            }
            tsupport_response_cleanup(&res);
        }
    }
    admin_stop();
}
