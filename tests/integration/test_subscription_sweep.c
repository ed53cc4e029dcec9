/* SPDX-License-Identifier: MIT */
/*
 * The subscription sweep over a real server and database: an owner is warned once when a
 * subscription ends within three days, and at its end the row expires, the role returns to
 * `user`, the owner gets the notice and the trail the change. Two servers sweeping the same
 * database do each of those once.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "test_mail.h"
#include "test_support.h"

#define PASSWORD "correct horse battery"
#define SWEEP_ENV "SUBSCRIPTION_SWEEP_INTERVAL=1s"
#define WAIT_MS 8000

static struct tsupport_server first;
static struct tsupport_server second;

static void sweep_teardown(void)
{
    tsupport_server_destroy(&second);
    tsupport_server_destroy(&first);
}

TestSuite(subscription_sweep, .fini = sweep_teardown, .timeout = 120);

static long scalar(const char *sql, const char *param)
{
    PGconn *conn = tsupport_connect(first.db.url);
    const char *params[] = {param};
    long value = tsupport_scalar(conn, sql, 1, params);

    PQfinish(conn);
    return value;
}

/* Waits until `sql` (one parameter) counts `want`; returns the last count. */
static long scalar_wait(const char *sql, const char *param, long want)
{
    long long until = tsupport_now_ms() + WAIT_MS;
    long value;

    while ((value = scalar(sql, param)) != want && tsupport_now_ms() < until)
        usleep(100 * 1000);
    return value;
}

/* A user on a Pro trial, as the subscription route makes one. */
static void trial_user(const char *email, struct tsupport_user *user)
{
    struct tsupport_response res;

    tsupport_user_new(first.port, email, PASSWORD, user);
    tsupport_json(first.port, "POST", "/api/subscriptions", user->access,
                  "{\"plan\": \"Pro\", \"trial\": true}", &res);
    cr_assert_eq(res.status, 200, "%s", res.body);
    tsupport_response_cleanup(&res);
    cr_assert_eq(scalar("SELECT count(*) FROM user_accounts u JOIN roles r ON r.id = u.role_id"
                        " WHERE u.email = $1 AND r.name = 'subscriber'",
                        email),
                 1);
}

/* Moves the active subscription of `email` to end at now() + `interval`. */
static void trial_ends_in(const char *email, const char *interval)
{
    const char *params[] = {email, interval};

    tsupport_db_run(first.db.url,
                    "UPDATE user_subscriptions SET starts_at = now() - interval '30 days',"
                    "       ends_at = now() + $2::interval"
                    " WHERE status = 'active'"
                    "   AND user_id = (SELECT id FROM user_accounts WHERE email = $1)",
                    2, params);
}

#define OUTBOX_OF(template)                                                                        \
    "SELECT count(*) FROM email_outbox WHERE template = '" template "' AND to_address = $1"

Test(subscription_sweep, warned_once_then_expired_with_role_mail_and_trail)
{
    const char *extra[] = {SWEEP_ENV, NULL};
    struct tsupport_user user;
    struct tsupport_response res;
    char mail_dir[600];
    char *mail;

    tsupport_server_start(&first, extra);
    trial_user("ending@example.com", &user);
    snprintf(mail_dir, sizeof(mail_dir), "%s/mail", first.var_dir);

    /* Two days left: one warning, whatever the number of passes. */
    trial_ends_in("ending@example.com", "2 days");
    cr_expect_eq(scalar_wait(OUTBOX_OF("subscription_expiring"), "ending@example.com", 1), 1);
    mail = tmail_wait(mail_dir, "ending@example.com", 2, WAIT_MS); /* after the verification */
    cr_assert_not_null(mail, "the warning was not delivered");
    free(mail);
    sleep(3);
    cr_expect_eq(scalar(OUTBOX_OF("subscription_expiring"), "ending@example.com"), 1,
                 "warned more than once for one end");

    /* Its end passes: expired, back to `user`, told, and in the trail. */
    trial_ends_in("ending@example.com", "-1 second");
    cr_expect_eq(scalar_wait("SELECT count(*) FROM user_subscriptions s"
                             "  JOIN user_accounts u ON u.id = s.user_id"
                             " WHERE u.email = $1 AND s.status = 'expired' AND NOT s.auto_renew",
                             "ending@example.com", 1),
                 1, "the ended subscription was not expired");
    cr_expect_eq(scalar("SELECT count(*) FROM user_accounts u JOIN roles r ON r.id = u.role_id"
                        " WHERE u.email = $1 AND r.name = 'user'",
                        "ending@example.com"),
                 1, "the role did not follow");
    cr_expect_eq(scalar(OUTBOX_OF("subscription_expired"), "ending@example.com"), 1);
    cr_expect_eq(scalar("SELECT count(*) FROM audit_logs a JOIN user_accounts u ON u.id = a.user_id"
                        " WHERE u.email = $1 AND a.event_type = 'subscription_changed'"
                        "   AND a.action = 'expire' AND a.details->>'reason' = 'ended'"
                        "   AND a.details->'role'->>'to' = 'user'",
                        "ending@example.com"),
                 1, "the expiry is not in the trail");
    mail = tmail_wait(mail_dir, "ending@example.com", 3, WAIT_MS);
    cr_assert_not_null(mail, "the notice of the end was not delivered");
    free(mail);

    /* Every process sees the change: no active subscription, no premium dashboard. */
    tsupport_json(first.port, "GET", "/api/features/premium-dashboard", user.access, NULL, &res);
    tsupport_expect_error(&res, 402, "SubscriptionInactive");
    cr_expect_str_eq(tsupport_str(res.json, "status"), "expired");
    tsupport_response_cleanup(&res);
    cr_expect_eq(tsupport_server_stop(&first), 0);
}

Test(subscription_sweep, two_sweepers_act_once)
{
    const char *extra[] = {SWEEP_ENV, NULL};
    char shared_url[600];
    const char *second_extra[] = {SWEEP_ENV, shared_url, NULL};
    struct tsupport_user users[4];
    char email[64];

    tsupport_server_start(&first, extra);
    snprintf(shared_url, sizeof(shared_url), "DATABASE_URL=%s", first.db.url);
    tsupport_server_start(&second, second_extra);
    for (int i = 0; i < 4; i++) {
        snprintf(email, sizeof(email), "pair%d@example.com", i);
        trial_user(email, &users[i]);
        trial_ends_in(email, i % 2 == 0 ? "1 day" : "-1 second");
    }

    cr_expect_eq(scalar_wait("SELECT count(*) FROM email_outbox"
                             " WHERE template = 'subscription_expired' AND to_address LIKE $1",
                             "pair%", 2),
                 2);
    cr_expect_eq(scalar_wait("SELECT count(*) FROM email_outbox"
                             " WHERE template = 'subscription_expiring' AND to_address LIKE $1",
                             "pair%", 2),
                 2);
    sleep(3);
    cr_expect_eq(scalar("SELECT count(*) FROM email_outbox WHERE to_address LIKE $1"
                        "   AND template IN ('subscription_expired', 'subscription_expiring')",
                        "pair%"),
                 4, "a sweeper acted twice");
    cr_expect_eq(scalar("SELECT count(*) FROM audit_logs a JOIN user_accounts u ON u.id = a.user_id"
                        " WHERE u.email LIKE $1 AND a.action = 'expire'",
                        "pair%"),
                 2, "an expiry was recorded twice");
    cr_expect_eq(tsupport_server_stop(&second), 0);
    cr_expect_eq(tsupport_server_stop(&first), 0);
}
