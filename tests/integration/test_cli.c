/* SPDX-License-Identifier: MIT */
/* The manas360d binary from outside: command line, configuration errors, serving /healthz. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "test_support.h"

#define SECRET_ENV_A "JWT_SECRET=0123456789abcdef0123456789abcdef-a"
#define SECRET_ENV_B "JWT_REFRESH_SECRET=0123456789abcdef0123456789abcdef-b"
#define SECRET_ENV_C "BILLING_WEBHOOK_SECRET=0123456789abcdef0123456789abcdef-c"

static struct tsupport_db test_db;
static char *var_dir;
static char env_url[600];
static char env_var_dir[300];
static char env_migrations[300];
static char env_port[32];
static int port;

static void cli_setup(void)
{
    tsupport_db_migrated(&test_db);
    var_dir = tsupport_tempdir();
    port = tsupport_free_port();
    snprintf(env_url, sizeof(env_url), "DATABASE_URL=%s", test_db.url);
    snprintf(env_var_dir, sizeof(env_var_dir), "MANAS360_VAR_DIR=%s", var_dir);
    snprintf(env_migrations, sizeof(env_migrations), "MIGRATIONS_DIR=%s",
             tsupport_migrations_dir());
    snprintf(env_port, sizeof(env_port), "PORT=%d", port);
}

static void cli_teardown(void)
{
    char command[512];

    tsupport_db_destroy(&test_db);
    snprintf(command, sizeof(command), "rm -rf '%s'", var_dir);
    cr_expect_eq(system(command), 0);
    free(var_dir);
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
    char *const envp[] = {env_url,      env_var_dir, env_migrations, SECRET_ENV_A, SECRET_ENV_B,
                          SECRET_ENV_C, NULL};
    char *out = NULL;

    cr_expect_eq(run("migrate", "--status", envp, &out, NULL), 0);
    cr_expect(strstr(out, "applied  001_create_payment_schema.sql") != NULL, "%s", out);
    cr_expect(strstr(out, "0 pending, 0 changed") != NULL, "%s", out);
    free(out);

    cr_expect_eq(run("migrate", NULL, envp, &out, NULL), 0);
    cr_expect_str_eq(out, "applied 0 migrations\n");
    free(out);
}

Test(cli, serve_refuses_an_unmigrated_database)
{
    struct tsupport_db empty;
    char url[600];
    char *err = NULL;

    tsupport_db_empty(&empty);
    snprintf(url, sizeof(url), "DATABASE_URL=%s", empty.url);
    {
        char *const envp[] = {url,          env_var_dir,  env_migrations, env_port,
                              SECRET_ENV_A, SECRET_ENV_B, SECRET_ENV_C,   NULL};
        cr_expect_eq(run("serve", NULL, envp, NULL, &err), 1);
    }
    cr_expect(strstr(err, "event=schema_not_current") != NULL, "%s", err);
    free(err);
    tsupport_db_destroy(&empty);
}

static pid_t start_server(const char *log_path)
{
    char *const envp[] = {env_url,      env_var_dir,  env_migrations, env_port,
                          SECRET_ENV_A, SECRET_ENV_B, SECRET_ENV_C,   NULL};
    char *argv[] = {(char *)tsupport_server_bin(), "serve", NULL};
    pid_t pid = tsupport_spawn(argv, envp, log_path);

    cr_assert(tsupport_wait_healthy(port, 10000), "server did not come up");
    return pid;
}

Test(cli, serves_healthz_and_the_error_conventions)
{
    const char *const good_id[] = {"X-Request-Id: abc.DEF_123-x", NULL};
    const char *const bad_id[] = {"X-Request-Id: has space", NULL};
    char log_path[400];
    char *body = NULL;
    char *headers = NULL;
    pid_t pid;

    snprintf(log_path, sizeof(log_path), "%s/server.log", var_dir);
    pid = start_server(log_path);

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

    cr_assert_eq(kill(pid, SIGTERM), 0);
    cr_expect_eq(tsupport_wait(pid, 10000), 0);
}
