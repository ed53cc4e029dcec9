/* SPDX-License-Identifier: MIT */
/* The db module against a real cluster: statements, error mapping, transactions, reconnect. */
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "manas360/db.h"
#include "manas360/err.h"
#include "manas360/log.h"
#include "test_support.h"

static const char db_test_schema[] =
    "CREATE TABLE gadgets (id int PRIMARY KEY,"
    " name text NOT NULL CONSTRAINT gadgets_name_key UNIQUE,"
    " price bigint NOT NULL CONSTRAINT gadgets_price_check CHECK (price >= 0))";

static const struct db_stmt db_test_stmts[] = {
    {"gadget_insert", "INSERT INTO gadgets (id, name, price) VALUES ($1, $2, $3)", 3},
    {"gadget_count", "SELECT count(*) FROM gadgets", 0},
    {"gadget_name", "SELECT name FROM gadgets WHERE id = $1", 1},
    {"backend_pid", "SELECT pg_backend_pid()", 0},
};

static struct tsupport_db test_db;
static struct db *db;

static void db_test_setup(void)
{
    log_init(LOG_LEVEL_ERR, NULL);
    tsupport_db_empty(&test_db);
    db = db_new(test_db.url);
    cr_assert_not_null(db);
    cr_assert_eq(db_exec_script(db, db_test_schema, NULL), 0);
    cr_assert_eq(db_prepare(db, db_test_stmts, sizeof(db_test_stmts) / sizeof(db_test_stmts[0])),
                 0);
}

static void db_test_teardown(void)
{
    db_destroy(&db);
    tsupport_db_destroy(&test_db);
}

TestSuite(db, .init = db_test_setup, .fini = db_test_teardown);

static int insert_gadget(struct db *conn, const char *id, const char *name, const char *price)
{
    const char *params[] = {id, name, price};

    return db_exec(conn, "gadget_insert", 3, params, NULL);
}

/* Runs a parameterless statement that answers one number. */
static long scalar_of(const char *stmt)
{
    PGresult *res = NULL;
    long n;

    cr_assert_eq(db_exec(db, stmt, 0, NULL, &res), 0);
    n = strtol(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return n;
}

static long count_gadgets(void)
{
    return scalar_of("gadget_count");
}

Test(db, parameters_are_data_not_sql)
{
    const char *params[] = {"1"};
    PGresult *res = NULL;

    cr_assert_eq(insert_gadget(db, "1", "x'); DROP TABLE gadgets; --", "5"), 0);
    cr_assert_eq(db_exec(db, "gadget_name", 1, params, &res), 0);
    cr_expect_str_eq(PQgetvalue(res, 0, 0), "x'); DROP TABLE gadgets; --");
    PQclear(res);
    cr_expect_eq(count_gadgets(), 1);
}

Test(db, errors_map_to_status_codes)
{
    cr_assert_eq(insert_gadget(db, "1", "lamp", "5"), 0);

    cr_expect_eq(insert_gadget(db, "2", "lamp", "5"), M360_ECONFLICT);
    cr_expect_str_eq(db_last_sqlstate(db), "23505");
    cr_expect_str_eq(db_last_constraint(db), "gadgets_name_key");

    cr_expect_eq(insert_gadget(db, "3", "desk", "-1"), M360_EINVAL);
    cr_expect_str_eq(db_last_constraint(db), "gadgets_price_check");

    cr_expect_eq(insert_gadget(db, "4", "chair", "not a number"), M360_EINVAL);
    cr_expect_eq(db_exec(db, "no_such_statement", 0, NULL, NULL), M360_EDB);
    cr_expect_eq(count_gadgets(), 1);
}

Test(db, sqlstate_mapping)
{
    cr_expect_eq(db_sqlstate_to_err("23505"), M360_ECONFLICT);
    cr_expect_eq(db_sqlstate_to_err("23514"), M360_EINVAL);
    cr_expect_eq(db_sqlstate_to_err("23503"), M360_EINVAL);
    cr_expect_eq(db_sqlstate_to_err("22P02"), M360_EINVAL);
    cr_expect_eq(db_sqlstate_to_err("57014"), M360_ETIMEDOUT);
    cr_expect_eq(db_sqlstate_to_err("57P01"), M360_EUNAVAILABLE);
    cr_expect_eq(db_sqlstate_to_err("08006"), M360_EUNAVAILABLE);
    cr_expect_eq(db_sqlstate_to_err(""), M360_EUNAVAILABLE);
    cr_expect_eq(db_sqlstate_to_err("42P01"), M360_EDB);
    cr_expect_eq(err_http_status(M360_ECONFLICT), 409);
    cr_expect_str_eq(err_api_name(M360_EINVAL), "ValidationError");
    cr_expect_str_eq(err_api_name(M360_EUNAVAILABLE), "ServiceUnavailable");
    cr_expect_eq(err_http_status(M360_EDB), 500);
}

static int insert_two_then(struct db *conn, void *arg)
{
    int rc = insert_gadget(conn, "10", "first", "1");

    if (rc == 0)
        rc = insert_gadget(conn, "11", arg, "1");
    return rc;
}

Test(db, transaction_commits_or_rolls_back_whole)
{
    cr_expect_eq(db_tx(db, insert_two_then, "first"), M360_ECONFLICT);
    cr_expect_str_eq(db_last_constraint(db), "gadgets_name_key");
    cr_expect_eq(count_gadgets(), 0);

    cr_expect_eq(db_tx(db, insert_two_then, "second"), 0);
    cr_expect_eq(count_gadgets(), 2);
}

Test(db, reconnects_and_reprepares_after_the_backend_dies)
{
    PGconn *admin = tsupport_connect(test_db.url);
    long before = scalar_of("backend_pid");
    char pid_text[32];
    const char *params[] = {pid_text};

    snprintf(pid_text, sizeof(pid_text), "%ld", before);
    cr_assert_eq(tsupport_scalar(admin,
                                 "SELECT count(*) FROM (SELECT pg_terminate_backend($1))"
                                 " t",
                                 1, params),
                 1);
    PQfinish(admin);

    cr_expect_eq(insert_gadget(db, "1", "after-restart", "3"), 0);
    cr_expect_neq(scalar_of("backend_pid"), before);
    cr_expect(db_ok(db));
}

Test(db, unreachable_server_gives_null)
{
    struct db *nowhere = db_new("postgresql:///x?host=/nonexistent-socket-dir&connect_timeout=1");

    cr_expect_null(nowhere);
}
