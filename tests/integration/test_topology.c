/* SPDX-License-Identifier: MIT */
/*
 * The server split across processes: the front end alone, the four pools alone, talking over
 * tcp://. A pools process that dies gets prompt 503s, not hangs; a new one is picked up.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "test_support.h"

#define PASSWORD "correct horse battery"
#define POOL_TIMEOUT_S 2
#define ANSWER_SLACK_S 0.75    /* scheduling noise on top of POOL_TIMEOUT, for a sanitizer build */
#define READY_TIMEOUT_MS 20000 /* a sanitizer build starting two processes on a busy host */
#define RECOVER_TIMEOUT_MS 10000

static const char *const pool_names[] = {"AUTH", "BILLING", "AUDIT", "NOTIFIER"};

static struct tsupport_server server;
static pid_t pools_pid = -1;
static char pools_log[600];
static char endpoint_env[5][96];
static const char *split_env[7];

static void topology_setup(void)
{
    tsupport_server_prepare(&server);
    for (int i = 0; i < 4; i++) {
        snprintf(endpoint_env[i], sizeof(endpoint_env[i]), "%s_POOL_ENDPOINT=tcp://127.0.0.1:%d",
                 pool_names[i], tsupport_free_port());
        split_env[i] = endpoint_env[i];
    }
    snprintf(endpoint_env[4], sizeof(endpoint_env[4]), "AUDIT_INGEST_ENDPOINT=tcp://127.0.0.1:%d",
             tsupport_free_port());
    split_env[4] = endpoint_env[4];
    split_env[5] = "POOL_TIMEOUT=2s";
    split_env[6] = NULL;
}

static void topology_teardown(void)
{
    if (pools_pid > 0) {
        kill(pools_pid, SIGKILL);
        waitpid(pools_pid, NULL, 0);
        pools_pid = -1;
    }
    tsupport_server_destroy(&server);
}

TestSuite(topology, .init = topology_setup, .fini = topology_teardown);

static pid_t pools_start(const char *log_name)
{
    static const char *const args[] = {"serve", "--pools=auth,billing,audit,notifier", NULL};

    return tsupport_server_launch(&server, args, split_env, log_name, pools_log, sizeof(pools_log));
}

/* Polls GET `path` until it answers `status`; false after `timeout_ms`. */
static bool wait_for(const char *method, const char *path, const char *body, long status,
                     int timeout_ms)
{
    long long until = tsupport_now_ms() + timeout_ms;

    while (tsupport_now_ms() < until) {
        struct tsupport_response res;
        long got;

        tsupport_json(server.port, method, path, NULL, body, &res);
        got = res.status;
        tsupport_response_cleanup(&res);
        if (got == status)
            return true;
        usleep(100000);
    }
    return false;
}

/* A 503 ServiceUnavailable with Retry-After, answered within POOL_TIMEOUT. */
static void expect_unavailable(const char *method, const char *path, const char *token,
                               const char *body)
{
    struct tsupport_response res;
    char retry[32];

    tsupport_json(server.port, method, path, token, body, &res);
    cr_expect_eq(res.status, 503, "%s %s: %ld %s %s", method, path, res.status, res.body,
                 res.curl_error);
    if (res.status == 503)
        tsupport_expect_error(&res, 503, "ServiceUnavailable");
    cr_expect(tsupport_header(&res, "Retry-After", retry, sizeof(retry)) != NULL &&
                  strspn(retry, "0123456789") == strlen(retry) && strlen(retry) > 0,
              "%s %s: no whole-seconds Retry-After:\n%s", method, path, res.headers);
    cr_expect(res.seconds <= POOL_TIMEOUT_S + ANSWER_SLACK_S,
              "%s %s took %.2f s, longer than POOL_TIMEOUT", method, path, res.seconds);
    cr_expect(tsupport_header(&res, "X-Request-Id", retry, sizeof(retry)) != NULL,
              "%s %s: 503 without X-Request-Id", method, path);
    tsupport_response_cleanup(&res);
}

Test(topology, front_end_and_pools_in_separate_processes)
{
    static const char *const front_args[] = {"serve", "--front-end", NULL};
    static const char login_body[] =
        "{\"email\":\"split@example.com\",\"password\":\"" PASSWORD "\"}";
    struct tsupport_user user;
    struct tsupport_response res;
    long long killed_at;

    pools_pid = pools_start("pools");
    server.pid = tsupport_server_launch(&server, front_args, split_env, "front-end",
                                        server.log_path, sizeof(server.log_path));
    cr_assert(wait_for("GET", "/readyz", NULL, 200, READY_TIMEOUT_MS),
              "/readyz never answered 200 with the pools in another process");

    /* Across processes: register, login, profile. */
    tsupport_user_new(server.port, "split@example.com", PASSWORD, &user);
    tsupport_json(server.port, "GET", "/api/profile", user.access, NULL, &res);
    cr_expect_eq(res.status, 200, "%s", res.body);
    cr_expect_str_eq(tsupport_str(res.json, "user.email"), "split@example.com");
    tsupport_response_cleanup(&res);

    /* The pools die without a word. */
    cr_assert_eq(kill(pools_pid, SIGKILL), 0);
    cr_assert_eq(waitpid(pools_pid, NULL, 0), pools_pid);
    pools_pid = -1;
    killed_at = tsupport_now_ms();

    expect_unavailable("GET", "/api/sessions", user.access, NULL);
    expect_unavailable("POST", "/api/auth/login", NULL, login_body);
    cr_expect(tsupport_now_ms() - killed_at <= 2 * (POOL_TIMEOUT_S + ANSWER_SLACK_S) * 1000,
              "the first 503s took %lld ms", tsupport_now_ms() - killed_at);
    expect_unavailable("POST", "/api/auth/register", NULL,
                       "{\"email\":\"late@example.com\",\"password\":\"" PASSWORD "\"}");
    expect_unavailable("POST", "/api/auth/logout", user.access, NULL);

    /* The front end's account cache needs no pool: a profile it holds is still served, and
     * still true, since changes are announced by the database, not by the pools. */
    tsupport_json(server.port, "GET", "/api/profile", user.access, NULL, &res);
    cr_expect_eq(res.status, 200, "%s", res.body);
    tsupport_response_cleanup(&res);

    tsupport_json(server.port, "GET", "/readyz", NULL, NULL, &res);
    tsupport_expect_error(&res, 503, "ServiceUnavailable");
    cr_expect(res.seconds <= POOL_TIMEOUT_S + ANSWER_SLACK_S, "/readyz took %.2f s", res.seconds);
    tsupport_response_cleanup(&res);
    tsupport_json(server.port, "GET", "/healthz", NULL, NULL, &res);
    cr_expect_eq(res.status, 200, "the front end itself is alive: %s", res.body);
    tsupport_response_cleanup(&res);

    /* A new pools process: picked up again within a few seconds. */
    pools_pid = pools_start("pools-restarted");
    cr_expect(wait_for("POST", "/api/auth/login", login_body, 200, RECOVER_TIMEOUT_MS),
              "login did not work again after the pools restarted");
    cr_expect(wait_for("GET", "/readyz", NULL, 200, RECOVER_TIMEOUT_MS),
              "/readyz did not answer 200 again");
    tsupport_json(server.port, "GET", "/api/profile", user.access, NULL, &res);
    cr_expect_eq(res.status, 200, "the session survived the pools' restart: %s", res.body);
    tsupport_response_cleanup(&res);

    /* Both stop cleanly. */
    cr_expect_eq(tsupport_server_stop(&server), 0, "the front end did not stop cleanly");
    cr_expect_eq(tsupport_process_stop(pools_pid, pools_log), 0,
                 "the pools process did not stop cleanly");
    pools_pid = -1;
}

static int run_serve(const char *option, char **err)
{
    char *argv[] = {(char *)tsupport_server_bin(), "serve", (char *)option, NULL};

    return tsupport_run(argv, server.env, NULL, err);
}

Test(topology, front_end_alone_needs_reachable_endpoints)
{
    char *err = NULL;

    /* The defaults are inproc://, which another process cannot reach. */
    cr_expect_eq(run_serve("--front-end", &err), 2);
    cr_expect(strstr(err, "AUTH_POOL_ENDPOINT") != NULL, "%s", err);
    cr_expect(strstr(err, "config: AUTH_POOL_ENDPOINT: ") != NULL, "%s", err);
    free(err);

    cr_expect_eq(run_serve("--pools=auth", &err), 2);
    cr_expect(strstr(err, "config: AUTH_POOL_ENDPOINT: ") != NULL, "%s", err);
    free(err);
}

Test(topology, unknown_pools_exit_2_with_usage)
{
    static const char *const options[] = {"--pools=bogus",      "--pools=",      "--pools=auth,",
                                          "--pools=auth,bogus", "--pools=,auth", NULL};

    for (int i = 0; options[i] != NULL; i++) {
        char *err = NULL;

        cr_expect_eq(run_serve(options[i], &err), 2, "%s", options[i]);
        cr_expect_eq(strncmp(err, "usage: manas360d", 16), 0, "%s: %s", options[i], err);
        free(err);
    }
}
