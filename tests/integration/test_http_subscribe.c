/* SPDX-License-Identifier: MIT */
/*
 * Subscribing over real HTTP: Free, trials, the paid-plan refusal, cancelling renewal, the
 * role that follows the subscription, concurrent trials, and an administrator's changes to
 * another user's subscription with the privilege rule.
 */
#define _GNU_SOURCE /* timegm, strptime */

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "test_support.h"

#define PASSWORD "correct horse battery"
#define CATCH_UP_MS 1000 /* caches drop a changed account within a second */
#define TRIAL_DAYS 14
#define DAY_S 86400
#define SLACK_S 120
#define RACERS 10

static struct tsupport_server server;

static void subscribe_setup(void)
{
    tsupport_server_start(&server, NULL);
}

static void subscribe_teardown(void)
{
    tsupport_server_destroy(&server);
}

TestSuite(http_subscribe, .init = subscribe_setup, .fini = subscribe_teardown);

/* Every test ends here: SIGTERM, and a clean exit 0 (no leak, no sanitizer report). */
static void subscribe_stop(void)
{
    cr_expect_eq(tsupport_server_stop(&server), 0, "the server did not stop cleanly");
}

/* ---- Helpers --------------------------------------------------------------------------- */

static void post(const char *path, const char *token, const char *body,
                 struct tsupport_response *res)
{
    tsupport_json(server.port, "POST", path, token, body, res);
}

static void patch(const char *path, const char *token, const char *body,
                  struct tsupport_response *res)
{
    tsupport_json(server.port, "PATCH", path, token, body, res);
}

static void expect_validation(const struct tsupport_response *res, const char *field,
                              const char *what)
{
    const json_t *reason;

    cr_expect_eq(res->status, 400, "%s: %ld %s", what, res->status, res->body);
    if (res->status != 400)
        return;
    tsupport_expect_error(res, 400, "ValidationError");
    reason = json_object_get(tsupport_get(res->json, "fields"), field);
    cr_expect(json_is_string(reason), "%s: fields.%s missing in %s", what, field, res->body);
}

/* POST /api/subscriptions with `body` expects a 400 naming `field`. */
static void expect_subscribe_invalid(const char *token, const char *body, const char *field)
{
    struct tsupport_response res;

    post("/api/subscriptions", token, body, &res);
    expect_validation(&res, field, body);
    tsupport_response_cleanup(&res);
}

/* The subscription of a 200 answer, copied (caller decrefs). */
static json_t *expect_subscription(const struct tsupport_response *res, const char *what)
{
    json_t *subscription = tsupport_get(res->json, "subscription");

    cr_assert_eq(res->status, 200, "%s: %ld %s", what, res->status, res->body);
    cr_expect(json_is_true(tsupport_get(res->json, "success")), "%s: %s", what, res->body);
    cr_assert(json_is_object(subscription), "%s: %s", what, res->body);
    cr_expect_eq(json_object_size(subscription), 7, "%s: %s", what, res->body);
    cr_expect(tsupport_is_uuid(tsupport_str(subscription, "id")), "%s", res->body);
    cr_expect(tsupport_is_rfc3339_utc(tsupport_str(subscription, "startsAt")), "%s", res->body);
    json_incref(subscription);
    return subscription;
}

/* POST /api/subscriptions with `body`; expects 200 and answers the subscription. */
static json_t *subscribe(const char *token, const char *body)
{
    struct tsupport_response res;
    json_t *subscription;

    post("/api/subscriptions", token, body, &res);
    subscription = expect_subscription(&res, body);
    tsupport_response_cleanup(&res);
    return subscription;
}

static json_t *current(const char *token)
{
    struct tsupport_response res;
    json_t *subscription;

    tsupport_json(server.port, "GET", "/api/subscriptions/current", token, NULL, &res);
    subscription = expect_subscription(&res, "current");
    tsupport_response_cleanup(&res);
    return subscription;
}

/* Seconds from now to an RFC 3339 UTC time. */
static long long seconds_until(const char *text)
{
    struct tm tm = {0};

    cr_assert_not_null(text);
    cr_assert_not_null(strptime(text, "%Y-%m-%dT%H:%M:%S", &tm), "not a time: %s", text);
    return (long long)timegm(&tm) - (long long)time(NULL);
}

/* Polls GET /api/profile with `token` until the role is `role`; expects that within 1 s. */
static void expect_role_soon(const char *token, const char *role)
{
    long long started = tsupport_now_ms();
    char seen[64] = "";

    do {
        struct tsupport_response res;

        tsupport_json(server.port, "GET", "/api/profile", token, NULL, &res);
        cr_assert_eq(res.status, 200, "the token stopped working: %ld %s", res.status, res.body);
        snprintf(seen, sizeof(seen), "%s",
                 tsupport_str(res.json, "user.role") ? tsupport_str(res.json, "user.role") : "");
        tsupport_response_cleanup(&res);
        if (strcmp(seen, role) == 0)
            return;
        usleep(25000);
    } while (tsupport_now_ms() - started <= CATCH_UP_MS);
    cr_expect_fail("role is %s after %d ms, want %s", seen, CATCH_UP_MS, role);
}

static long db_scalar(const char *sql, const char *param)
{
    PGconn *conn = tsupport_connect(server.db.url);
    const char *params[] = {param};
    long value = tsupport_scalar(conn, sql, param != NULL ? 1 : 0, params);

    PQfinish(conn);
    return value;
}

/* Registers `email`, gives it `role` in the database, then logs in. */
static void user_with_role(const char *email, const char *role, struct tsupport_user *user)
{
    tsupport_register(server.port, email, PASSWORD);
    tsupport_user_role(server.db.url, email, role);
    cr_assert_eq(tsupport_login(server.port, email, PASSWORD, NULL, user), 200);
}

/* ---- Trials and Free ------------------------------------------------------------------- */

Test(http_subscribe, trial_then_back_to_free)
{
    struct tsupport_user user;
    json_t *free_row;
    json_t *trial;
    json_t *back;
    const char *params[1];

    tsupport_user_new(server.port, "trial@example.com", PASSWORD, &user);
    free_row = current(user.access);
    cr_assert_str_eq(tsupport_str(free_row, "plan"), "Free");

    /* The trial: active at once, ends after the plan's 14 days, and makes a subscriber. */
    trial = subscribe(user.access, "{\"plan\": \"Pro\", \"trial\": true}");
    cr_expect_str_eq(tsupport_str(trial, "plan"), "Pro");
    cr_expect_str_eq(tsupport_str(trial, "status"), "active");
    cr_expect(json_is_true(tsupport_get(trial, "isTrial")));
    cr_expect(json_is_boolean(tsupport_get(trial, "autoRenew")));
    {
        long long left = seconds_until(tsupport_str(trial, "endsAt"));

        cr_expect(left > TRIAL_DAYS * DAY_S - SLACK_S && left <= TRIAL_DAYS * DAY_S + SLACK_S,
                  "trial ends in %lld s", left);
    }
    {
        json_t *now = current(user.access);

        cr_expect(json_equal(now, trial), "the current subscription is not the trial");
        json_decref(now);
    }
    expect_role_soon(user.access, "subscriber");

    /* The Free row it replaced is cancelled, with the moment recorded; one audit row. */
    params[0] = tsupport_str(free_row, "id");
    cr_expect_eq(db_scalar("SELECT count(*) FROM user_subscriptions"
                           " WHERE id = $1 AND status = 'cancelled' AND cancelled_at IS NOT NULL",
                           params[0]),
                 1);
    cr_expect_eq(db_scalar("SELECT count(*) FROM audit_logs WHERE user_id = $1"
                           " AND event_type = 'subscription_changed'",
                           user.id),
                 1);

    /* One trial in a lifetime, and none on a plan without trial days. */
    {
        struct tsupport_response res;

        post("/api/subscriptions", user.access, "{\"plan\": \"Pro\", \"trial\": true}", &res);
        tsupport_expect_error(&res, 409, "Conflict");
        tsupport_response_cleanup(&res);
    }
    expect_subscribe_invalid(user.access, "{\"plan\": \"Enterprise\", \"trial\": true}", "trial");

    /* Back to Free (any letter case): never ends, role back to user, the login survives. */
    back = subscribe(user.access, "{\"plan\": \"free\"}");
    cr_expect_str_eq(tsupport_str(back, "plan"), "Free");
    cr_expect_str_eq(tsupport_str(back, "status"), "active");
    cr_expect(json_is_false(tsupport_get(back, "isTrial")));
    cr_expect(json_is_null(tsupport_get(back, "endsAt")));
    cr_expect_str_neq(tsupport_str(back, "id"), tsupport_str(free_row, "id"));
    expect_role_soon(user.access, "user");
    cr_expect_eq(
        db_scalar("SELECT count(*) FROM sessions WHERE user_id = $1 AND ended_at IS NULL", user.id),
        1);
    params[0] = tsupport_str(trial, "id");
    cr_expect_eq(db_scalar("SELECT count(*) FROM user_subscriptions"
                           " WHERE id = $1 AND status = 'cancelled'",
                           params[0]),
                 1);

    /* Asking for Free again changes nothing. */
    {
        json_t *again = subscribe(user.access, "{\"plan\": \"Free\"}");

        cr_expect(json_equal(again, back), "Free again changed the subscription");
        json_decref(again);
    }
    cr_expect_eq(db_scalar("SELECT count(*) FROM user_subscriptions WHERE user_id = $1", user.id),
                 3);

    json_decref(free_row);
    json_decref(trial);
    json_decref(back);
    subscribe_stop();
}

Test(http_subscribe, refusals)
{
    static const char *const pro[] = {"Pro"};
    struct tsupport_user user;
    json_t *before;

    tsupport_user_new(server.port, "picky@example.com", PASSWORD, &user);
    before = current(user.access);

    /* A paid plan cannot start until payments exist; the message says so. */
    {
        struct tsupport_response res;

        post("/api/subscriptions", user.access, "{\"plan\": \"Enterprise\"}", &res);
        expect_validation(&res, "plan", "paid");
        cr_expect(strstr(res.body, "payment") != NULL, "%s", res.body);
        tsupport_response_cleanup(&res);
    }
    expect_subscribe_invalid(user.access, "{\"plan\": \"Pro\", \"trial\": false}", "plan");
    expect_subscribe_invalid(user.access, "{\"plan\": \"Platinum\"}", "plan");
    expect_subscribe_invalid(user.access, "{\"plan\": \"\"}", "plan");
    expect_subscribe_invalid(user.access, "{\"plan\": \"Free\", \"trial\": true}", "trial");

    /* Wrong types, missing or unknown members. */
    expect_subscribe_invalid(user.access, "{\"plan\": 10}", "plan");
    expect_subscribe_invalid(user.access, "{\"plan\": null}", "plan");
    expect_subscribe_invalid(user.access, "{\"plan\": \"Pro\", \"trial\": \"yes\"}", "trial");
    expect_subscribe_invalid(user.access, "{\"plan\": \"Pro\", \"trial\": 1}", "trial");
    expect_subscribe_invalid(user.access, "{}", "plan");
    expect_subscribe_invalid(user.access, "{\"plan\": \"Pro\", \"months\": 3}", "months");
    expect_subscribe_invalid(user.access, "{\"plan\": \"Pr\\u0000o\"}", "plan");

    /* An inactive plan is refused, trial or not. */
    tsupport_db_run(server.db.url,
                    "UPDATE subscription_plans SET is_active = false WHERE name = $1", 1, pro);
    expect_subscribe_invalid(user.access, "{\"plan\": \"Pro\", \"trial\": true}", "plan");

    /* Nothing above changed the subscription. */
    {
        json_t *after = current(user.access);

        cr_expect(json_equal(before, after), "a refused request changed the subscription");
        json_decref(after);
    }
    {
        struct tsupport_response res;

        post("/api/subscriptions", NULL, "{\"plan\": \"Free\"}", &res);
        tsupport_expect_error(&res, 401, "Unauthorized");
        tsupport_response_cleanup(&res);
    }
    json_decref(before);
    subscribe_stop();
}

/* ---- Cancel ---------------------------------------------------------------------------- */

static json_t *cancel(const char *token)
{
    struct tsupport_response res;
    json_t *subscription;

    post("/api/subscriptions/cancel", token, NULL, &res);
    subscription = expect_subscription(&res, "cancel");
    tsupport_response_cleanup(&res);
    return subscription;
}

Test(http_subscribe, cancel_turns_renewal_off)
{
    struct tsupport_user user;
    json_t *free_row;
    json_t *trial;
    json_t *cancelled;

    tsupport_user_new(server.port, "quitter@example.com", PASSWORD, &user);

    /* Free has nothing to renew: the answer is the subscription, unchanged, and no audit. */
    free_row = current(user.access);
    cancelled = cancel(user.access);
    cr_expect(json_equal(cancelled, free_row), "cancelling Free changed it");
    json_decref(cancelled);
    cr_expect_eq(db_scalar("SELECT count(*) FROM audit_logs WHERE user_id = $1"
                           " AND event_type = 'subscription_changed'",
                           user.id),
                 0);

    /* A trial keeps its status and end; only renewal goes off. */
    trial = subscribe(user.access, "{\"plan\": \"Pro\", \"trial\": true}");
    cancelled = cancel(user.access);
    cr_expect_str_eq(tsupport_str(cancelled, "id"), tsupport_str(trial, "id"));
    cr_expect_str_eq(tsupport_str(cancelled, "status"), "active");
    cr_expect(json_is_false(tsupport_get(cancelled, "autoRenew")));
    cr_expect_str_eq(tsupport_str(cancelled, "endsAt"), tsupport_str(trial, "endsAt"));
    cr_expect_eq(db_scalar("SELECT count(*) FROM user_subscriptions"
                           " WHERE user_id = $1 AND cancelled_at IS NOT NULL AND status = 'active'",
                           user.id),
                 1);
    expect_role_soon(user.access, "subscriber");

    /* Again: succeeds, changes nothing. */
    {
        json_t *again = cancel(user.access);

        cr_expect(json_equal(again, cancelled));
        json_decref(again);
    }
    cr_expect_eq(db_scalar("SELECT count(*) FROM audit_logs WHERE user_id = $1"
                           " AND event_type = 'subscription_changed'",
                           user.id),
                 2);

    /* The operation takes no input. */
    {
        struct tsupport_response res;

        post("/api/subscriptions/cancel", user.access, "{\"now\": true}", &res);
        expect_validation(&res, "now", "cancel with a member");
        tsupport_response_cleanup(&res);
    }

    /* Without any subscription the answer is null. */
    tsupport_db_run(server.db.url, "DELETE FROM user_subscriptions WHERE user_id = $1", 1,
                    (const char *const[]){user.id});
    {
        struct tsupport_response res;

        post("/api/subscriptions/cancel", user.access, "{}", &res);
        cr_expect_eq(res.status, 200, "%s", res.body);
        cr_expect(json_is_null(tsupport_get(res.json, "subscription")), "%s", res.body);
        tsupport_response_cleanup(&res);
    }
    json_decref(free_row);
    json_decref(trial);
    json_decref(cancelled);
    subscribe_stop();
}

/* ---- Concurrency ----------------------------------------------------------------------- */

struct racer {
    const char *token;
    pthread_barrier_t *start;
    long status;
};

static void *racer_main(void *arg)
{
    struct racer *racer = arg;
    struct tsupport_response res;

    pthread_barrier_wait(racer->start);
    tsupport_json(server.port, "POST", "/api/subscriptions", racer->token,
                  "{\"plan\": \"Pro\", \"trial\": true}", &res);
    racer->status = res.status;
    if (res.status != 200 && res.status != 409)
        fprintf(stderr, "racer: %ld %s\n", res.status, res.body);
    tsupport_response_cleanup(&res);
    return NULL;
}

Test(http_subscribe, concurrent_trials_start_once)
{
    struct tsupport_user user;
    pthread_t threads[RACERS];
    struct racer racers[RACERS];
    pthread_barrier_t start;
    int ok = 0;
    int conflicts = 0;

    tsupport_user_new(server.port, "racer@example.com", PASSWORD, &user);
    cr_assert_eq(pthread_barrier_init(&start, NULL, RACERS), 0);
    for (int i = 0; i < RACERS; i++) {
        racers[i] = (struct racer){.token = user.access, .start = &start};
        cr_assert_eq(pthread_create(&threads[i], NULL, racer_main, &racers[i]), 0);
    }
    for (int i = 0; i < RACERS; i++) {
        pthread_join(threads[i], NULL);
        ok += racers[i].status == 200;
        conflicts += racers[i].status == 409;
    }
    pthread_barrier_destroy(&start);

    cr_expect_eq(ok, 1, "%d trials started", ok);
    cr_expect_eq(conflicts, RACERS - 1, "%d conflicts", conflicts);
    cr_expect_eq(db_scalar("SELECT count(*) FROM user_subscriptions"
                           " WHERE user_id = $1 AND status = 'active'",
                           user.id),
                 1);
    cr_expect_eq(
        db_scalar("SELECT count(*) FROM user_subscriptions WHERE user_id = $1 AND is_trial",
                  user.id),
        1);
    subscribe_stop();
}

/* ---- PATCH /api/admin/subscriptions/:id ------------------------------------------------ */

static void admin_patch(const char *token, const char *id, const char *body,
                        struct tsupport_response *res)
{
    char path[128];

    snprintf(path, sizeof(path), "/api/admin/subscriptions/%s", id);
    patch(path, token, body, res);
}

static void expect_admin_invalid(const char *token, const char *id, const char *body,
                                 const char *field)
{
    struct tsupport_response res;

    admin_patch(token, id, body, &res);
    expect_validation(&res, field, body);
    tsupport_response_cleanup(&res);
}

Test(http_subscribe, admin_changes_a_subscription)
{
    struct tsupport_user admin;
    struct tsupport_user user;
    json_t *sub;
    char id[40];

    user_with_role("ops@example.com", "admin", &admin);
    tsupport_user_new(server.port, "customer@example.com", PASSWORD, &user);
    sub = current(user.access);
    snprintf(id, sizeof(id), "%s", tsupport_str(sub, "id"));
    json_decref(sub);

    /* The owner is a plain user and ranks the same as themself: refused. */
    {
        struct tsupport_response res;

        admin_patch(user.access, id, "{\"autoRenew\": false}", &res);
        tsupport_expect_error(&res, 403, "Forbidden");
        tsupport_response_cleanup(&res);
    }

    /* To Pro until a set day: the owner becomes a subscriber on their next request. */
    {
        struct tsupport_response res;

        admin_patch(admin.access, id,
                    "{\"plan\": \"pro\", \"endsAt\": \"2099-01-02T03:04:05Z\","
                    " \"autoRenew\": false}",
                    &res);
        sub = expect_subscription(&res, "to Pro");
        cr_expect_str_eq(tsupport_str(sub, "id"), id);
        cr_expect_str_eq(tsupport_str(sub, "plan"), "Pro");
        cr_expect_str_eq(tsupport_str(sub, "status"), "active");
        cr_expect_str_eq(tsupport_str(sub, "endsAt"), "2099-01-02T03:04:05Z");
        cr_expect(json_is_false(tsupport_get(sub, "autoRenew")));
        json_decref(sub);
        tsupport_response_cleanup(&res);
    }
    expect_role_soon(user.access, "subscriber");
    cr_expect_eq(db_scalar("SELECT count(*) FROM audit_logs"
                           " WHERE event_type = 'subscription_changed' AND details->>'userId' = $1",
                           user.id),
                 1);

    /* An offset and a fraction are accepted; null makes it open-ended. */
    {
        struct tsupport_response res;

        admin_patch(admin.access, id, "{\"endsAt\": \"2098-06-01T10:00:00.5+05:30\"}", &res);
        sub = expect_subscription(&res, "offset");
        cr_expect_str_eq(tsupport_str(sub, "endsAt"), "2098-06-01T04:30:00Z");
        json_decref(sub);
        tsupport_response_cleanup(&res);

        admin_patch(admin.access, id, "{\"endsAt\": null}", &res);
        sub = expect_subscription(&res, "open-ended");
        cr_expect(json_is_null(tsupport_get(sub, "endsAt")));
        json_decref(sub);
        tsupport_response_cleanup(&res);
    }

    /* Cancelled: no longer a paying subscriber. */
    {
        struct tsupport_response res;

        admin_patch(admin.access, id, "{\"status\": \"cancelled\"}", &res);
        sub = expect_subscription(&res, "cancelled");
        cr_expect_str_eq(tsupport_str(sub, "status"), "cancelled");
        json_decref(sub);
        tsupport_response_cleanup(&res);
    }
    expect_role_soon(user.access, "user");

    /* Reactivating it while the user has another active subscription clashes. */
    json_decref(subscribe(user.access, "{\"plan\": \"Free\"}"));
    {
        struct tsupport_response res;

        admin_patch(admin.access, id, "{\"status\": \"active\"}", &res);
        tsupport_expect_error(&res, 409, "Conflict");
        tsupport_response_cleanup(&res);
    }

    /* Bad values, each a 400 naming its member. */
    expect_admin_invalid(admin.access, id, "{\"status\": \"pending\"}", "status");
    expect_admin_invalid(admin.access, id, "{\"status\": \"paused\"}", "status");
    expect_admin_invalid(admin.access, id, "{\"status\": 1}", "status");
    expect_admin_invalid(admin.access, id, "{\"endsAt\": \"tomorrow\"}", "endsAt");
    expect_admin_invalid(admin.access, id, "{\"endsAt\": \"2099-02-30T00:00:00Z\"}", "endsAt");
    expect_admin_invalid(admin.access, id, "{\"endsAt\": \"2099-01-01 00:00:00\"}", "endsAt");
    expect_admin_invalid(admin.access, id, "{\"endsAt\": 4102444800}", "endsAt");
    expect_admin_invalid(admin.access, id, "{\"endsAt\": \"2000-01-01T00:00:00Z\"}", "endsAt");
    expect_admin_invalid(admin.access, id, "{\"autoRenew\": \"no\"}", "autoRenew");
    expect_admin_invalid(admin.access, id, "{\"plan\": \"Gold\"}", "plan");
    expect_admin_invalid(admin.access, id, "{\"userId\": \"x\"}", "userId");

    /* Unknown and malformed ids. */
    {
        static const char *const ids[] = {"00000000-0000-4000-8000-000000000000", "not-a-uuid",
                                          "1"};

        for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
            struct tsupport_response res;

            admin_patch(admin.access, ids[i], "{\"autoRenew\": true}", &res);
            tsupport_expect_error(&res, 404, "NotFound");
            tsupport_response_cleanup(&res);
        }
    }
    subscribe_stop();
}

Test(http_subscribe, admin_patch_needs_the_permission)
{
    struct tsupport_user subscriber;
    struct tsupport_user user;
    json_t *sub;
    struct tsupport_response res;

    user_with_role("paying@example.com", "subscriber", &subscriber);
    tsupport_user_new(server.port, "victim@example.com", PASSWORD, &user);
    sub = current(user.access);

    admin_patch(subscriber.access, tsupport_str(sub, "id"), "{\"autoRenew\": false}", &res);
    tsupport_expect_error(&res, 403, "Forbidden");
    cr_expect_str_eq(tsupport_str(res.json, "requiredPermission"), "manage_subscriptions");
    tsupport_response_cleanup(&res);
    json_decref(sub);
    subscribe_stop();
}

Test(http_subscribe, admin_cannot_change_a_peer)
{
    struct tsupport_user admin;
    struct tsupport_user peer;
    struct tsupport_user boss;
    json_t *sub;
    char path[128];

    user_with_role("first-admin@example.com", "admin", &admin);
    user_with_role("second-admin@example.com", "admin", &peer);
    user_with_role("boss@example.com", "superadmin", &boss);
    sub = current(peer.access);
    snprintf(path, sizeof(path), "/api/admin/subscriptions/%s", tsupport_str(sub, "id"));

    /* Equal rank, and the caller's own subscription: refused without naming a permission. */
    {
        struct tsupport_response res;

        patch(path, admin.access, "{\"autoRenew\": false}", &res);
        tsupport_expect_error(&res, 403, "Forbidden");
        cr_expect_null(tsupport_get(res.json, "requiredPermission"), "%s", res.body);
        tsupport_response_cleanup(&res);

        patch(path, peer.access, "{\"autoRenew\": false}", &res);
        tsupport_expect_error(&res, 403, "Forbidden");
        tsupport_response_cleanup(&res);
    }

    /* A superadmin ranks above; an admin's role stays whatever the plan. */
    {
        struct tsupport_response res;
        json_t *changed;

        patch(path, boss.access, "{\"plan\": \"Enterprise\", \"endsAt\": \"2099-01-01T00:00:00Z\"}",
              &res);
        changed = expect_subscription(&res, "boss");
        cr_expect_str_eq(tsupport_str(changed, "plan"), "Enterprise");
        json_decref(changed);
        tsupport_response_cleanup(&res);
    }
    cr_expect_eq(db_scalar("SELECT count(*) FROM user_accounts u JOIN roles r ON r.id = u.role_id"
                           " WHERE u.id = $1 AND r.name = 'admin'",
                           peer.id),
                 1);
    json_decref(sub);
    subscribe_stop();
}
