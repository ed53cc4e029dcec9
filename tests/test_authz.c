/* SPDX-License-Identifier: MIT */
/*
 * The authorization cache's decisions on a route that declares every step at once (a
 * permission, a subscription, two features): for each set of failing steps the first in the
 * contract's order refuses; only the missing features are named; the end of a subscription
 * is compared with the clock on every decision; the plan advice skips plans lacking any
 * feature and finds none when no plan has them all.
 */
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>

#include "manas360/authz.h"
#include "manas360/err.h"
#include "manas360/route.h"

#define USER_ID "00000000-0000-4000-8000-000000000001"
#define NOW 1800000000

static const struct route every_step = {
    .method = "GET",
    .pattern = "/everything",
    .guard = ROUTE_AUTHENTICATED,
    .permission = "view_reports",
    .features = {"advanced_reporting", "api_access"},
    .target = ROUTE_LOCAL,
    .flags = ROUTE_SUBSCRIBED | ROUTE_METERED,
};

enum failing {
    FAIL_PERMISSION = 1 << 0,
    FAIL_SUBSCRIPTION = 1 << 1,
    FAIL_FEATURE = 1 << 2,
};

/* An "authz.load" answer for a user whose failing steps are `failing`, with a subscription
 * ending at `ends_at` unless FAIL_SUBSCRIPTION ended it already. */
static json_t *loaded_ending(unsigned failing, int64_t ends_at)
{
    json_t *features = json_pack("[s]", "advanced_reporting");

    if (!(failing & FAIL_FEATURE))
        json_array_append_new(features, json_string("api_access"));
    return json_pack("{s:b, s:s, s:i, s:[ss], s:{s:s, s:s, s:I, s:i, s:o}}", "found", 1, "role",
                     "user", "level", 10, "permissions", "read_profile",
                     (failing & FAIL_PERMISSION) ? "update_profile" : "view_reports",
                     "subscription", "plan", "Pro", "status", "active", "endsAt",
                     (json_int_t)((failing & FAIL_SUBSCRIPTION) ? NOW - 1 : ends_at), "limit",
                     10000, "features", features);
}

static json_t *loaded_new(unsigned failing)
{
    return loaded_ending(failing, NOW + 3600);
}

static enum authz_step first_failing(unsigned failing)
{
    if (failing & FAIL_PERMISSION)
        return AUTHZ_DENIED_PERMISSION;
    if (failing & FAIL_SUBSCRIPTION)
        return AUTHZ_DENIED_SUBSCRIPTION;
    if (failing & FAIL_FEATURE)
        return AUTHZ_DENIED_FEATURE;
    return AUTHZ_ALLOWED;
}

Test(authz, the_first_failing_step_refuses_for_every_set_of_failures)
{
    for (unsigned failing = 0; failing < 8; failing++) {
        json_t *loaded = loaded_new(failing);
        struct authz_decision d;

        cr_assert_eq(authz_decide_loaded(loaded, USER_ID, &every_step, NOW, &d), 0);
        cr_expect_eq(d.step, first_failing(failing), "failing %u: step %d", failing, d.step);
        cr_expect_eq(d.subscribed, !(failing & FAIL_SUBSCRIPTION), "failing %u", failing);
        authz_decision_release(&d);
        json_decref(loaded);
    }
}

Test(authz, only_the_missing_features_are_named)
{
    json_t *loaded = loaded_new(FAIL_FEATURE);
    struct authz_decision d;

    cr_assert_eq(authz_decide_loaded(loaded, USER_ID, &every_step, NOW, &d), 0);
    cr_expect_eq(d.nmissing, 1);
    cr_expect_str_eq(d.missing[0], "api_access");
    cr_expect_null(d.plan_json, "a route not answered from the plan copies nothing");
    authz_decision_release(&d);
    json_decref(loaded);
}

Test(authz, an_account_gone_is_not_found_and_a_malformed_answer_invalid)
{
    json_t *gone = json_pack("{s:b}", "found", 0);
    json_t *malformed = json_pack("{s:b, s:s}", "found", 1, "permissions", "all");
    struct authz_decision d;

    cr_expect_eq(authz_decide_loaded(gone, USER_ID, &every_step, NOW, &d), M360_ENOTFOUND);
    cr_expect_eq(authz_decide_loaded(malformed, USER_ID, &every_step, NOW, &d), M360_EINVAL);
    json_decref(gone);
    json_decref(malformed);
}

Test(authz, an_end_is_compared_with_the_clock_on_every_decision)
{
    struct authz_cache *cache = authz_cache_new();
    json_t *loaded = loaded_ending(0, NOW + 30);
    struct authz_decision d;

    cr_assert_not_null(cache);
    cr_assert_eq(authz_store(cache, USER_ID, loaded, NOW, authz_generation(cache)), 0);
    cr_assert_eq(authz_decide(cache, USER_ID, &every_step, NOW + 29, &d), 0);
    cr_expect_eq(d.step, AUTHZ_ALLOWED);
    cr_expect_str_eq(d.status, "active");

    /* The same cached entry, a second later: no announcement needed. */
    cr_assert_eq(authz_decide(cache, USER_ID, &every_step, NOW + 30, &d), 0);
    cr_expect_eq(d.step, AUTHZ_DENIED_SUBSCRIPTION, "an ended subscription was served");
    cr_expect_str_eq(d.status, "expired");
    cr_expect_eq(d.quota_limit, 0);

    authz_drop(cache, USER_ID);
    cr_expect_eq(authz_decide(cache, USER_ID, &every_step, NOW, &d), M360_ENOTFOUND);
    json_decref(loaded);
    authz_cache_destroy(&cache);
}

Test(authz, a_store_raced_by_a_drop_is_not_kept)
{
    struct authz_cache *cache = authz_cache_new();
    json_t *loaded = loaded_new(0);
    uint64_t generation = authz_generation(cache);
    struct authz_decision d;

    authz_drop(cache, USER_ID); /* a change announced while the load was under way */
    cr_assert_eq(authz_store(cache, USER_ID, loaded, NOW, generation), 0);
    cr_expect_eq(authz_decide(cache, USER_ID, &every_step, NOW, &d), M360_ENOTFOUND,
                 "an answer older than the change was kept");
    json_decref(loaded);
    authz_cache_destroy(&cache);
}

Test(authz, the_advice_is_the_lowest_tier_having_every_feature)
{
    json_t *plans = json_pack("{s:[{s:s, s:[s]}, {s:s, s:[ss]}, {s:s, s:[sss]}]}", "plans", "name",
                              "Free", "features", "basic_dashboard", "name", "Pro", "features",
                              "advanced_reporting", "basic_dashboard", "name", "Enterprise",
                              "features", "advanced_reporting", "api_access", "basic_dashboard");
    const char *one[] = {"advanced_reporting"};
    const char *both[] = {"advanced_reporting", "api_access"};
    const char *unknown[] = {"advanced_reporting", "teleportation"};
    char plan[AUTHZ_NAME_BYTES];

    cr_assert_eq(authz_recommend_loaded(plans, one, 1, plan), 0);
    cr_expect_str_eq(plan, "Pro");
    cr_assert_eq(authz_recommend_loaded(plans, both, 2, plan), 0);
    cr_expect_str_eq(plan, "Enterprise");
    cr_expect_eq(authz_recommend_loaded(plans, unknown, 2, plan), M360_ENOTFOUND);
    json_decref(plans);
}
