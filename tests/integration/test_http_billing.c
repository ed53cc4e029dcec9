/* SPDX-License-Identifier: MIT */
/*
 * The billing pool over real HTTP: the public plan catalogue and the caller's current
 * subscription, checked against the seed data and against GET /api/profile.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "test_support.h"

#define PASSWORD "correct horse battery"
#define PROFILE_CATCH_UP_MS 2000 /* the profile cache drops a changed account within moments */
#define SEED_PLANS 3

static struct tsupport_server server;

static void billing_setup(void)
{
    tsupport_server_start(&server, NULL);
}

static void billing_teardown(void)
{
    tsupport_server_destroy(&server);
}

TestSuite(http_billing, .init = billing_setup, .fini = billing_teardown);

/* Every test ends here: SIGTERM, and a clean exit 0 (no leak, no sanitizer report). */
static void billing_stop(void)
{
    cr_expect_eq(tsupport_server_stop(&server), 0, "the server did not stop cleanly");
}

/* ---- Helpers --------------------------------------------------------------------------- */

/* One plan as the contract's seed table states it; features sorted by name. */
struct plan_expect {
    const char *name;
    long long tier;
    long long price_paise;
    long long period_days;
    long long requests;
    long long trial_days;
    bool featured;
    const char *features[8]; /* NULL-terminated */
};

static const struct plan_expect seed_free = {"Free", 1, 0,     30,
                                             1000,   0, false, {"basic_dashboard", NULL}};
static const struct plan_expect seed_pro = {"Pro",
                                            10,
                                            99900,
                                            30,
                                            10000,
                                            14,
                                            true,
                                            {"advanced_reporting", "api_access", "basic_dashboard",
                                             "data_export", "premium_dashboard", NULL}};
static const struct plan_expect seed_enterprise = {"Enterprise",
                                                   100,
                                                   499900,
                                                   30,
                                                   1000000,
                                                   0,
                                                   false,
                                                   {"advanced_reporting", "api_access",
                                                    "basic_dashboard", "data_export",
                                                    "premium_dashboard", "priority_support", NULL}};

static void get(const char *path, const char *token, struct tsupport_response *res)
{
    tsupport_json(server.port, "GET", path, token, NULL, res);
}

/* `value` is a JSON integer (not a real, not a string) equal to `want`. */
static void expect_int(const json_t *plan, const char *key, long long want)
{
    json_t *value = json_object_get(plan, key);

    cr_expect(json_is_integer(value), "%s.%s is not a JSON integer",
              json_string_value(json_object_get(plan, "name")), key);
    cr_expect_eq(json_integer_value(value), want, "%s.%s: %lld, want %lld",
                 json_string_value(json_object_get(plan, "name")), key,
                 (long long)json_integer_value(value), want);
}

/* The plan object has exactly the contract's members, with the seed's values. */
static void expect_plan(const json_t *plan, const struct plan_expect *want)
{
    json_t *features = json_object_get(plan, "features");
    const char *description = json_string_value(json_object_get(plan, "description"));
    size_t nfeatures = 0;

    cr_assert(json_is_object(plan), "plan %s is not an object", want->name);
    cr_expect_eq(json_object_size(plan), 9, "%s: %zu members", want->name, json_object_size(plan));
    cr_expect_str_eq(json_string_value(json_object_get(plan, "name")), want->name);
    cr_expect(description != NULL && description[0] != '\0', "%s: no description", want->name);
    expect_int(plan, "tier", want->tier);
    expect_int(plan, "priceMonthlyPaise", want->price_paise);
    expect_int(plan, "billingPeriodDays", want->period_days);
    expect_int(plan, "maxApiRequestsPerMonth", want->requests);
    expect_int(plan, "trialPeriodDays", want->trial_days);
    cr_expect(json_is_boolean(json_object_get(plan, "isFeatured")), "%s.isFeatured", want->name);
    cr_expect_eq(json_is_true(json_object_get(plan, "isFeatured")), want->featured, "%s.isFeatured",
                 want->name);

    /* The same names, in the same (sorted) order. */
    cr_assert(json_is_array(features), "%s.features is not an array", want->name);
    while (want->features[nfeatures] != NULL)
        nfeatures++;
    cr_expect_eq(json_array_size(features), nfeatures, "%s: %zu features, want %zu", want->name,
                 json_array_size(features), nfeatures);
    for (size_t i = 0; i < nfeatures && i < json_array_size(features); i++)
        cr_expect_str_eq(json_string_value(json_array_get(features, i)), want->features[i],
                         "%s.features[%zu]", want->name, i);
}

/* GET /api/public/features answers 200 with exactly `want`, in this order. */
static void expect_catalogue(const struct plan_expect *const *want, size_t nwant)
{
    struct tsupport_response res;
    json_t *plans;

    get("/api/public/features", NULL, &res);
    cr_assert_eq(res.status, 200, "%s", res.body);
    cr_expect(json_is_true(tsupport_get(res.json, "success")), "%s", res.body);
    plans = tsupport_get(res.json, "plans");
    cr_assert(json_is_array(plans), "%s", res.body);
    cr_assert_eq(json_array_size(plans), nwant, "%s", res.body);
    for (size_t i = 0; i < nwant; i++)
        expect_plan(json_array_get(plans, i), want[i]);
    tsupport_response_cleanup(&res);
}

/* The `subscription` of GET /api/subscriptions/current, copied (caller decrefs). */
static json_t *current_subscription(const char *token)
{
    struct tsupport_response res;
    json_t *subscription;

    get("/api/subscriptions/current", token, &res);
    cr_assert_eq(res.status, 200, "%s", res.body);
    cr_expect(json_is_true(tsupport_get(res.json, "success")), "%s", res.body);
    subscription = json_object_get(res.json, "subscription");
    cr_assert_not_null(subscription, "no subscription member: %s", res.body);
    json_incref(subscription);
    tsupport_response_cleanup(&res);
    return subscription;
}

/* Polls GET /api/profile until its subscription equals `want`; expects that to happen. */
static void expect_profile_agrees(const char *token, const json_t *want)
{
    long long started = tsupport_now_ms();
    bool equal = false;
    char *seen = NULL;

    do {
        struct tsupport_response res;

        get("/api/profile", token, &res);
        cr_assert_eq(res.status, 200, "%s", res.body);
        equal = json_equal(tsupport_get(res.json, "user.subscription"), (json_t *)want);
        free(seen);
        seen = strdup(res.body);
        tsupport_response_cleanup(&res);
        if (!equal)
            usleep(50000);
    } while (!equal && tsupport_now_ms() - started <= PROFILE_CATCH_UP_MS);

    {
        char *text = json_dumps(want, JSON_COMPACT | JSON_ENCODE_ANY);

        cr_expect(equal, "profile's subscription differs:\n%s\nwant %s", seen, text);
        free(text);
    }
    free(seen);
}

/* ---- GET /api/public/features ---------------------------------------------------------- */

Test(http_billing, public_features_match_the_seed)
{
    static const struct plan_expect *const want[] = {&seed_free, &seed_pro, &seed_enterprise};
    struct tsupport_user user;

    expect_catalogue(want, SEED_PLANS);

    /* Public: a token changes nothing. */
    tsupport_user_new(server.port, "catalogue@example.com", PASSWORD, &user);
    {
        struct tsupport_response anonymous;
        struct tsupport_response signed_in;

        get("/api/public/features", NULL, &anonymous);
        get("/api/public/features", user.access, &signed_in);
        cr_expect_eq(signed_in.status, 200, "%s", signed_in.body);
        cr_expect(json_equal(anonymous.json, signed_in.json), "%s\n%s", anonymous.body,
                  signed_in.body);
        tsupport_response_cleanup(&anonymous);
        tsupport_response_cleanup(&signed_in);
    }
    billing_stop();
}

Test(http_billing, public_features_hide_inactive_plans)
{
    static const struct plan_expect *const want[] = {&seed_free, &seed_enterprise};
    static const char *const pro[] = {"Pro"};

    tsupport_db_run(server.db.url,
                    "UPDATE subscription_plans SET is_active = false WHERE name = $1", 1, pro);
    expect_catalogue(want, 2);
    billing_stop();
}

Test(http_billing, public_features_are_ordered_by_tier)
{
    /* Created after the seed, with tiers that fall between and before the seed's, so the
     * order of creation and of names both differ from the order of tiers. */
    static const struct plan_expect starter = {"Starter", 5, 19900, 30, 5000, 7, false, {NULL}};
    static const struct plan_expect team = {
        "Team", 50, 299900, 90, 50000, 0, false, {"api_access", "data_export", NULL}};
    static const struct plan_expect *const want[] = {&seed_free, &starter, &seed_pro, &team,
                                                     &seed_enterprise};

    tsupport_db_run(server.db.url,
                    "INSERT INTO subscription_plans (name, description, tier, price_monthly_paise,"
                    " billing_period_days, max_api_requests_per_month, trial_period_days)"
                    " VALUES ('Team', 'For teams', 50, 299900, 90, 50000, 0),"
                    "        ('Starter', 'A small start', 5, 19900, 30, 5000, 7)",
                    0, NULL);
    tsupport_db_run(server.db.url,
                    "INSERT INTO plan_features (plan_id, feature_id)"
                    " SELECT p.id, f.id FROM subscription_plans p, features f"
                    "  WHERE p.name = 'Team' AND f.name IN ('data_export', 'api_access')",
                    0, NULL);
    expect_catalogue(want, sizeof(want) / sizeof(want[0]));
    billing_stop();
}

Test(http_billing, public_features_refuse_other_methods)
{
    static const char *const methods[] = {"POST", "PUT", "PATCH", "DELETE", NULL};

    for (int i = 0; methods[i] != NULL; i++) {
        struct tsupport_response res;
        char allow[64];

        tsupport_json(server.port, methods[i], "/api/public/features", NULL, "{}", &res);
        tsupport_expect_error(&res, 405, "MethodNotAllowed");
        cr_expect(tsupport_header(&res, "Allow", allow, sizeof(allow)) != NULL, "%s: no Allow:\n%s",
                  methods[i], res.headers);
        cr_expect_str_eq(allow, "GET", "%s: Allow: %s", methods[i], allow);
        tsupport_response_cleanup(&res);
    }
    billing_stop();
}

/* ---- GET /api/subscriptions/current ---------------------------------------------------- */

Test(http_billing, current_subscription_of_a_new_user_is_free)
{
    struct tsupport_user user;
    json_t *subscription;

    tsupport_user_new(server.port, "newcomer@example.com", PASSWORD, &user);
    subscription = current_subscription(user.access);

    cr_expect_eq(json_object_size(subscription), 7, "members: %zu", json_object_size(subscription));
    cr_expect(tsupport_is_uuid(tsupport_str(subscription, "id")));
    cr_expect_str_eq(tsupport_str(subscription, "plan"), "Free");
    cr_expect_str_eq(tsupport_str(subscription, "status"), "active");
    cr_expect(json_is_false(tsupport_get(subscription, "isTrial")));
    cr_expect(tsupport_is_rfc3339_utc(tsupport_str(subscription, "startsAt")), "startsAt: %s",
              tsupport_str(subscription, "startsAt"));
    cr_expect(json_is_null(tsupport_get(subscription, "endsAt")));
    cr_expect(json_is_boolean(tsupport_get(subscription, "autoRenew")));

    expect_profile_agrees(user.access, subscription);
    json_decref(subscription);
    billing_stop();
}

Test(http_billing, current_subscription_past_its_end_is_expired)
{
    struct tsupport_user user;
    json_t *subscription;
    const char *params[1];
    char ends_at[32] = "";

    tsupport_user_new(server.port, "lapsed@example.com", PASSWORD, &user);
    params[0] = user.id;

    /* A Pro subscription that ended ten days ago, still 'active' in its row: no sweep has
     * run, and the answer must not wait for one. */
    tsupport_db_run(server.db.url,
                    "UPDATE user_subscriptions SET status = 'cancelled', cancelled_at = now()"
                    " WHERE user_id = $1",
                    1, params);
    tsupport_db_run(server.db.url,
                    "INSERT INTO user_subscriptions (user_id, plan_id, status, is_trial, starts_at,"
                    " ends_at, auto_renew)"
                    " SELECT $1, id, 'active', false, now() - interval '40 days',"
                    "        now() - interval '10 days', false"
                    "   FROM subscription_plans WHERE name = 'Pro'",
                    1, params);
    {
        PGconn *conn = tsupport_connect(server.db.url);
        PGresult *row = tsupport_query(
            conn,
            "SELECT to_char(ends_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
            "  FROM user_subscriptions WHERE user_id = $1 AND status = 'active'",
            1, params);

        cr_assert_eq(PQntuples(row), 1, "%s", PQresultErrorMessage(row));
        snprintf(ends_at, sizeof(ends_at), "%s", PQgetvalue(row, 0, 0));
        PQclear(row);
        PQfinish(conn);
    }

    subscription = current_subscription(user.access);
    cr_expect_str_eq(tsupport_str(subscription, "plan"), "Pro");
    cr_expect_str_eq(tsupport_str(subscription, "status"), "expired");
    cr_expect(json_is_false(tsupport_get(subscription, "isTrial")));
    cr_expect(json_is_false(tsupport_get(subscription, "autoRenew")));
    cr_expect(tsupport_is_rfc3339_utc(tsupport_str(subscription, "startsAt")));
    cr_expect_str_eq(tsupport_str(subscription, "endsAt"), ends_at);

    expect_profile_agrees(user.access, subscription);
    json_decref(subscription);
    billing_stop();
}

Test(http_billing, current_subscription_is_null_without_one)
{
    struct tsupport_user user;
    json_t *subscription;
    const char *params[1];

    tsupport_user_new(server.port, "never@example.com", PASSWORD, &user);
    params[0] = user.id;
    tsupport_db_run(server.db.url, "DELETE FROM user_subscriptions WHERE user_id = $1", 1, params);

    subscription = current_subscription(user.access);
    cr_expect(json_is_null(subscription));
    expect_profile_agrees(user.access, subscription);
    json_decref(subscription);
    billing_stop();
}

Test(http_billing, current_subscription_needs_a_token)
{
    static const char *const tokens[] = {NULL, "not-a-jwt"}; /* none, and a malformed one */
    char challenge[64];

    for (size_t i = 0; i < sizeof(tokens) / sizeof(tokens[0]); i++) {
        struct tsupport_response res;

        get("/api/subscriptions/current", tokens[i], &res);
        tsupport_expect_error(&res, 401, "Unauthorized");
        cr_expect(tsupport_header(&res, "WWW-Authenticate", challenge, sizeof(challenge)) != NULL &&
                      strncmp(challenge, "Bearer", 6) == 0,
                  "no Bearer challenge:\n%s", res.headers);
        tsupport_response_cleanup(&res);
    }

    {
        struct tsupport_response res;
        char allow[64];

        tsupport_json(server.port, "POST", "/api/subscriptions/current", NULL, "{}", &res);
        tsupport_expect_error(&res, 405, "MethodNotAllowed");
        cr_expect(tsupport_header(&res, "Allow", allow, sizeof(allow)) != NULL, "%s", res.headers);
        cr_expect_str_eq(allow, "GET");
        tsupport_response_cleanup(&res);
    }
    billing_stop();
}
