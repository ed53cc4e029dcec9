/* SPDX-License-Identifier: MIT */
/*
 * The front end's caches across processes: two servers share one database, and whatever one
 * changes, or the database changes behind both, the other honours within a second.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "test_support.h"

#define PASSWORD "correct horse battery"
#define WITHIN_MS 1000

static struct tsupport_server first;
static struct tsupport_server second;

static void caches_setup(void)
{
    char shared_url[600];
    const char *extra[] = {shared_url, NULL};

    tsupport_server_start(&first, NULL);
    snprintf(shared_url, sizeof(shared_url), "DATABASE_URL=%s", first.db.url);
    tsupport_server_start(&second, extra);
}

static void caches_teardown(void)
{
    tsupport_server_destroy(&second);
    tsupport_server_destroy(&first);
}

TestSuite(caches, .init = caches_setup, .fini = caches_teardown);

static void stop_both(void)
{
    cr_expect_eq(tsupport_server_stop(&second), 0);
    cr_expect_eq(tsupport_server_stop(&first), 0);
}

/* Polls GET `path` on `srv` until `done` says yes; returns the milliseconds it took or -1. */
static long long poll_until(const struct tsupport_server *srv, const char *path, const char *token,
                            bool (*done)(const struct tsupport_response *, const void *),
                            const void *arg)
{
    long long started = tsupport_now_ms();

    while (tsupport_now_ms() - started <= 3 * WITHIN_MS) {
        struct tsupport_response res;
        bool ok;

        tsupport_json(srv->port, "GET", path, token, NULL, &res);
        ok = done(&res, arg);
        tsupport_response_cleanup(&res);
        if (ok)
            return tsupport_now_ms() - started;
        usleep(20000);
    }
    return -1;
}

static bool is_status(const struct tsupport_response *res, const void *arg)
{
    return res->status == *(const long *)arg;
}

/* arg: {"dotted.path", "wanted value"} */
static bool has_value(const struct tsupport_response *res, const void *arg)
{
    const char *const *want = arg;
    const char *got = tsupport_str(res->json, want[0]);

    return res->status == 200 && got != NULL && strcmp(got, want[1]) == 0;
}

static void expect_profile_status(const struct tsupport_server *srv, const char *token, long status)
{
    struct tsupport_response res;

    tsupport_json(srv->port, "GET", "/api/profile", token, NULL, &res);
    cr_expect_eq(res.status, status, "%s", res.body);
    tsupport_response_cleanup(&res);
}

Test(caches, logout_on_one_front_end_is_refused_on_the_other)
{
    struct tsupport_user user;
    struct tsupport_response res;
    long unauthorized = 401;
    long long took;

    tsupport_user_new(first.port, "everywhere@example.com", PASSWORD, &user);
    expect_profile_status(&second, user.access, 200);

    tsupport_json(first.port, "POST", "/api/auth/logout", user.access, NULL, &res);
    cr_assert_eq(res.status, 200, "%s", res.body);
    tsupport_response_cleanup(&res);

    took = poll_until(&second, "/api/profile", user.access, is_status, &unauthorized);
    cr_expect(took >= 0 && took <= WITHIN_MS, "the other front end took %lld ms", took);
    stop_both();
}

Test(caches, profile_change_on_one_front_end_is_seen_on_the_other)
{
    const char *const want[] = {"user.firstName", "Renamed"};
    struct tsupport_user user;
    struct tsupport_response res;
    long long took;

    tsupport_user_new(first.port, "renamed@example.com", PASSWORD, &user);
    expect_profile_status(&second, user.access, 200);

    tsupport_json(first.port, "PATCH", "/api/profile", user.access, "{\"firstName\":\"Renamed\"}",
                  &res);
    cr_assert_eq(res.status, 200, "%s", res.body);
    tsupport_response_cleanup(&res);

    /* The front end that made the change shows it at once. */
    tsupport_json(first.port, "GET", "/api/profile", user.access, NULL, &res);
    cr_expect_str_eq(tsupport_str(res.json, "user.firstName"), "Renamed");
    tsupport_response_cleanup(&res);

    took = poll_until(&second, "/api/profile", user.access, has_value, want);
    cr_expect(took >= 0 && took <= WITHIN_MS, "the other front end took %lld ms", took);
    stop_both();
}

Test(caches, changes_made_in_the_database_directly_are_announced)
{
    const char *const renamed_plan[] = {"user.subscription.plan", "Gratis"};
    const char *const last_name[] = {"user.lastName", "Direct"};
    struct tsupport_user user;
    PGconn *conn;
    const char *params[1];
    long long took;

    tsupport_user_new(first.port, "direct@example.com", PASSWORD, &user);
    expect_profile_status(&first, user.access, 200);
    expect_profile_status(&second, user.access, 200);
    conn = tsupport_connect(first.db.url);

    params[0] = user.id;
    PQclear(tsupport_query(conn, "UPDATE user_accounts SET last_name = 'Direct' WHERE id = $1", 1,
                           params));
    took = poll_until(&second, "/api/profile", user.access, has_value, last_name);
    cr_expect(took >= 0 && took <= WITHIN_MS, "an account change took %lld ms", took);

    /* A plan renamed touches every account on it. */
    PQclear(tsupport_query(conn,
                           "UPDATE subscription_plans SET name = 'Gratis'"
                           " WHERE name = 'Free'",
                           0, NULL));
    took = poll_until(&first, "/api/profile", user.access, has_value, renamed_plan);
    cr_expect(took >= 0 && took <= WITHIN_MS, "a plan change took %lld ms", took);

    PQfinish(conn);
    stop_both();
}

/* ---- Authorization decisions ------------------------------------------------------------- */

#define DASHBOARD "/api/features/premium-dashboard"

static bool is_not_200(const struct tsupport_response *res, const void *arg)
{
    (void)arg;
    return res->status != 200;
}

/* Sends one request with a JSON body on `srv` as `token`; expects `status`. */
static void expect_call(const struct tsupport_server *srv, const char *method, const char *path,
                        const char *token, const char *body, long status)
{
    struct tsupport_response res;

    tsupport_json(srv->port, method, path, token, body, &res);
    cr_expect_eq(res.status, status, "%s %s: %s", method, path, res.body);
    tsupport_response_cleanup(&res);
}

/* A superadmin on the first front end, and a Pro subscriber whose dashboard the second
 * front end has already decided (so its decision is cached there). */
static void operators_new(struct tsupport_user *root, struct tsupport_user *pro)
{
    tsupport_user_new(first.port, "root@example.com", PASSWORD, root);
    tsupport_user_role(first.db.url, root->email, "superadmin");
    tsupport_user_new(first.port, "pro@example.com", PASSWORD, pro);
    expect_call(&first, "POST", "/api/subscriptions", pro->access,
                "{\"plan\":\"Pro\",\"trial\":true}", 200);
    expect_call(&second, "GET", DASHBOARD, pro->access, NULL, 200);
}

Test(caches, a_role_change_through_one_front_end_is_enforced_by_the_other)
{
    struct tsupport_user root;
    struct tsupport_user pro;
    struct tsupport_user again;
    char path[128];
    long long took;

    operators_new(&root, &pro);
    expect_call(&second, "GET", "/api/admin/users", pro.access, NULL, 403);
    tsupport_user_role(first.db.url, pro.email, "admin");
    took = poll_until(&second, "/api/admin/users", pro.access, is_status, &(long){200});
    cr_expect(took >= 0 && took <= WITHIN_MS, "a role granted in the database took %lld ms", took);

    snprintf(path, sizeof(path), "/api/admin/users/%s/role", pro.id);
    expect_call(&first, "PATCH", path, root.access, "{\"role\":\"user\"}", 200);
    took = poll_until(&second, "/api/admin/users", pro.access, is_not_200, NULL);
    cr_expect(took >= 0 && took <= WITHIN_MS, "a role change took %lld ms", took);

    cr_assert_eq(tsupport_login(second.port, pro.email, PASSWORD, NULL, &again), 200);
    expect_call(&second, "GET", "/api/admin/users", again.access, NULL, 403);
    stop_both();
}

Test(caches, a_permission_renamed_in_the_database_is_enforced_by_both)
{
    struct tsupport_user root;
    struct tsupport_user pro;
    long long took;

    operators_new(&root, &pro);
    tsupport_user_role(first.db.url, pro.email, "admin");
    took = poll_until(&second, "/api/admin/users", pro.access, is_status, &(long){200});
    cr_assert(took >= 0, "the admin was never let in");

    /* The route asks for manage_users by name: a role holding it under another name does
     * not qualify any more. */
    tsupport_db_run(first.db.url,
                    "UPDATE permissions SET name = 'manage_people' WHERE name = 'manage_users'", 0,
                    NULL);
    took = poll_until(&second, "/api/admin/users", pro.access, is_status, &(long){403});
    cr_expect(took >= 0 && took <= WITHIN_MS, "a renamed permission took %lld ms", took);
    took = poll_until(&first, "/api/admin/users", pro.access, is_status, &(long){403});
    cr_expect(took >= 0 && took <= WITHIN_MS, "a renamed permission took %lld ms", took);
    stop_both();
}

/* A change whose announcement nobody heard: the listening connections of both front ends
 * are cut in the transaction that makes it, so the notice goes out to nobody. Reconnecting
 * flushes what each front end held, and the change is enforced all the same. */
Test(caches, a_lost_listening_connection_flushes_the_caches)
{
    struct tsupport_user root;
    struct tsupport_user pro;
    long long took;

    operators_new(&root, &pro);
    expect_call(&second, "GET", "/api/admin/users", pro.access, NULL, 403);
    /* The condition on `cut` only makes PostgreSQL run it, in the transaction of the grant. */
    tsupport_db_run(
        first.db.url,
        "WITH cut AS (SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        "              WHERE application_name = 'manas360-watch'"
        "                AND datname = current_database())"
        " UPDATE user_accounts SET role_id = (SELECT id FROM roles WHERE name = 'admin')"
        "  WHERE email = 'pro@example.com' AND (SELECT count(*) FROM cut) >= 0",
        0, NULL);
    took = poll_until(&second, "/api/admin/users", pro.access, is_status, &(long){200});
    cr_expect(took >= 0 && took <= 3 * WITHIN_MS, "a change nobody heard took %lld ms", took);
    {
        char *log = tsupport_file_read(second.log_path);

        cr_expect_not_null(strstr(log, "event=listen_connection_lost action=caches_flushed"),
                           "the cut was not noticed");
        free(log);
    }
    stop_both();
}

Test(caches, a_plan_change_through_one_front_end_is_enforced_by_the_other)
{
    struct tsupport_user root;
    struct tsupport_user pro;
    struct tsupport_response res;
    long long took;

    operators_new(&root, &pro);
    expect_call(&first, "PATCH", "/api/admin/plans/Pro", root.access,
                "{\"features\":[\"basic_dashboard\",\"data_export\"]}", 200);
    took = poll_until(&second, DASHBOARD, pro.access, is_status, &(long){403});
    cr_expect(took >= 0 && took <= WITHIN_MS, "a plan change took %lld ms", took);

    tsupport_json(second.port, "GET", DASHBOARD, pro.access, NULL, &res);
    tsupport_expect_error(&res, 403, "FeatureNotAvailable");
    cr_expect_str_eq(tsupport_str(res.json, "recommendedPlan"), "Enterprise",
                     "the catalogue for advice was refreshed too");
    tsupport_response_cleanup(&res);
    stop_both();
}

Test(caches, a_subscription_expiry_is_enforced_everywhere)
{
    struct tsupport_user root;
    struct tsupport_user pro;
    struct tsupport_response res;
    char path[128];
    char body[128];
    long long took;

    operators_new(&root, &pro);
    tsupport_json(first.port, "GET", "/api/subscriptions/current", pro.access, NULL, &res);
    cr_assert_eq(res.status, 200, "%s", res.body);
    snprintf(path, sizeof(path), "/api/admin/subscriptions/%s",
             tsupport_str(res.json, "subscription.id"));
    tsupport_response_cleanup(&res);

    /* An end a moment away needs no announcement: the clock is checked on every request. */
    tsupport_db_run(first.db.url,
                    "UPDATE user_subscriptions SET ends_at = now() + interval '2 seconds'"
                    " WHERE status = 'active' AND user_id = (SELECT id FROM user_accounts"
                    "                                         WHERE email = 'pro@example.com')",
                    0, NULL);
    usleep(300 * 1000);
    tsupport_json(second.port, "GET", DASHBOARD, pro.access, NULL, &res);
    cr_expect_eq(res.status, 200, "%s", res.body);
    cr_expect(tsupport_is_rfc3339_utc(tsupport_str(res.json, "dashboard.subscription.endsAt")),
              "the dashboard shows the end: %s", res.body);
    tsupport_response_cleanup(&res);
    took = poll_until(&second, DASHBOARD, pro.access, is_status, &(long){402});
    cr_expect(took >= 0 && took <= 2 * WITHIN_MS + 500, "an end passing took %lld ms", took);

    /* Renewed, then expired by an administrator through the first front end. */
    snprintf(body, sizeof(body), "{\"status\":\"active\",\"endsAt\":null}");
    expect_call(&first, "PATCH", path, root.access, body, 200);
    took = poll_until(&second, DASHBOARD, pro.access, is_status, &(long){200});
    cr_expect(took >= 0 && took <= WITHIN_MS, "a renewal took %lld ms", took);
    expect_call(&first, "PATCH", path, root.access, "{\"status\":\"expired\"}", 200);
    took = poll_until(&second, DASHBOARD, pro.access, is_status, &(long){402});
    cr_expect(took >= 0 && took <= WITHIN_MS, "an expiry took %lld ms", took);
    stop_both();
}
