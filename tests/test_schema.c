/* SPDX-License-Identifier: MIT */
/* The schema's own guarantees, checked as a client of the database would see them. */
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "test_support.h"

static struct tsupport_db test_db;
static PGconn *conn;

static void schema_setup(void)
{
    tsupport_db_migrated(&test_db);
    conn = tsupport_connect(test_db.url);
}

static void schema_teardown(void)
{
    PQfinish(conn);
    tsupport_db_destroy(&test_db);
}

TestSuite(schema, .init = schema_setup, .fini = schema_teardown);

static const char insert_user_sql[] =
    "INSERT INTO user_accounts (email, password_hash, role_id)"
    " SELECT $1, '$argon2id$v=19$m=65536,t=2,p=1$c2FsdA$aGFzaA', id FROM roles"
    " WHERE name = 'user' RETURNING id";

/* Inserts an account and returns its id in `id` (37 bytes). */
static void insert_user(const char *email, char *id)
{
    const char *params[] = {email};
    PGresult *res = tsupport_query(conn, insert_user_sql, 1, params);

    cr_assert_eq(PQresultStatus(res), PGRES_TUPLES_OK, "%s", PQresultErrorMessage(res));
    snprintf(id, 37, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
}

static const char *state_of(const char *sql, int nparams, const char *const *params)
{
    static char state[6];

    return tsupport_sqlstate(conn, sql, nparams, params, state);
}

Test(schema, email_is_unique_whatever_its_case)
{
    char id[37];
    const char *upper[] = {"Alice@Example.com"};
    const char *same[] = {"alice@example.com"};

    insert_user("alice@example.com", id);
    /* Stored lower-case only, and unique on lower(email): no case variant gets in. */
    cr_expect_str_eq(state_of(insert_user_sql, 1, upper), "23514");
    cr_expect_str_eq(state_of(insert_user_sql, 1, same), "23505");
    cr_expect_eq(tsupport_scalar(conn, "SELECT count(*) FROM user_accounts", 0, NULL), 1);
}

Test(schema, soft_deleted_account_keeps_its_email)
{
    char id[37];
    const char *params[] = {id};
    const char *again[] = {"gone@example.com"};

    insert_user("gone@example.com", id);
    cr_expect_str_eq(state_of("UPDATE user_accounts SET deleted_at = now(), is_active = false"
                              " WHERE id = $1",
                              1, params),
                     "");
    cr_expect_str_eq(state_of(insert_user_sql, 1, again), "23505");
    cr_expect_str_eq(state_of("UPDATE user_accounts SET is_active = true WHERE id = $1", 1, params),
                     "23514");
}

Test(schema, money_and_limits_cannot_go_negative)
{
    cr_expect_str_eq(
        state_of("UPDATE subscription_plans SET price_monthly_paise = -1 WHERE name = 'Pro'", 0,
                 NULL),
        "23514");
    cr_expect_str_eq(state_of("UPDATE subscription_plans SET max_api_requests_per_month = -5"
                              " WHERE name = 'Free'",
                              0, NULL),
                     "23514");
    cr_expect_str_eq(state_of("INSERT INTO payment_transactions (user_id, plan_id, provider,"
                              " amount_paise) SELECT gen_random_uuid(), id, 'test', -100"
                              " FROM subscription_plans WHERE name = 'Pro'",
                              0, NULL),
                     "23514");
}

Test(schema, unknown_statuses_are_rejected_everywhere)
{
    char id[37];
    const char *params[] = {id};
    static const char *const cases[] = {
        "INSERT INTO user_subscriptions (user_id, plan_id, status) SELECT $1, id, 'paused'"
        " FROM subscription_plans WHERE name = 'Free'",
        "INSERT INTO sessions (user_id, device_type, expires_at)"
        " VALUES ($1, 'toaster', now() + interval '1 day')",
        "INSERT INTO payment_transactions (user_id, plan_id, provider, amount_paise, status)"
        " SELECT $1, id, 'test', 100, 'maybe' FROM subscription_plans WHERE name = 'Pro'",
        "INSERT INTO email_outbox (to_address, template, payload, status)"
        " SELECT email, 'verify_email', '{}', 'lost' FROM user_accounts WHERE id = $1",
        "INSERT INTO audit_logs (user_id, event_type, status) VALUES ($1, 'login', 'meh')",
        "INSERT INTO audit_logs (user_id, event_type) VALUES ($1, 'teleport')",
        "INSERT INTO one_time_tokens (user_id, token_hash, purpose, expires_at)"
        " VALUES ($1, sha256('x'), 'unlock_door', now() + interval '1 hour')",
    };

    insert_user("status@example.com", id);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        cr_expect_str_eq(state_of(cases[i], 1, params), "23514", "case %zu: %s", i, cases[i]);
}

Test(schema, one_active_subscription_and_one_trial_per_user)
{
    char id[37];
    const char *params[] = {id};
    const char *add_active =
        "INSERT INTO user_subscriptions (user_id, plan_id, status, is_trial) SELECT $1, id,"
        " 'active', $2::boolean FROM subscription_plans WHERE name = 'Pro'";
    const char *first[] = {id, "true"};

    insert_user("subs@example.com", id);
    cr_assert_str_eq(state_of(add_active, 2, first), "");
    cr_expect_str_eq(state_of(add_active, 2, (const char *[]){id, "false"}), "23505");
    cr_expect_str_eq(state_of("UPDATE user_subscriptions SET status = 'cancelled'"
                              " WHERE user_id = $1",
                              1, params),
                     "");
    cr_expect_str_eq(state_of(add_active, 2, first), "23505");
    cr_expect_str_eq(state_of(add_active, 2, (const char *[]){id, "false"}), "");
}

Test(schema, audit_rows_land_in_their_month)
{
    PGresult *res;

    cr_assert_str_eq(state_of("INSERT INTO audit_logs (event_type, created_at) VALUES"
                              " ('login', date_trunc('month', now())),"
                              " ('login', date_trunc('month', now()) + interval '1 month'"
                              "   - interval '1 millisecond'),"
                              " ('login', date_trunc('month', now()) + interval '1 month'),"
                              " ('login', '2001-01-01T00:00:00Z')",
                              0, NULL),
                     "");
    res = tsupport_query(
        conn, "SELECT tableoid::regclass::text FROM audit_logs ORDER BY created_at", 0, NULL);
    cr_assert_eq(PQntuples(res), 4);
    cr_expect_str_eq(PQgetvalue(res, 0, 0), "audit_logs_default");
    cr_expect_eq(strncmp(PQgetvalue(res, 1, 0), "audit_logs_y", 12), 0, "%s",
                 PQgetvalue(res, 1, 0));
    cr_expect_str_eq(PQgetvalue(res, 1, 0), PQgetvalue(res, 2, 0));
    cr_expect_str_neq(PQgetvalue(res, 2, 0), PQgetvalue(res, 3, 0));
    cr_expect_neq(strcmp(PQgetvalue(res, 3, 0), "audit_logs_default"), 0);
    PQclear(res);
}

Test(schema, ensuring_a_partition_moves_its_rows_out_of_default)
{
    cr_assert_str_eq(state_of("INSERT INTO audit_logs (event_type, created_at)"
                              " VALUES ('logout', '2031-05-17T10:00:00Z')",
                              0, NULL),
                     "");
    cr_expect_eq(tsupport_scalar(conn, "SELECT count(*) FROM audit_logs_default", 0, NULL), 1);
    cr_assert_str_eq(state_of("SELECT audit_logs_ensure_partition('2031-05-01')", 0, NULL), "");
    cr_expect_eq(tsupport_scalar(conn, "SELECT count(*) FROM audit_logs_default", 0, NULL), 0);
    cr_expect_eq(tsupport_scalar(conn, "SELECT count(*) FROM audit_logs_y2031m05", 0, NULL), 1);
    cr_expect_str_eq(state_of("SELECT audit_logs_ensure_partition('2031-05-31')", 0, NULL), "");
}

Test(schema, seed_roles_match_the_contract)
{
    static const struct {
        const char *role;
        long level;
        long permissions;
    } roles[] = {{"guest", 0, 0},
                 {"user", 10, 3},
                 {"subscriber", 50, 3},
                 {"admin", 90, 7},
                 {"superadmin", 100, 10}};

    cr_expect_eq(tsupport_scalar(conn, "SELECT count(*) FROM roles", 0, NULL), 5);
    for (size_t i = 0; i < sizeof(roles) / sizeof(roles[0]); i++) {
        const char *params[] = {roles[i].role};
        cr_expect_eq(
            tsupport_scalar(conn, "SELECT privilege_level FROM roles WHERE name = $1", 1, params),
            roles[i].level, "%s", roles[i].role);
        cr_expect_eq(tsupport_scalar(conn,
                                     "SELECT count(*) FROM role_permissions rp JOIN roles r"
                                     " ON r.id = rp.role_id WHERE r.name = $1",
                                     1, params),
                     roles[i].permissions, "%s", roles[i].role);
    }
    cr_expect_eq(tsupport_scalar(conn,
                                 "SELECT count(*) FROM role_permissions rp"
                                 " JOIN roles r ON r.id = rp.role_id"
                                 " JOIN permissions p ON p.id = rp.permission_id"
                                 " WHERE r.name = 'admin' AND p.name IN ('manage_users',"
                                 " 'view_analytics', 'manage_subscriptions', 'view_audit_logs',"
                                 " 'read_profile', 'update_profile', 'view_dashboard')",
                                 0, NULL),
                 7);
}

Test(schema, seed_plans_match_the_contract)
{
    static const struct {
        const char *plan;
        long tier, price, period, requests, trial, features;
    } plans[] = {
        {"Free", 1, 0, 30, 1000, 0, 1},
        {"Pro", 10, 99900, 30, 10000, 14, 5},
        {"Enterprise", 100, 499900, 30, 1000000, 0, 6},
    };
    static const char *const columns[] = {"tier", "price_monthly_paise", "billing_period_days",
                                          "max_api_requests_per_month", "trial_period_days"};
    char sql[256];

    for (size_t i = 0; i < sizeof(plans) / sizeof(plans[0]); i++) {
        const char *params[] = {plans[i].plan};
        const long want[] = {plans[i].tier, plans[i].price, plans[i].period, plans[i].requests,
                             plans[i].trial};

        for (size_t c = 0; c < sizeof(columns) / sizeof(columns[0]); c++) {
            snprintf(sql, sizeof(sql), "SELECT %s FROM subscription_plans WHERE name = $1",
                     columns[c]);
            cr_expect_eq(tsupport_scalar(conn, sql, 1, params), want[c], "%s %s", plans[i].plan,
                         columns[c]);
        }
        cr_expect_eq(tsupport_scalar(conn,
                                     "SELECT count(*) FROM plan_features pf JOIN"
                                     " subscription_plans p ON p.id = pf.plan_id"
                                     " WHERE p.name = $1",
                                     1, params),
                     plans[i].features, "%s", plans[i].plan);
    }
    cr_expect_eq(tsupport_scalar(conn,
                                 "SELECT count(*) FROM plan_features pf"
                                 " JOIN subscription_plans p ON p.id = pf.plan_id"
                                 " JOIN features f ON f.id = pf.feature_id"
                                 " WHERE p.name = 'Enterprise' AND f.name = 'priority_support'",
                                 0, NULL),
                 1);
}

Test(schema, views_report_expiry_by_the_clock)
{
    char id[37];
    const char *params[] = {id};
    PGresult *res;

    insert_user("lapsed@example.com", id);
    cr_assert_str_eq(state_of("INSERT INTO user_subscriptions (user_id, plan_id, status,"
                              " starts_at, ends_at) SELECT $1, id, 'active',"
                              " now() - interval '40 days', now() - interval '10 days'"
                              " FROM subscription_plans WHERE name = 'Pro'",
                              1, params),
                     "");
    res = tsupport_query(conn,
                         "SELECT plan_name, subscription_status FROM vw_users_with_subscription"
                         " WHERE id = $1",
                         1, params);
    cr_assert_eq(PQntuples(res), 1);
    cr_expect_str_eq(PQgetvalue(res, 0, 0), "Pro");
    cr_expect_str_eq(PQgetvalue(res, 0, 1), "expired");
    PQclear(res);
    cr_expect_eq(tsupport_scalar(conn, "SELECT count(*) FROM vw_user_features WHERE user_id = $1",
                                 1, params),
                 0);
}

Test(schema, deleting_a_user_takes_sessions_but_not_audit_rows_nor_its_role)
{
    char id[37];
    const char *params[] = {id};

    insert_user("bye@example.com", id);
    cr_assert_str_eq(state_of("INSERT INTO sessions (user_id, expires_at)"
                              " VALUES ($1, now() + interval '1 day')",
                              1, params),
                     "");
    cr_assert_str_eq(state_of("INSERT INTO audit_logs (user_id, event_type) VALUES ($1,"
                              " 'register')",
                              1, params),
                     "");
    cr_assert_str_eq(state_of("DELETE FROM user_accounts WHERE id = $1", 1, params), "");
    cr_expect_eq(tsupport_scalar(conn, "SELECT count(*) FROM sessions", 0, NULL), 0);
    cr_expect_eq(
        tsupport_scalar(conn, "SELECT count(*) FROM audit_logs WHERE user_id = $1", 1, params), 1);
    /* A role that accounts still hold cannot go: they would be left without one. */
    insert_user("stay@example.com", id);
    cr_expect_str_eq(state_of("DELETE FROM roles WHERE name = 'user'", 0, NULL), "23503");
}
