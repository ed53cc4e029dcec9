/* SPDX-License-Identifier: MIT */
/*
 * Configuration: every setting comes from the environment, is parsed once at start and
 * validated, and each problem is reported on its own line naming the variable.
 */
#ifndef MANAS360_CFG_H
#define MANAS360_CFG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "manas360/log.h"

#define CFG_SECRET_MIN_BYTES 32
#define CFG_AUDIT_RETENTION_MIN_DAYS 90

enum cfg_env {
    CFG_ENV_PRODUCTION,
    CFG_ENV_DEVELOPMENT,
    CFG_ENV_TEST,
};

/* Strings are owned by the struct and released by cfg_cleanup(); optional ones may be NULL. */
struct cfg {
    enum cfg_env env;
    enum log_level log_level;
    char *var_dir;        /* MANAS360_VAR_DIR: generated secrets and local state */
    char *migrations_dir; /* MIGRATIONS_DIR */

    char *database_url;      /* DATABASE_URL (a libpq URI or conninfo) */
    char *database_read_url; /* DATABASE_READ_URL, optional */

    int port;         /* PORT */
    int http_threads; /* HTTP_THREADS: one per keep-alive connection served at once */
    int pool_threads; /* POOL_THREADS: threads in each worker pool */

    char *jwt_secret;               /* JWT_SECRET */
    char *jwt_refresh_secret;       /* JWT_REFRESH_SECRET */
    int64_t jwt_expiry_s;           /* JWT_EXPIRY */
    int64_t jwt_refresh_expiry_s;   /* JWT_REFRESH_EXPIRY */
    int64_t session_idle_timeout_s; /* SESSION_IDLE_TIMEOUT */

    char *smtp_host; /* SMTP_HOST; without it mail is written under mail_dir */
    int smtp_port;   /* SMTP_PORT */
    char *smtp_user;
    char *smtp_password;
    char *smtp_from;
    char *mail_dir;              /* MAIL_DIR */
    int64_t notify_retry_base_s; /* NOTIFY_RETRY_BASE: the first retry's delay, then doubled */
    int64_t subscription_sweep_interval_s; /* SUBSCRIPTION_SWEEP_INTERVAL */

    char *app_base_url;           /* APP_BASE_URL, without a trailing slash */
    char *billing_webhook_secret; /* BILLING_WEBHOOK_SECRET */
    char *bootstrap_email;        /* MANAS360_BOOTSTRAP_EMAIL */
    char *bootstrap_password;     /* MANAS360_BOOTSTRAP_PASSWORD */
    char *events_endpoint;        /* EVENTS_ENDPOINT: ZeroMQ PUB endpoint */
    char *auth_endpoint;          /* AUTH_POOL_ENDPOINT */
    char *billing_endpoint;       /* BILLING_POOL_ENDPOINT */
    char *audit_endpoint;         /* AUDIT_POOL_ENDPOINT */
    char *audit_ingest_endpoint;  /* AUDIT_INGEST_ENDPOINT: where audit events are pushed */
    char *notifier_endpoint;      /* NOTIFIER_POOL_ENDPOINT */
    int64_t pool_timeout_s;       /* POOL_TIMEOUT: a pool silent this long gets a 503 */
    int audit_retention_days;     /* AUDIT_RETENTION_DAYS */
};

/*
 * Fills `cfg` from the environment. Each problem is written to `problems` as one line that
 * names the variable; all variables are checked before returning. In development, missing
 * secrets are generated once under `var_dir/secrets` (mode 0600) and reused. Every secret
 * is registered with the logger. Returns 0, M360_EINVAL when any problem was found (cfg is
 * then released), M360_EIO or M360_ENOMEM. Not thread-safe: call once at start.
 */
int cfg_load(struct cfg *cfg, FILE *problems);

/* Releases and wipes the strings of a loaded cfg. Safe on a zeroed or released struct. */
void cfg_cleanup(struct cfg *cfg);

/*
 * Parses a duration: a positive whole number followed by s, m, h or d ("15m", "7d"). A bare
 * number counts seconds. Returns 0 and writes seconds to `out`, or M360_EINVAL.
 */
int cfg_duration_parse(const char *text, int64_t *out);

/* The name of an environment ("production", ...). */
const char *cfg_env_name(enum cfg_env env);

#endif
