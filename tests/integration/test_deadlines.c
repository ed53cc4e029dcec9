/* SPDX-License-Identifier: MIT */
/*
 * Deadlines: a change whose caller was told 503 must not have happened. A refresh held up
 * by a lock past POOL_TIMEOUT is rolled back, so the client's retry with the same token is
 * a fresh refresh and not a reuse that would end its session.
 */
#include <string.h>

#include <criterion/criterion.h>

#include "test_support.h"

#define PASSWORD "correct horse battery"

static struct tsupport_server server;

static void deadlines_setup(void)
{
    const char *extra[] = {"POOL_TIMEOUT=2s", NULL};

    tsupport_server_start(&server, extra);
}

static void deadlines_teardown(void)
{
    tsupport_server_destroy(&server);
}

TestSuite(deadlines, .init = deadlines_setup, .fini = deadlines_teardown);

static void refresh(const char *token, struct tsupport_response *res)
{
    char body[2200];

    snprintf(body, sizeof(body), "{\"refreshToken\":\"%s\"}", token);
    tsupport_json(server.port, "POST", "/api/auth/refresh", NULL, body, res);
}

Test(deadlines, refresh_answered_503_is_rolled_back)
{
    struct tsupport_user user;
    struct tsupport_response res;
    const char *params[1];
    PGconn *locker;
    PGresult *held;

    tsupport_user_new(server.port, "slow@example.com", PASSWORD, &user);

    /* Another transaction holds the user's token rows past the pool's deadline. */
    locker = tsupport_connect(server.db.url);
    PQclear(tsupport_query(locker, "BEGIN", 0, NULL));
    params[0] = user.id;
    held = tsupport_query(locker, "SELECT id FROM tokens WHERE user_id = $1 FOR UPDATE", 1, params);
    cr_assert_eq(PQresultStatus(held), PGRES_TUPLES_OK, "%s", PQresultErrorMessage(held));
    PQclear(held);

    refresh(user.refresh, &res);
    tsupport_expect_error(&res, 503, "ServiceUnavailable");
    tsupport_response_cleanup(&res);
    PQclear(tsupport_query(locker, "COMMIT", 0, NULL));
    PQfinish(locker);

    /* Nothing happened: the same token refreshes, and the session lives on. */
    refresh(user.refresh, &res);
    cr_expect_eq(res.status, 200, "%s", res.body);
    cr_expect(tsupport_str(res.json, "accessToken") != NULL, "%s", res.body);
    tsupport_response_cleanup(&res);
    tsupport_json(server.port, "GET", "/api/sessions", user.access, NULL, &res);
    cr_expect_eq(res.status, 200, "%s", res.body);
    tsupport_response_cleanup(&res);

    cr_expect_eq(tsupport_server_stop(&server), 0);
}
