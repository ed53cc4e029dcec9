/* SPDX-License-Identifier: MIT */
/* Configuration: defaults, every bad value reported on its own line, secrets. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <criterion/criterion.h>
#include <sodium.h>

#include "manas360/cfg.h"
#include "manas360/err.h"
#include "manas360/log.h"
#include "test_support.h"

#define LONG_SECRET_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define LONG_SECRET_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define LONG_SECRET_C "cccccccccccccccccccccccccccccccccccccccc"

static char *problems_text;
static size_t problems_len;
static FILE *problems;

/* Each Criterion test runs in its own process, so setenv() here touches no other test. */
static void cfg_test_setup(void)
{
    cr_assert_geq(sodium_init(), 0);
    problems = open_memstream(&problems_text, &problems_len);
    setenv("DATABASE_URL", "postgresql:///manas360?host=/tmp", 1);
}

static void cfg_test_teardown(void)
{
    if (problems != NULL)
        fclose(problems);
    free(problems_text);
}

static void cfg_set_production_secrets(void)
{
    setenv("JWT_SECRET", LONG_SECRET_A, 1);
    setenv("JWT_REFRESH_SECRET", LONG_SECRET_B, 1);
    setenv("BILLING_WEBHOOK_SECRET", LONG_SECRET_C, 1);
}

/* Loads and returns the problems text (flushed). */
static int cfg_test_load(struct cfg *cfg)
{
    int rc = cfg_load(cfg, problems);

    fflush(problems);
    return rc;
}

static int count_lines(const char *text)
{
    int n = 0;

    for (; *text != '\0'; text++)
        n += *text == '\n';
    return n;
}

/* Expects a problem line starting with `text` among those reported. */
static void expect_problem(const char *text)
{
    cr_expect(strstr(problems_text, text) != NULL, "no '%s' in:\n%s", text, problems_text);
}

TestSuite(cfg, .init = cfg_test_setup, .fini = cfg_test_teardown);

Test(cfg, defaults_in_production_with_secrets)
{
    struct cfg cfg;

    cfg_set_production_secrets();
    cr_assert_eq(cfg_test_load(&cfg), 0, "problems: %s", problems_text);
    cr_expect_eq(cfg.env, CFG_ENV_PRODUCTION);
    cr_expect_eq(cfg.port, 5001);
    cr_expect_eq(cfg.jwt_expiry_s, 24 * 3600);
    cr_expect_eq(cfg.jwt_refresh_expiry_s, 7 * 86400);
    cr_expect_eq(cfg.session_idle_timeout_s, 7 * 86400);
    cr_expect_eq(cfg.audit_retention_days, 90);
    cr_expect_eq(cfg.subscription_sweep_interval_s, 30);
    cr_expect_eq(cfg.smtp_port, 587);
    cr_expect_null(cfg.smtp_host);
    cr_expect_str_eq(cfg.mail_dir, "var/mail");
    cr_expect_str_eq(cfg.events_endpoint, "ipc://var/events.sock");
    cr_expect_str_eq(cfg.app_base_url, "http://localhost:5001");
    cr_expect_str_eq(cfg.migrations_dir, "migrations");
    cr_expect_eq(cfg.log_level, LOG_LEVEL_INFO);
    cr_expect_str_eq(problems_text, "");
    cfg_cleanup(&cfg);
    cr_expect_null(cfg.jwt_secret);
}

Test(cfg, production_requires_each_secret_by_name)
{
    struct cfg cfg;

    cr_assert_eq(cfg_test_load(&cfg), M360_EINVAL);
    cr_expect_eq(count_lines(problems_text), 3, "%s", problems_text);
    expect_problem("config: JWT_SECRET: is required");
    expect_problem("config: JWT_REFRESH_SECRET: is required");
    expect_problem("config: BILLING_WEBHOOK_SECRET: is required");
}

Test(cfg, short_secret_refused_outside_development_without_echoing_it)
{
    struct cfg cfg;

    cfg_set_production_secrets();
    setenv("JWT_SECRET", "too-short-secret-value", 1);
    cr_assert_eq(cfg_test_load(&cfg), M360_EINVAL);
    cr_expect_eq(count_lines(problems_text), 1, "%s", problems_text);
    expect_problem("config: JWT_SECRET: must be at least 32 bytes");
    cr_expect(strstr(problems_text, "too-short-secret-value") == NULL);
}

Test(cfg, short_secret_accepted_in_development)
{
    struct cfg cfg;
    char *dir = tsupport_tempdir();

    setenv("MANAS360_ENV", "development", 1);
    setenv("MANAS360_VAR_DIR", dir, 1);
    setenv("JWT_SECRET", "dev-secret", 1);
    cr_assert_eq(cfg_test_load(&cfg), 0, "%s", problems_text);
    cr_expect_str_eq(cfg.jwt_secret, "dev-secret");
    cfg_cleanup(&cfg);
    free(dir);
}

Test(cfg, development_generates_secrets_once_with_private_modes)
{
    struct cfg first;
    struct cfg second;
    struct stat st;
    char path[512];
    char *dir = tsupport_tempdir();

    setenv("MANAS360_ENV", "development", 1);
    setenv("MANAS360_VAR_DIR", dir, 1);
    cr_assert_eq(cfg_test_load(&first), 0, "%s", problems_text);
    cr_assert_eq(cfg_test_load(&second), 0, "%s", problems_text);

    cr_expect_eq(strlen(first.jwt_secret), 64);
    cr_expect_str_eq(first.jwt_secret, second.jwt_secret);
    cr_expect_str_eq(first.jwt_refresh_secret, second.jwt_refresh_secret);
    cr_expect_str_eq(first.billing_webhook_secret, second.billing_webhook_secret);
    cr_expect_str_neq(first.jwt_secret, first.jwt_refresh_secret);

    snprintf(path, sizeof(path), "%s/secrets", dir);
    cr_assert_eq(stat(path, &st), 0);
    cr_expect_eq(st.st_mode & 0777, 0700);
    snprintf(path, sizeof(path), "%s/secrets/jwt_secret", dir);
    cr_assert_eq(stat(path, &st), 0);
    cr_expect_eq(st.st_mode & 0777, 0600);

    cfg_cleanup(&first);
    cfg_cleanup(&second);
    free(dir);
}

Test(cfg, every_bad_value_gets_its_own_line)
{
    static const char *const bad[][2] = {
        {"PORT", "abc"},
        {"HTTP_THREADS", "0"},
        {"POOL_THREADS", "1000"},
        {"JWT_EXPIRY", "10x"},
        {"JWT_REFRESH_EXPIRY", "-1d"},
        {"SESSION_IDLE_TIMEOUT", "7w"},
        {"SMTP_PORT", "70000"},
        {"APP_BASE_URL", "ftp://example.com"},
        {"EVENTS_ENDPOINT", "udp://127.0.0.1:1"},
        {"LOG_LEVEL", "loud"},
        {"MANAS360_ENV", "staging"},
        {"AUDIT_RETENTION_DAYS", "30"},
        {"SUBSCRIPTION_SWEEP_INTERVAL", "2h"},
        {"SMTP_FROM", "nobody"},
    };
    size_t count = sizeof(bad) / sizeof(bad[0]);
    struct cfg cfg;
    char want[128];

    cfg_set_production_secrets();
    unsetenv("DATABASE_URL");
    for (size_t i = 0; i < count; i++)
        setenv(bad[i][0], bad[i][1], 1);

    cr_assert_eq(cfg_test_load(&cfg), M360_EINVAL);
    cr_expect_eq(count_lines(problems_text), (int)count + 1, "%s", problems_text);
    for (size_t i = 0; i < count; i++) {
        snprintf(want, sizeof(want), "config: %s: ", bad[i][0]);
        cr_expect(strstr(problems_text, want) != NULL, "no line for %s in:\n%s", bad[i][0],
                  problems_text);
    }
    expect_problem("config: DATABASE_URL: is required");
}

Test(cfg, pairs_are_checked)
{
    struct cfg cfg;

    cfg_set_production_secrets();
    setenv("JWT_REFRESH_SECRET", LONG_SECRET_A, 1);
    setenv("JWT_EXPIRY", "2d", 1);
    setenv("JWT_REFRESH_EXPIRY", "1d", 1);
    setenv("SMTP_USER", "mailer", 1);
    setenv("MANAS360_BOOTSTRAP_EMAIL", "root@example.com", 1);

    cr_assert_eq(cfg_test_load(&cfg), M360_EINVAL);
    cr_expect_eq(count_lines(problems_text), 4, "%s", problems_text);
    expect_problem("config: JWT_REFRESH_SECRET: must differ");
    expect_problem("config: JWT_REFRESH_EXPIRY: must not be shorter");
    expect_problem("config: SMTP_PASSWORD: ");
    expect_problem("config: MANAS360_BOOTSTRAP_PASSWORD: ");
}

Test(cfg, bootstrap_password_length_counts_characters)
{
    struct cfg cfg;

    cfg_set_production_secrets();
    setenv("MANAS360_BOOTSTRAP_EMAIL", "root@example.com", 1);
    /* Seven characters in fourteen bytes: too short, whatever the byte count says. */
    setenv("MANAS360_BOOTSTRAP_PASSWORD", "ééééééé", 1);
    cr_assert_eq(cfg_test_load(&cfg), M360_EINVAL);
    expect_problem("config: MANAS360_BOOTSTRAP_PASSWORD: must be 8 to 128");
}

Test(cfg, values_are_normalised)
{
    struct cfg cfg;

    cfg_set_production_secrets();
    setenv("APP_BASE_URL", "https://app.example.com//", 1);
    setenv("PORT", "8080", 1);
    setenv("LOG_LEVEL", "debug", 1);
    setenv("SESSION_IDLE_TIMEOUT", "30m", 1);
    cr_assert_eq(cfg_test_load(&cfg), 0, "%s", problems_text);
    cr_expect_str_eq(cfg.app_base_url, "https://app.example.com");
    cr_expect_eq(cfg.port, 8080);
    cr_expect_eq(cfg.log_level, LOG_LEVEL_DEBUG);
    cr_expect_eq(cfg.session_idle_timeout_s, 1800);
    cfg_cleanup(&cfg);
}

Test(cfg, secrets_reach_the_logger_masked)
{
    struct cfg cfg;
    char line[256];

    cfg_set_production_secrets();
    cr_assert_eq(cfg_test_load(&cfg), 0, "%s", problems_text);
    log_mask(line, sizeof(line), "event=oops value=" LONG_SECRET_B " done=1");
    cr_expect_str_eq(line, "event=oops value=*** done=1");
    cfg_cleanup(&cfg);
    log_shutdown();
}

Test(cfg, durations)
{
    static const struct {
        const char *text;
        int64_t seconds;
    } good[] = {{"90s", 90}, {"15m", 900}, {"24h", 86400}, {"7d", 604800}, {"60", 60}};
    static const char *const bad[] = {"",
                                      "0s",
                                      "-5m",
                                      "5 m",
                                      "5mm",
                                      "m",
                                      "1.5h",
                                      "+5s",
                                      "99999999999999999999d",
                                      "4000000000000000000d"};
    int64_t out;

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        cr_expect_eq(cfg_duration_parse(good[i].text, &out), 0, "%s", good[i].text);
        cr_expect_eq(out, good[i].seconds, "%s", good[i].text);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_expect_eq(cfg_duration_parse(bad[i], &out), M360_EINVAL, "'%s' accepted", bad[i]);
}
