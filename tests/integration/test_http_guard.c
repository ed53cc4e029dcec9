/* SPDX-License-Identifier: MIT */
/*
 * The access decision after authentication, over real HTTP: permission, subscription,
 * features and quota in the contract's order, each denial audited, and no denial taking
 * quota. Also the quota status and the premium dashboard.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "test_support.h"

#define PASSWORD "correct horse battery"
#define AUDIT_WAIT_MS 3000
#define DASHBOARD "/api/features/premium-dashboard"
#define ADMIN_USERS "/api/admin/users"

static struct tsupport_server server;

static void guard_setup(void)
{
    tsupport_server_start(&server, NULL);
}

static void guard_teardown(void)
{
    tsupport_server_destroy(&server);
}

TestSuite(http_guard, .init = guard_setup, .fini = guard_teardown, .timeout = 120);

static void guard_stop(void)
{
    cr_expect_eq(tsupport_server_stop(&server), 0, "the server did not stop cleanly");
}

/* ---- Helpers --------------------------------------------------------------------------- */

/* Puts the user's active subscription on `plan`, ending at `ends_at` (SQL, may be NULL). */
static void plan_set(const char *email, const char *plan, const char *ends_at)
{
    const char *params[] = {email, plan, ends_at};

    tsupport_db_run(server.db.url,
                    "UPDATE user_subscriptions SET plan_id = (SELECT id FROM subscription_plans"
                    "                                          WHERE name = $2),"
                    "       starts_at = least(now(), $3::timestamptz) - interval '30 days',"
                    "       ends_at = $3::timestamptz"
                    " WHERE status = 'active'"
                    "   AND user_id = (SELECT id FROM user_accounts WHERE email = lower($1))",
                    3, params);
}

/* Sets the month's count of the user: `used` of the plan's quota already spent. */
static void quota_used_set(const char *email, long used)
{
    char text[32];
    const char *params[] = {email, text};

    snprintf(text, sizeof(text), "%ld", used);
    tsupport_db_run(server.db.url,
                    "INSERT INTO quota_usage (user_id, period_start, used)"
                    " SELECT id, date_trunc('month', now() AT TIME ZONE 'UTC')::date, $2::bigint"
                    "   FROM user_accounts WHERE email = lower($1)"
                    " ON CONFLICT (user_id, period_start) DO UPDATE SET used = EXCLUDED.used",
                    2, params);
}

static void plan_limit_set(const char *plan, long limit)
{
    char text[32];
    const char *params[] = {plan, text};

    snprintf(text, sizeof(text), "%ld", limit);
    tsupport_db_run(server.db.url,
                    "UPDATE subscription_plans SET max_api_requests_per_month = $2::bigint"
                    " WHERE name = $1",
                    2, params);
}

/* used + leased of the user's row this month: what the quota has handed out. */
static long quota_taken(const char *email)
{
    PGconn *conn = tsupport_connect(server.db.url);
    const char *params[] = {email};
    long taken =
        tsupport_scalar(conn,
                        "SELECT coalesce(sum(q.used + q.leased), 0) FROM quota_usage q"
                        "  JOIN user_accounts u ON u.id = q.user_id WHERE u.email = lower($1)",
                        1, params);

    PQfinish(conn);
    return taken;
}

/* Waits for `count` permission_denied rows of the user with `reason` on the route pattern
 * `route`; returns how many. */
static long denials_wait(const char *email, const char *reason, const char *route, long count)
{
    PGconn *conn = tsupport_connect(server.db.url);
    const char *params[] = {email, reason, route};
    long long until = tsupport_now_ms() + AUDIT_WAIT_MS;
    long found = 0;

    do {
        found = tsupport_scalar(conn,
                                "SELECT count(*) FROM audit_logs a JOIN user_accounts u"
                                "    ON u.id = a.user_id"
                                " WHERE u.email = lower($1) AND a.event_type = 'permission_denied'"
                                "   AND a.status = 'failure' AND a.details->>'reason' = $2"
                                "   AND a.details->>'route' = $3",
                                3, params);
        if (found >= count)
            break;
        usleep(50 * 1000);
    } while (tsupport_now_ms() < until);
    PQfinish(conn);
    return found;
}

static void get(const char *path, const char *token, struct tsupport_response *res)
{
    tsupport_json(server.port, "GET", path, token, NULL, res);
}

/* GET `path` until it answers `status` (a change made in the database reaches the front end
 * through its announcement, within moments), or 3 s passed; *res holds the last answer. */
static void get_until(const char *path, const char *token, long status,
                      struct tsupport_response *res)
{
    long long until = tsupport_now_ms() + 3000;

    for (;;) {
        get(path, token, res);
        if (res->status == status || tsupport_now_ms() >= until)
            return;
        tsupport_response_cleanup(res);
        usleep(20 * 1000);
    }
}

/* As get_until, for a feature denial that recommends `plan`: a change of the catalogue
 * reaches the plan advice by its own announcement, a moment after the user's. */
static void get_until_recommended(const char *path, const char *token, const char *plan,
                                  struct tsupport_response *res)
{
    long long until = tsupport_now_ms() + 3000;

    for (;;) {
        const char *recommended;

        get(path, token, res);
        recommended = tsupport_str(res->json, "recommendedPlan");
        if ((recommended != NULL && strcmp(recommended, plan) == 0) || tsupport_now_ms() >= until)
            return;
        tsupport_response_cleanup(res);
        usleep(20 * 1000);
    }
}

static bool features_have(const json_t *features, const char *name)
{
    size_t i;
    json_t *item;

    json_array_foreach(features, i, item)
    {
        if (json_is_string(item) && strcmp(json_string_value(item), name) == 0)
            return true;
    }
    return false;
}

/* The value of the metric line starting with `prefix`, or -1. */
static long metric_value(const char *text, const char *prefix)
{
    const char *line = strstr(text, prefix);

    return line != NULL ? strtol(line + strlen(prefix), NULL, 10) : -1;
}

static long header_long(const struct tsupport_response *res, const char *name)
{
    char value[64];

    cr_assert_not_null(tsupport_header(res, name, value, sizeof(value)), "no %s header", name);
    return strtol(value, NULL, 10);
}

/* ---- The decision order ------------------------------------------------------------------ */

/* What a user is set up to fail, one or two at a time. */
enum failure {
    FAIL_PERMISSION = 1 << 0,   /* a role without the route's permission */
    FAIL_SUBSCRIPTION = 1 << 1, /* the subscription has ended */
    FAIL_FEATURE = 1 << 2,      /* the plan lacks the feature */
    FAIL_QUOTA = 1 << 3,        /* the month's quota is spent */
};

/* A route that checks every step: the permission of the admin routes and the dashboard's
 * subscription, feature and quota. No contract route has all four, so each case picks the
 * route whose guard contains its failures. */
static const struct {
    unsigned failures;
    const char *path;
    long status;
    const char *error;
    const char *reason;
} decision_cases[] = {
    {FAIL_PERMISSION, ADMIN_USERS, 403, "Forbidden", "permission"},
    {FAIL_SUBSCRIPTION, DASHBOARD, 402, "SubscriptionInactive", "subscription"},
    {FAIL_FEATURE, DASHBOARD, 403, "FeatureNotAvailable", "feature"},
    {FAIL_QUOTA, DASHBOARD, 429, "RateLimitExceeded", "quota"},
    {FAIL_SUBSCRIPTION | FAIL_FEATURE, DASHBOARD, 402, "SubscriptionInactive", "subscription"},
    {FAIL_SUBSCRIPTION | FAIL_QUOTA, DASHBOARD, 402, "SubscriptionInactive", "subscription"},
    {FAIL_FEATURE | FAIL_QUOTA, DASHBOARD, 403, "FeatureNotAvailable", "feature"},
    {FAIL_PERMISSION | FAIL_SUBSCRIPTION, ADMIN_USERS, 403, "Forbidden", "permission"},
    {FAIL_PERMISSION | FAIL_FEATURE, ADMIN_USERS, 403, "Forbidden", "permission"},
    {FAIL_PERMISSION | FAIL_QUOTA, ADMIN_USERS, 403, "Forbidden", "permission"},
};

/* Sets up one user to fail exactly `failures`; a fresh Pro subscriber otherwise. */
static void user_failing(int index, unsigned failures, struct tsupport_user *user)
{
    char email[64];

    snprintf(email, sizeof(email), "order%d@example.com", index);
    tsupport_user_new(server.port, email, PASSWORD, user);
    plan_set(email, (failures & FAIL_FEATURE) ? "Free" : "Pro",
             (failures & FAIL_SUBSCRIPTION) ? "2001-01-01T00:00:00Z" : NULL);
    if (failures & FAIL_QUOTA)
        quota_used_set(email, (failures & FAIL_FEATURE) ? 1000 : 10000);
    /* Without the permission failure the user may manage users; the route still checks. */
    if (!(failures & FAIL_PERMISSION))
        tsupport_user_role(server.db.url, email, "admin");
}

Test(http_guard, first_failing_step_answers_and_takes_no_quota)
{
    int ncases = (int)(sizeof(decision_cases) / sizeof(decision_cases[0]));

    for (int i = 0; i < ncases; i++) {
        struct tsupport_user user;
        struct tsupport_response res;
        long before;

        user_failing(i, decision_cases[i].failures, &user);
        before = quota_taken(user.email);

        get(decision_cases[i].path, NULL, &res);
        tsupport_expect_error(&res, 401, "Unauthorized");
        tsupport_response_cleanup(&res);

        get(decision_cases[i].path, user.access, &res);
        tsupport_expect_error(&res, decision_cases[i].status, decision_cases[i].error);
        tsupport_response_cleanup(&res);

        cr_expect_eq(quota_taken(user.email), before, "case %d: a denial took quota", i);
        cr_expect_eq(denials_wait(user.email, decision_cases[i].reason, decision_cases[i].path, 1),
                     1, "case %d: no permission_denied row with reason %s", i,
                     decision_cases[i].reason);
    }
    guard_stop();
}

Test(http_guard, denials_carry_the_contract_members)
{
    struct tsupport_user user;
    struct tsupport_response res;
    char value[64];

    tsupport_user_new(server.port, "members@example.com", PASSWORD, &user);

    get(ADMIN_USERS, user.access, &res);
    tsupport_expect_error(&res, 403, "Forbidden");
    cr_expect_str_eq(tsupport_str(res.json, "requiredPermission"), "manage_users");
    tsupport_response_cleanup(&res);

    /* The trail names the route's pattern, not the path that was called. */
    tsupport_json(server.port, "DELETE", "/api/admin/users/00000000-0000-4000-8000-000000000000",
                  user.access, NULL, &res);
    tsupport_expect_error(&res, 403, "Forbidden");
    tsupport_response_cleanup(&res);
    cr_expect_eq(denials_wait(user.email, "permission", "/api/admin/users/:userId", 1), 1);

    get(DASHBOARD, user.access, &res);
    tsupport_expect_error(&res, 403, "FeatureNotAvailable");
    cr_expect_eq(json_array_size(tsupport_get(res.json, "requiredFeatures")), 1);
    cr_expect_str_eq(
        json_string_value(json_array_get(tsupport_get(res.json, "requiredFeatures"), 0)),
        "premium_dashboard");
    cr_expect_str_eq(tsupport_str(res.json, "currentPlan"), "Free");
    cr_expect_str_eq(tsupport_str(res.json, "recommendedPlan"), "Pro");
    cr_expect_not_null(tsupport_str(res.json, "upgradeUrl"));
    cr_expect_null(tsupport_header(&res, "X-RateLimit-Limit", value, sizeof(value)),
                   "a denial before the quota step carries no quota headers");
    tsupport_response_cleanup(&res);

    get("/api/data/export", user.access, &res);
    tsupport_expect_error(&res, 403, "FeatureNotAvailable");
    cr_expect_str_eq(
        json_string_value(json_array_get(tsupport_get(res.json, "requiredFeatures"), 0)),
        "data_export");
    cr_expect_str_eq(tsupport_str(res.json, "recommendedPlan"), "Pro");
    tsupport_response_cleanup(&res);

    plan_set(user.email, "Pro", "2001-01-01T00:00:00Z");
    get_until(DASHBOARD, user.access, 402, &res);
    tsupport_expect_error(&res, 402, "SubscriptionInactive");
    cr_expect_str_eq(tsupport_str(res.json, "currentPlan"), "Pro");
    cr_expect_str_eq(tsupport_str(res.json, "status"), "expired", "an ended row reads expired");
    cr_expect_not_null(tsupport_str(res.json, "upgradeUrl"));
    tsupport_response_cleanup(&res);

    /* Removing the feature from Pro makes Enterprise the cheapest plan that has it. */
    plan_set(user.email, "Pro", NULL);
    tsupport_db_run(server.db.url,
                    "DELETE FROM plan_features WHERE plan_id = (SELECT id FROM subscription_plans"
                    " WHERE name = 'Pro') AND feature_id = (SELECT id FROM features"
                    " WHERE name = 'premium_dashboard')",
                    0, NULL);
    get_until_recommended(DASHBOARD, user.access, "Enterprise", &res);
    tsupport_expect_error(&res, 403, "FeatureNotAvailable");
    cr_expect_str_eq(tsupport_str(res.json, "currentPlan"), "Pro");
    cr_expect_str_eq(tsupport_str(res.json, "recommendedPlan"), "Enterprise");
    tsupport_response_cleanup(&res);

    /* Operators see the denials counted by reason. */
    get("/metrics", NULL, &res);
    /* At least the three feature denials above; waiting for a change may have seen more. */
    cr_expect_geq(metric_value(res.body, "manas360_denials_total{reason=\"feature\"} "), 3);
    cr_expect_not_null(strstr(res.body, "manas360_denials_total{reason=\"permission\"} 2\n"));
    tsupport_response_cleanup(&res);
    guard_stop();
}

Test(http_guard, metered_answers_count_down_and_refuse_at_the_limit)
{
    struct tsupport_user user;
    struct tsupport_response res;
    char value[64];
    long reset;

    tsupport_user_new(server.port, "meter@example.com", PASSWORD, &user);
    plan_set(user.email, "Pro", NULL);
    quota_used_set(user.email, 9997);

    for (long remaining = 2; remaining >= 0; remaining--) {
        get(DASHBOARD, user.access, &res);
        cr_assert_eq(res.status, 200, "%s", res.body);
        cr_expect_eq(header_long(&res, "X-RateLimit-Limit"), 10000);
        cr_expect_eq(header_long(&res, "X-RateLimit-Remaining"), remaining);
        cr_expect_str_eq(tsupport_str(res.json, "dashboard.plan"), "Pro");
        cr_expect_eq(json_integer_value(tsupport_get(res.json, "dashboard.usage.remaining")),
                     remaining);
        cr_expect_eq(json_integer_value(tsupport_get(res.json, "dashboard.usage.used")),
                     10000 - remaining);
        cr_expect_eq(json_integer_value(tsupport_get(res.json, "dashboard.usage.limit")), 10000);
        cr_expect(tsupport_is_rfc3339_utc(tsupport_str(res.json, "dashboard.usage.resetAt")));
        cr_expect_str_eq(tsupport_str(res.json, "dashboard.subscription.status"), "active");
        cr_expect(json_is_null(tsupport_get(res.json, "dashboard.subscription.endsAt")), "%s",
                  res.body);
        cr_expect(features_have(tsupport_get(res.json, "dashboard.features"), "premium_dashboard"),
                  "%s", res.body);
        tsupport_response_cleanup(&res);
    }

    get(DASHBOARD, user.access, &res);
    tsupport_expect_error(&res, 429, "RateLimitExceeded");
    cr_expect_eq(json_integer_value(tsupport_get(res.json, "limit")), 10000);
    cr_expect(tsupport_is_rfc3339_utc(tsupport_str(res.json, "resetAt")));
    cr_expect_eq(header_long(&res, "X-RateLimit-Remaining"), 0);
    reset = header_long(&res, "X-RateLimit-Reset");
    cr_expect_gt(reset, (long)time(NULL));
    cr_expect_leq(reset, (long)time(NULL) + 31L * 86400);
    cr_expect_gt(header_long(&res, "Retry-After"), 0);
    cr_expect_not_null(tsupport_header(&res, "Retry-After", value, sizeof(value)));
    tsupport_response_cleanup(&res);

    get("/api/api/status", user.access, &res);
    cr_assert_eq(res.status, 200, "%s", res.body);
    cr_expect_str_eq(tsupport_str(res.json, "plan"), "Pro");
    cr_expect_eq(json_integer_value(tsupport_get(res.json, "limit")), 10000);
    cr_expect_eq(json_integer_value(tsupport_get(res.json, "used")), 10000);
    cr_expect_eq(json_integer_value(tsupport_get(res.json, "remaining")), 0);
    cr_expect(tsupport_is_rfc3339_utc(tsupport_str(res.json, "resetAt")));
    cr_expect_null(tsupport_header(&res, "X-RateLimit-Limit", value, sizeof(value)),
                   "the status itself is not metered");
    tsupport_response_cleanup(&res);
    guard_stop();
}

Test(http_guard, status_without_a_subscription)
{
    struct tsupport_user user;
    struct tsupport_response res;

    tsupport_user_new(server.port, "nosub@example.com", PASSWORD, &user);
    tsupport_db_run(server.db.url,
                    "UPDATE user_subscriptions SET status = 'cancelled', cancelled_at = now()"
                    " WHERE user_id = (SELECT id FROM user_accounts"
                    "                   WHERE email = 'nosub@example.com')",
                    0, NULL);
    usleep(300 * 1000);
    get("/api/api/status", user.access, &res);
    cr_assert_eq(res.status, 200, "%s", res.body);
    cr_expect(json_is_null(tsupport_get(res.json, "plan")));
    cr_expect_eq(json_integer_value(tsupport_get(res.json, "limit")), 0);
    cr_expect_eq(json_integer_value(tsupport_get(res.json, "remaining")), 0);
    tsupport_response_cleanup(&res);

    get(DASHBOARD, user.access, &res);
    tsupport_expect_error(&res, 402, "SubscriptionInactive");
    cr_expect_str_eq(tsupport_str(res.json, "status"), "cancelled");
    tsupport_response_cleanup(&res);
    guard_stop();
}

/* ---- Quota exactness ----------------------------------------------------------------------- */

#define BURST 60
#define BURST_REMAINING 25

struct burst {
    int port;
    const char *token;
    long status;
};

static void *burst_one(void *arg)
{
    struct burst *b = arg;
    struct tsupport_response res;

    tsupport_json(b->port, "GET", DASHBOARD, b->token, NULL, &res);
    b->status = res.status;
    tsupport_response_cleanup(&res);
    return NULL;
}

/* Fires BURST requests at once, spread over `ports`; returns how many got 200. */
static int burst_fire(const int *ports, int nports, const char *token)
{
    pthread_t threads[BURST];
    struct burst bursts[BURST];
    int ok = 0;

    for (int i = 0; i < BURST; i++) {
        bursts[i] = (struct burst){ports[i % nports], token, 0};
        pthread_create(&threads[i], NULL, burst_one, &bursts[i]);
    }
    for (int i = 0; i < BURST; i++) {
        pthread_join(threads[i], NULL);
        cr_expect(bursts[i].status == 200 || bursts[i].status == 429, "status %ld",
                  bursts[i].status);
        ok += bursts[i].status == 200;
    }
    return ok;
}

Test(http_guard, concurrent_requests_never_exceed_the_quota)
{
    struct tsupport_user user;
    int ports[] = {server.port};

    tsupport_user_new(server.port, "burst@example.com", PASSWORD, &user);
    plan_set(user.email, "Pro", NULL);
    quota_used_set(user.email, 10000 - BURST_REMAINING);

    cr_expect_eq(burst_fire(ports, 1, user.access), BURST_REMAINING);
    guard_stop();
    cr_expect_eq(quota_taken(user.email), 10000, "the month's row does not add up");
}

Test(http_guard, two_processes_share_one_quota_and_it_survives_a_restart)
{
    struct tsupport_server second = {.pid = -1};
    struct tsupport_user user;
    struct tsupport_response res;
    char shared_url[600];
    const char *extra[] = {shared_url, NULL};
    PGconn *conn;
    int ports[2];

    snprintf(shared_url, sizeof(shared_url), "DATABASE_URL=%s", server.db.url);
    tsupport_server_start(&second, extra);
    ports[0] = server.port;
    ports[1] = second.port;

    tsupport_user_new(server.port, "shared@example.com", PASSWORD, &user);
    plan_set(user.email, "Pro", NULL);
    quota_used_set(user.email, 10000 - BURST_REMAINING);
    cr_expect_eq(burst_fire(ports, 2, user.access), BURST_REMAINING);

    /* Room again, used partly, then both processes stop: every unit is accounted for. */
    plan_limit_set("Pro", 10010);
    get_until(DASHBOARD, user.access, 200, &res);
    cr_expect_eq(res.status, 200, "%s", res.body);
    tsupport_response_cleanup(&res);
    for (int i = 0; i < 3; i++) {
        get(DASHBOARD, user.access, &res);
        cr_expect_eq(res.status, 200, "%s", res.body);
        tsupport_response_cleanup(&res);
    }
    cr_expect_eq(tsupport_server_stop(&second), 0);
    tsupport_server_destroy(&second);
    guard_stop();

    conn = tsupport_connect(server.db.url);
    cr_expect_eq(tsupport_scalar(conn,
                                 "SELECT used FROM quota_usage q JOIN user_accounts u"
                                 "  ON u.id = q.user_id WHERE u.email = 'shared@example.com'",
                                 0, NULL),
                 10004);
    cr_expect_eq(tsupport_scalar(conn, "SELECT coalesce(sum(leased), 0) FROM quota_usage", 0, NULL),
                 0, "a clean stop returns every leased unit");
    PQfinish(conn);

    tsupport_server_start(&server, NULL);
    get("/api/api/status", user.access, &res);
    cr_assert_eq(res.status, 200, "%s", res.body);
    cr_expect_eq(json_integer_value(tsupport_get(res.json, "used")), 10004);
    cr_expect_eq(json_integer_value(tsupport_get(res.json, "remaining")), 6);
    tsupport_response_cleanup(&res);
    guard_stop();
}

/* The answers made in the front end check their body after the access decision, as every
 * route does: 415, InvalidJson, unknown fields; a refused body costs no quota. */
Test(http_guard, local_answers_check_the_body_after_the_decision)
{
    static const char *const text_type[] = {"Content-Type: text/plain", NULL};
    struct tsupport_user user;
    struct tsupport_response res;
    struct tsupport_request req = {.method = "GET", .path = DASHBOARD};

    tsupport_user_new(server.port, "bodies@example.com", PASSWORD, &user);
    plan_set(user.email, "Pro", NULL);
    quota_used_set(user.email, 9990);
    get_until(DASHBOARD, user.access, 200, &res);
    tsupport_response_cleanup(&res);

    req.token = user.access;
    req.body = "plain words";
    req.headers = text_type;
    tsupport_send(server.port, &req, &res);
    tsupport_expect_error(&res, 415, "UnsupportedMediaType");
    tsupport_response_cleanup(&res);

    req.headers = NULL;
    req.body = "{\"broken\": ";
    tsupport_send(server.port, &req, &res);
    tsupport_expect_error(&res, 400, "InvalidJson");
    tsupport_response_cleanup(&res);

    req.body = "{\"months\": 3}";
    req.path = "/api/api/status";
    tsupport_send(server.port, &req, &res);
    tsupport_expect_error(&res, 400, "ValidationError");
    cr_expect_str_eq(tsupport_str(res.json, "fields.months"), "unknown field");
    tsupport_response_cleanup(&res);

    /* No token still answers 401 first, whatever the body. */
    req.token = NULL;
    tsupport_send(server.port, &req, &res);
    tsupport_expect_error(&res, 401, "Unauthorized");
    tsupport_response_cleanup(&res);

    /* Only the first GET took a unit: the refused bodies gave theirs back. */
    get(DASHBOARD, user.access, &res);
    cr_expect_eq(res.status, 200, "%s", res.body);
    cr_expect_eq(header_long(&res, "X-RateLimit-Remaining"), 8);
    tsupport_response_cleanup(&res);
    guard_stop();
}

/* A plan with a long list of features still decides and renders: hundreds of names of the
 * longest length. */
Test(http_guard, a_plan_with_many_features_still_answers)
{
    struct tsupport_user user;
    struct tsupport_response res;

    tsupport_db_run(
        server.db.url,
        "WITH f AS (INSERT INTO features (name, category)"
        "           SELECT 'feature_' || lpad(n::text, 4, '0') || '_' || repeat('x', 51),"
        "                  'bulk'"
        "             FROM generate_series(1, 300) AS n RETURNING id)"
        " INSERT INTO plan_features (plan_id, feature_id)"
        " SELECT p.id, f.id FROM f, subscription_plans p WHERE p.name = 'Enterprise'",
        0, NULL);
    tsupport_user_new(server.port, "large@example.com", PASSWORD, &user);
    plan_set(user.email, "Enterprise", NULL);
    get_until(DASHBOARD, user.access, 200, &res);
    cr_assert_eq(res.status, 200, "%s", res.body);
    cr_expect_eq(json_array_size(tsupport_get(res.json, "dashboard.features")), 306);
    cr_expect(features_have(tsupport_get(res.json, "dashboard.features"),
                            "feature_0300_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"),
              "%s", res.body);
    tsupport_response_cleanup(&res);

    get("/api/api/status", user.access, &res);
    cr_expect_eq(res.status, 200, "%s", res.body);
    tsupport_response_cleanup(&res);
    guard_stop();
}
