/* SPDX-License-Identifier: MIT */
/* The manas360d binary from outside: command line, configuration errors, serving /healthz. */
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "test_support.h"

/* The suite's database, var folder, port and environment; nothing runs until a test says. */
static struct tsupport_server server;

static void cli_setup(void)
{
    tsupport_server_prepare(&server);
}

static void cli_teardown(void)
{
    tsupport_server_destroy(&server);
}

TestSuite(cli, .init = cli_setup, .fini = cli_teardown);

static int run(const char *arg1, const char *arg2, char *const envp[], char **out, char **err)
{
    char *argv[] = {(char *)tsupport_server_bin(), (char *)arg1, (char *)arg2, NULL};

    return tsupport_run(argv, envp, out, err);
}

Test(cli, help_and_version)
{
    char *out = NULL;

    cr_expect_eq(run("--help", NULL, NULL, &out, NULL), 0);
    cr_expect(strstr(out, "migrate --status") != NULL, "%s", out);
    cr_expect(strstr(out, "serve") != NULL);
    free(out);

    cr_expect_eq(run("--version", NULL, NULL, &out, NULL), 0);
    cr_expect_eq(strncmp(out, "manas360d ", 10), 0, "%s", out);
    free(out);
}

Test(cli, unknown_commands_and_options_exit_2_with_usage)
{
    static const char *const cases[][2] = {
        {NULL, NULL},     {"launch", NULL},       {"--verbose", NULL},
        {"serve", "--x"}, {"migrate", "--force"}, {"migrate", "status"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *err = NULL;

        cr_expect_eq(run(cases[i][0], cases[i][1], NULL, NULL, &err), 2, "case %zu", i);
        cr_expect_eq(strncmp(err, "usage: manas360d", 16), 0, "case %zu: %s", i, err);
        free(err);
    }
}

Test(cli, bad_configuration_exits_2_naming_each_variable)
{
    char *const envp[] = {"PORT=0", "JWT_EXPIRY=soon", "LOG_LEVEL=chatty", NULL};
    char *err = NULL;

    cr_expect_eq(run("serve", NULL, envp, NULL, &err), 2);
    cr_expect(strstr(err, "config: PORT: ") != NULL, "%s", err);
    cr_expect(strstr(err, "config: JWT_EXPIRY: ") != NULL, "%s", err);
    cr_expect(strstr(err, "config: LOG_LEVEL: ") != NULL, "%s", err);
    cr_expect(strstr(err, "config: DATABASE_URL: is required") != NULL, "%s", err);
    cr_expect(strstr(err, "config: JWT_SECRET: is required") != NULL, "%s", err);
    free(err);
}

Test(cli, migrate_status_on_a_migrated_database)
{
    char *out = NULL;

    cr_expect_eq(run("migrate", "--status", server.env, &out, NULL), 0);
    cr_expect(strstr(out, "applied  001_create_payment_schema.sql") != NULL, "%s", out);
    cr_expect(strstr(out, "0 pending, 0 changed") != NULL, "%s", out);
    free(out);

    cr_expect_eq(run("migrate", NULL, server.env, &out, NULL), 0);
    cr_expect_str_eq(out, "applied 0 migrations\n");
    free(out);
}

Test(cli, serve_refuses_an_unmigrated_database)
{
    struct tsupport_db empty;
    char url[600];
    char *envp[TSUPPORT_ENV_MAX + 2];
    char *err = NULL;

    tsupport_db_empty(&empty);
    snprintf(url, sizeof(url), "DATABASE_URL=%s", empty.url);
    {
        const char *const extra[] = {url, NULL};

        tsupport_server_envp(&server, extra, envp, sizeof(envp) / sizeof(envp[0]));
        cr_expect_eq(run("serve", NULL, envp, NULL, &err), 1);
    }
    cr_expect(strstr(err, "event=schema_not_current") != NULL, "%s", err);
    free(err);
    tsupport_db_destroy(&empty);
}

Test(cli, serves_healthz_and_the_error_conventions)
{
    const char *const good_id[] = {"X-Request-Id: abc.DEF_123-x", NULL};
    const char *const bad_id[] = {"X-Request-Id: has space", NULL};
    int port = server.port;
    char *body = NULL;
    char *headers = NULL;

    tsupport_server_start(&server, NULL);

    cr_expect_eq(tsupport_http(port, "GET", "/healthz", good_id, NULL, &body, &headers), 200);
    cr_expect_str_eq(body, "{\"success\":true}");
    cr_expect(strstr(headers, "X-Request-Id: abc.DEF_123-x\r\n") != NULL, "%s", headers);
    cr_expect(strstr(headers, "Content-Type: application/json; charset=utf-8") != NULL);
    free(body);
    free(headers);

    cr_expect_eq(tsupport_http(port, "GET", "/healthz", bad_id, NULL, NULL, &headers), 200);
    cr_expect(strstr(headers, "X-Request-Id: has space") == NULL, "%s", headers);
    cr_expect(strstr(headers, "X-Request-Id: ") != NULL, "%s", headers);
    free(headers);

    cr_expect_eq(tsupport_http(port, "GET", "/no/such/route", NULL, NULL, &body, NULL), 404);
    cr_expect(strstr(body, "\"error\":\"NotFound\"") != NULL, "%s", body);
    cr_expect(strstr(body, "\"success\":false") != NULL, "%s", body);
    free(body);

    cr_expect_eq(tsupport_http(port, "DELETE", "/healthz", NULL, NULL, &body, &headers), 405);
    cr_expect(strstr(body, "\"error\":\"MethodNotAllowed\"") != NULL, "%s", body);
    cr_expect(strstr(headers, "Allow: GET\r\n") != NULL, "%s", headers);
    free(body);
    free(headers);

    /* SIGTERM, then a clean exit 0: a leak found by the sanitizer build would fail here. */
    cr_expect_eq(tsupport_server_stop(&server), 0);
}
