/* SPDX-License-Identifier: MIT */
/*
 * The data export over real HTTP: a Pro user gets its own profile, subscriptions, live
 * sessions and audit events, nobody else's, and the export is audited.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "test_support.h"

#define PASSWORD "correct horse battery"

static struct tsupport_server server;

static void export_setup(void)
{
    tsupport_server_start(&server, NULL);
}

static void export_teardown(void)
{
    tsupport_server_destroy(&server);
}

TestSuite(http_export, .init = export_setup, .fini = export_teardown);

/* Every test ends here: SIGTERM, and a clean exit 0 (no leak, no sanitizer report). */
static void export_stop(void)
{
    cr_expect_eq(tsupport_server_stop(&server), 0, "the server did not stop cleanly");
}

/* ---- Helpers --------------------------------------------------------------------------- */

static void get(const char *path, const char *token, struct tsupport_response *res)
{
    tsupport_json(server.port, "GET", path, token, NULL, res);
    cr_assert_eq(res->status, 200, "%s: %ld %s", path, res->status, res->body);
}

/* Moves `user_id` from Free to an active, paid Pro subscription, as a payment would. */
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
    tsupport_db_run(server.db.url,
                    "UPDATE user_accounts SET role_id = (SELECT id FROM roles"
                    "                                     WHERE name = 'subscriber')"
                    " WHERE id = $1",
                    1, params);
}

/* A Pro user with two logins; `user` holds the second. */
static void pro_user(const char *email, struct tsupport_user *user)
{
    struct tsupport_user first;

    tsupport_user_new(server.port, email, PASSWORD, &first);
    subscribe_pro(first.id);
    cr_assert_eq(tsupport_login(server.port, email, PASSWORD, NULL, user), 200);
}

static long data_access_rows(const char *user_id)
{
    const char *params[] = {user_id};
    PGconn *conn = tsupport_connect(server.db.url);
    long n = tsupport_scalar(conn,
                             "SELECT count(*) FROM audit_logs"
                             " WHERE user_id = $1 AND event_type = 'data_access'",
                             1, params);

    PQfinish(conn);
    return n;
}

/* The ids of `list`'s objects, in order, joined with spaces. */
static void ids_of(const json_t *list, char *out, size_t size)
{
    size_t at = 0;

    out[0] = '\0';
    for (size_t i = 0; i < json_array_size(list) && at < size; i++)
        at += (size_t)snprintf(out + at, size - at, "%s%s", i > 0 ? " " : "",
                               tsupport_str(json_array_get(list, i), "id"));
}

/* ---- GET /api/data/export -------------------------------------------------------------- */

Test(http_export, pro_user_gets_only_its_own_data_and_is_audited)
{
    struct tsupport_user owner, other;
    struct tsupport_response res, profile, sessions;
    char want[512], got[512];
    json_t *list;

    pro_user("owner@example.com", &owner);
    pro_user("other@example.com", &other);
    cr_expect_eq(data_access_rows(owner.id), 0);

    get("/api/data/export", owner.access, &res);
    cr_expect(json_is_true(tsupport_get(res.json, "success")), "%s", res.body);
    cr_expect(tsupport_is_rfc3339_utc(tsupport_str(res.json, "exportedAt")), "%s", res.body);

    /* The profile is GET /api/profile's user. */
    get("/api/profile", owner.access, &profile);
    cr_expect(json_equal(tsupport_get(res.json, "profile"), tsupport_get(profile.json, "user")),
              "export %s\nprofile %s", res.body, profile.body);
    tsupport_response_cleanup(&profile);

    /* Every subscription, newest first: Pro active, then the Free one it replaced. */
    list = tsupport_get(res.json, "subscriptions");
    cr_assert_eq(json_array_size(list), 2, "%s", res.body);
    cr_expect_str_eq(tsupport_str(json_array_get(list, 0), "plan"), "Pro");
    cr_expect_str_eq(tsupport_str(json_array_get(list, 0), "status"), "active");
    cr_expect_str_eq(tsupport_str(json_array_get(list, 1), "plan"), "Free");
    cr_expect_str_eq(tsupport_str(json_array_get(list, 1), "status"), "cancelled");
    cr_expect_str_eq(tsupport_str(json_array_get(list, 0), "id"),
                     tsupport_str(res.json, "profile.subscription.id"));

    /* The live sessions, as GET /api/sessions lists them, this one marked current. */
    get("/api/sessions", owner.access, &sessions);
    ids_of(tsupport_get(sessions.json, "sessions"), want, sizeof(want));
    ids_of(tsupport_get(res.json, "sessions"), got, sizeof(got));
    cr_expect_str_eq(got, want);
    cr_expect_eq(json_array_size(tsupport_get(res.json, "sessions")), 2, "%s", res.body);
    for (size_t i = 0; i < json_array_size(tsupport_get(res.json, "sessions")); i++) {
        json_t *session = json_array_get(tsupport_get(res.json, "sessions"), i);

        cr_expect_eq(json_is_true(json_object_get(session, "current")),
                     strcmp(tsupport_str(session, "id"), owner.session_id) == 0);
        cr_expect_str_eq(
            tsupport_str(session, "expiresAt"),
            tsupport_str(json_array_get(tsupport_get(sessions.json, "sessions"), i), "expiresAt"));
    }
    tsupport_response_cleanup(&sessions);

    /* Own audit events only, newest first: two logins, then the registration. */
    list = tsupport_get(res.json, "auditEvents");
    cr_assert_eq(json_array_size(list), 3, "%s", res.body);
    for (size_t i = 0; i < json_array_size(list); i++) {
        cr_expect_str_eq(tsupport_str(json_array_get(list, i), "userId"), owner.id);
        cr_expect(json_is_object(tsupport_get(json_array_get(list, i), "details")));
    }
    cr_expect_str_eq(tsupport_str(json_array_get(list, 0), "eventType"), "login");
    cr_expect_str_eq(tsupport_str(json_array_get(list, 2), "eventType"), "register");
    cr_expect_null(strstr(res.body, other.id), "another user's id leaked: %s", res.body);
    cr_expect_null(strstr(res.body, "other@example.com"), "another user's email leaked");
    tsupport_response_cleanup(&res);

    /* Audited, and the next export shows that. */
    cr_expect_eq(data_access_rows(owner.id), 1);
    cr_expect_eq(data_access_rows(other.id), 0);
    get("/api/data/export", owner.access, &res);
    cr_expect_str_eq(
        tsupport_str(json_array_get(tsupport_get(res.json, "auditEvents"), 0), "eventType"),
        "data_access");
    tsupport_response_cleanup(&res);
    cr_expect_eq(data_access_rows(owner.id), 2);

    /* Without a token nothing is read or written. */
    tsupport_json(server.port, "GET", "/api/data/export", NULL, NULL, &res);
    tsupport_expect_error(&res, 401, "Unauthorized");
    tsupport_response_cleanup(&res);
    cr_expect_eq(data_access_rows(owner.id), 2);
    export_stop();
}
