/* SPDX-License-Identifier: MIT */
/*
 * Quota leases against the real billing pool and database, with the clock in the test's
 * hands: calendar-month rollover, exactness under concurrency in one process and across two
 * lease tables (two processes' worth), refunds, changed limits, and settlement.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <criterion/criterion.h>
#include <zmq.h>

#include "../src/server/http_internal.h"
#include "manas360/billing.h"
#include "manas360/err.h"
#include "manas360/log.h"
#include "manas360/quota.h"
#include "test_support.h"

#define TEST_ENDPOINT "inproc://billing-quota-test"
#define TEST_TIMEOUT_MS 30000
#define JAN_31_LAST_SECONDS 1769903998 /* 2026-01-31T23:59:58Z */
#define FEB_1 1769904000               /* 2026-02-01T00:00:00Z */
#define MAR_1 1772323200               /* 2026-03-01T00:00:00Z */
#define THREADS 60

static struct tsupport_db test_db;
static struct cfg test_cfg;
static void *zctx;
static struct pool *pool;
static struct pool_stats stats;
static char user_id[40];

static void quota_test_setup(void)
{
    PGconn *conn;
    PGresult *res;

    log_init(LOG_LEVEL_ERR, NULL);
    tsupport_db_migrated(&test_db);
    test_cfg = (struct cfg){.database_url = test_db.url, .pool_threads = 2};
    zctx = zmq_ctx_new();
    pool = pool_new(zctx, &billing_pool_def, &test_cfg, TEST_ENDPOINT, 2);
    cr_assert_not_null(pool);

    conn = tsupport_connect(test_db.url);
    res = tsupport_query(conn,
                         "INSERT INTO user_accounts (email, password_hash, role_id)"
                         " SELECT 'quota@example.com', 'x', id FROM roles WHERE name = 'user'"
                         " RETURNING id",
                         0, NULL);
    cr_assert_eq(PQresultStatus(res), PGRES_TUPLES_OK, "%s", PQresultErrorMessage(res));
    snprintf(user_id, sizeof(user_id), "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    PQfinish(conn);
}

static void quota_test_teardown(void)
{
    pool_destroy(&pool);
    if (zctx != NULL)
        zmq_ctx_term(zctx);
    zctx = NULL;
    tsupport_db_destroy(&test_db);
}

TestSuite(quota, .init = quota_test_setup, .fini = quota_test_teardown, .timeout = 60);

/* A backend for this thread: its own client of the billing pool, as each front-end thread. */
struct backend {
    struct pool_client *client;
    struct http_quota_link link;
    struct quota_backend quota;
};

static void backend_open(struct backend *b)
{
    b->client = pool_client_new(zctx, TEST_ENDPOINT, &stats);
    cr_assert_not_null(b->client);
    b->link = (struct http_quota_link){b->client, TEST_TIMEOUT_MS};
    http_quota_backend(&b->link, &b->quota);
}

static void backend_close(struct backend *b)
{
    pool_client_destroy(&b->client);
}

/* used and leased of the user's row for `period`; -1 when there is none. */
static void row_read(const char *period, long *used, long *leased)
{
    PGconn *conn = tsupport_connect(test_db.url);
    const char *params[] = {user_id, period};
    PGresult *res = tsupport_query(
        conn, "SELECT used, leased FROM quota_usage WHERE user_id = $1 AND period_start = $2", 2,
        params);

    cr_assert_eq(PQresultStatus(res), PGRES_TUPLES_OK, "%s", PQresultErrorMessage(res));
    *used = PQntuples(res) == 1 ? strtol(PQgetvalue(res, 0, 0), NULL, 10) : -1;
    *leased = PQntuples(res) == 1 ? strtol(PQgetvalue(res, 0, 1), NULL, 10) : -1;
    PQclear(res);
    PQfinish(conn);
}

Test(quota, period_and_reset_are_calendar_months_in_utc)
{
    char period[QUOTA_PERIOD_BYTES];
    int64_t reset;

    quota_period(JAN_31_LAST_SECONDS, period, &reset);
    cr_expect_str_eq(period, "2026-01-01");
    cr_expect_eq(reset, FEB_1);
    quota_period(FEB_1, period, &reset);
    cr_expect_str_eq(period, "2026-02-01");
    cr_expect_eq(reset, MAR_1);
    quota_period(1798761599, period, &reset); /* 2026-12-31T23:59:59Z */
    cr_expect_str_eq(period, "2026-12-01");
    cr_expect_eq(reset, 1798761600); /* 2027-01-01 */
}

Test(quota, a_new_month_starts_a_new_count)
{
    struct quota *quota = quota_new();
    struct backend b;
    struct quota_state state;
    long used;
    long leased;

    backend_open(&b);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(quota_take(quota, &b.quota, user_id, 3, JAN_31_LAST_SECONDS, &state), 0);
        cr_expect_eq(state.remaining, 2 - i);
        cr_expect_eq(state.reset_at, FEB_1);
    }
    cr_expect_eq(quota_take(quota, &b.quota, user_id, 3, JAN_31_LAST_SECONDS + 1, &state),
                 M360_ELIMIT);
    cr_expect_eq(state.remaining, 0);

    cr_assert_eq(quota_take(quota, &b.quota, user_id, 3, FEB_1, &state), 0);
    cr_expect_eq(state.used, 1);
    cr_expect_eq(state.remaining, 2);
    cr_expect_eq(state.reset_at, MAR_1);

    cr_expect_eq(quota_settle(quota, &b.quota, FEB_1, true), 0);
    row_read("2026-01-01", &used, &leased);
    cr_expect_eq(used, 3);
    cr_expect_eq(leased, 0);
    row_read("2026-02-01", &used, &leased);
    cr_expect_eq(used, 1);
    cr_expect_eq(leased, 0);
    quota_destroy(&quota);
    backend_close(&b);
}

/* One thread's share of a burst: takes until refused or done. */
struct taker {
    struct quota *quota;
    int ok;
};

static void *taker_main(void *arg)
{
    struct taker *t = arg;
    struct backend b;
    struct quota_state state;

    backend_open(&b);
    if (quota_take(t->quota, &b.quota, user_id, 25, FEB_1, &state) == 0)
        t->ok++;
    backend_close(&b);
    return NULL;
}

Test(quota, concurrent_takes_in_two_tables_never_pass_the_limit)
{
    struct quota *tables[2] = {quota_new(), quota_new()};
    pthread_t threads[THREADS];
    struct taker takers[THREADS];
    struct backend b;
    int ok = 0;
    long used;
    long leased;

    for (int i = 0; i < THREADS; i++) {
        takers[i] = (struct taker){tables[i % 2], 0};
        pthread_create(&threads[i], NULL, taker_main, &takers[i]);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(threads[i], NULL);
        ok += takers[i].ok;
    }
    cr_expect_eq(ok, 25);

    backend_open(&b);
    for (int i = 0; i < 2; i++) {
        cr_expect_eq(quota_settle(tables[i], &b.quota, FEB_1, true), 0);
        quota_destroy(&tables[i]);
    }
    backend_close(&b);
    row_read("2026-02-01", &used, &leased);
    cr_expect_eq(used, 25);
    cr_expect_eq(leased, 0);
}

Test(quota, refunds_and_changed_limits)
{
    struct quota *quota = quota_new();
    struct backend b;
    struct quota_state state;
    long used;
    long leased;

    backend_open(&b);
    for (int i = 0; i < 40; i++)
        cr_assert_eq(quota_take(quota, &b.quota, user_id, 1000, FEB_1, &state), 0);
    quota_refund(quota, user_id, FEB_1);
    cr_expect_eq(quota_status(quota, &b.quota, user_id, 1000, FEB_1, &state), 0);
    cr_expect_eq(state.used, 39, "a refunded unit is not used");

    /* The plan shrank below what was used: the block goes back and nothing more is served. */
    quota_forget(quota, user_id);
    cr_expect_eq(quota_take(quota, &b.quota, user_id, 39, FEB_1, &state), M360_ELIMIT);
    row_read("2026-02-01", &used, &leased);
    cr_expect_eq(used, 39);
    cr_expect_eq(leased, 0, "the old block went back");

    /* Served units are settled on the timer; an idle block goes back after a while. */
    quota_forget(quota, user_id);
    cr_assert_eq(quota_take(quota, &b.quota, user_id, 100, FEB_1 + 1, &state), 0);
    cr_expect_eq(quota_settle(quota, &b.quota, FEB_1 + 2, false), 0);
    row_read("2026-02-01", &used, &leased);
    cr_expect_eq(used, 40);
    cr_expect_eq(quota_settle(quota, &b.quota, FEB_1 + 2 + QUOTA_IDLE_RETURN_S, false), 0);
    row_read("2026-02-01", &used, &leased);
    cr_expect_eq(leased, 0, "an idle block went back");
    quota_destroy(&quota);
    backend_close(&b);
}

#define BUSY_THREADS 8
#define BUSY_TAKES 2000

static void *busy_main(void *arg)
{
    struct quota *quota = arg;
    struct backend b;
    struct quota_state state;
    long ok = 0;

    backend_open(&b);
    for (int i = 0; i < BUSY_TAKES; i++)
        ok += quota_take(quota, &b.quota, user_id, 1000000, FEB_1, &state) == 0;
    backend_close(&b);
    return (void *)ok;
}

/* Many takes of one user at once: blocks are leased ahead while the held ones are served,
 * and the row adds up to exactly what was served. */
Test(quota, a_busy_user_is_counted_exactly_while_blocks_are_leased_ahead)
{
    struct quota *quota = quota_new();
    pthread_t threads[BUSY_THREADS];
    struct backend b;
    long ok = 0;
    long used;
    long leased;

    for (int i = 0; i < BUSY_THREADS; i++)
        pthread_create(&threads[i], NULL, busy_main, quota);
    for (int i = 0; i < BUSY_THREADS; i++) {
        void *taken;

        pthread_join(threads[i], &taken);
        ok += (long)taken;
    }
    cr_expect_eq(ok, BUSY_THREADS * BUSY_TAKES);

    backend_open(&b);
    cr_expect_eq(quota_settle(quota, &b.quota, FEB_1, true), 0);
    backend_close(&b);
    quota_destroy(&quota);
    row_read("2026-02-01", &used, &leased);
    cr_expect_eq(used, BUSY_THREADS * BUSY_TAKES);
    cr_expect_eq(leased, 0);
}

/* Many more users than one settlement call carries: at shutdown every block goes back. */
Test(quota, every_block_goes_back_when_many_users_hold_one)
{
    enum { USERS = 4000 };
    struct quota *quota = quota_new();
    struct backend b;
    struct quota_state state;
    PGconn *conn = tsupport_connect(test_db.url);
    PGresult *res = tsupport_query(conn,
                                   "INSERT INTO user_accounts (email, password_hash, role_id)"
                                   " SELECT 'many' || n || '@example.com', 'x', r.id"
                                   "   FROM generate_series(1, 4000) AS n, roles r"
                                   "  WHERE r.name = 'user'"
                                   " RETURNING id",
                                   0, NULL);

    cr_assert_eq(PQntuples(res), USERS, "%s", PQresultErrorMessage(res));
    backend_open(&b);
    for (int i = 0; i < USERS; i++)
        cr_assert_eq(quota_take(quota, &b.quota, PQgetvalue(res, i, 0), 1000, FEB_1, &state), 0);
    PQclear(res);

    cr_expect_eq(quota_settle(quota, &b.quota, FEB_1, true), 0);
    cr_expect_eq(tsupport_scalar(conn,
                                 "SELECT count(*) FROM quota_usage"
                                 " WHERE period_start = '2026-02-01' AND used = 1 AND leased = 0",
                                 0, NULL),
                 USERS, "some blocks were kept at shutdown");
    quota_destroy(&quota);
    backend_close(&b);
    PQfinish(conn);
}
