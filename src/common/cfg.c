/* SPDX-License-Identifier: MIT */
/* Configuration from the environment: parsed once, every problem reported by name. */
#include "manas360/cfg.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "manas360/err.h"

#define CFG_SECRET_GENERATED_BYTES 32
#define CFG_PATH_MAX 4096

enum cfg_kind {
    CFG_STRING,   /* optional text */
    CFG_REQUIRED, /* text that must be set */
    CFG_INT,      /* whole number within [min, max] */
    CFG_DURATION, /* Ns Nm Nh Nd, at least min seconds */
    CFG_SECRET,   /* at least CFG_SECRET_MIN_BYTES outside development */
    CFG_URL,      /* http:// or https://, stored without a trailing slash */
    CFG_ENDPOINT, /* a ZeroMQ endpoint: tcp://, ipc:// or inproc:// */
};

struct cfg_var {
    const char *name;
    enum cfg_kind kind;
    size_t offset;
    const char *fallback; /* used when unset; NULL means no value */
    long min;
    long max;
};

#define CFG_FIELD(field) offsetof(struct cfg, field)

/* MANAS360_ENV, LOG_LEVEL and MANAS360_VAR_DIR are read first: the rest depend on them. */
static const struct cfg_var cfg_vars[] = {
    {"MIGRATIONS_DIR", CFG_STRING, CFG_FIELD(migrations_dir), "migrations", 0, 0},
    {"DATABASE_URL", CFG_REQUIRED, CFG_FIELD(database_url), NULL, 0, 0},
    {"DATABASE_READ_URL", CFG_STRING, CFG_FIELD(database_read_url), NULL, 0, 0},
    {"PORT", CFG_INT, CFG_FIELD(port), "5001", 1, 65535},
    {"HTTP_THREADS", CFG_INT, CFG_FIELD(http_threads), "32", 1, 1024},
    {"POOL_THREADS", CFG_INT, CFG_FIELD(pool_threads), "2", 1, 64},
    {"JWT_SECRET", CFG_SECRET, CFG_FIELD(jwt_secret), NULL, 0, 0},
    {"JWT_REFRESH_SECRET", CFG_SECRET, CFG_FIELD(jwt_refresh_secret), NULL, 0, 0},
    {"JWT_EXPIRY", CFG_DURATION, CFG_FIELD(jwt_expiry_s), "24h", 60, 0},
    {"JWT_REFRESH_EXPIRY", CFG_DURATION, CFG_FIELD(jwt_refresh_expiry_s), "7d", 60, 0},
    {"SESSION_IDLE_TIMEOUT", CFG_DURATION, CFG_FIELD(session_idle_timeout_s), "7d", 60, 0},
    {"SMTP_HOST", CFG_STRING, CFG_FIELD(smtp_host), NULL, 0, 0},
    {"SMTP_PORT", CFG_INT, CFG_FIELD(smtp_port), "587", 1, 65535},
    {"SMTP_USER", CFG_STRING, CFG_FIELD(smtp_user), NULL, 0, 0},
    {"SMTP_PASSWORD", CFG_STRING, CFG_FIELD(smtp_password), NULL, 0, 0},
    {"SMTP_FROM", CFG_STRING, CFG_FIELD(smtp_from), "MANAS360 <no-reply@localhost>", 0, 0},
    {"MAIL_DIR", CFG_STRING, CFG_FIELD(mail_dir), NULL, 0, 0},
    {"NOTIFY_RETRY_BASE", CFG_DURATION, CFG_FIELD(notify_retry_base_s), "5s", 1, 3600},
    {"SUBSCRIPTION_SWEEP_INTERVAL", CFG_DURATION, CFG_FIELD(subscription_sweep_interval_s), "30s",
     1, 3600},
    {"APP_BASE_URL", CFG_URL, CFG_FIELD(app_base_url), "http://localhost:5001", 0, 0},
    {"BILLING_WEBHOOK_SECRET", CFG_SECRET, CFG_FIELD(billing_webhook_secret), NULL, 0, 0},
    {"MANAS360_BOOTSTRAP_EMAIL", CFG_STRING, CFG_FIELD(bootstrap_email), NULL, 0, 0},
    {"MANAS360_BOOTSTRAP_PASSWORD", CFG_STRING, CFG_FIELD(bootstrap_password), NULL, 0, 0},
    {"EVENTS_ENDPOINT", CFG_ENDPOINT, CFG_FIELD(events_endpoint), NULL, 0, 0},
    {"AUTH_POOL_ENDPOINT", CFG_ENDPOINT, CFG_FIELD(auth_endpoint), "inproc://pool-auth", 0, 0},
    {"BILLING_POOL_ENDPOINT", CFG_ENDPOINT, CFG_FIELD(billing_endpoint), "inproc://pool-billing", 0,
     0},
    {"AUDIT_POOL_ENDPOINT", CFG_ENDPOINT, CFG_FIELD(audit_endpoint), "inproc://pool-audit", 0, 0},
    {"AUDIT_INGEST_ENDPOINT", CFG_ENDPOINT, CFG_FIELD(audit_ingest_endpoint),
     "inproc://audit-ingest", 0, 0},
    {"NOTIFIER_POOL_ENDPOINT", CFG_ENDPOINT, CFG_FIELD(notifier_endpoint), "inproc://pool-notifier",
     0, 0},
    {"POOL_TIMEOUT", CFG_DURATION, CFG_FIELD(pool_timeout_s), "5s", 1, 300},
    {"AUDIT_RETENTION_DAYS", CFG_INT, CFG_FIELD(audit_retention_days), "90",
     CFG_AUDIT_RETENTION_MIN_DAYS, 36500},
};

/* The state of one cfg_load call. */
struct cfg_loader {
    struct cfg *cfg;
    FILE *problems;
    int problem_count;
    int io_error;
};

static void cfg_problem(struct cfg_loader *l, const char *name, const char *what)
{
    fprintf(l->problems, "config: %s: %s\n", name, what);
    l->problem_count++;
}

const char *cfg_env_name(enum cfg_env env)
{
    return env == CFG_ENV_DEVELOPMENT ? "development" : "production";
}

int cfg_duration_parse(const char *text, int64_t *out)
{
    static const struct {
        char unit;
        int64_t seconds;
    } units[] = {{'s', 1}, {'m', 60}, {'h', 3600}, {'d', 86400}};
    char *end = NULL;
    long long n;

    if (text[0] < '0' || text[0] > '9')
        return M360_EINVAL;
    errno = 0;
    n = strtoll(text, &end, 10);
    if (errno != 0 || n <= 0)
        return M360_EINVAL;
    if (*end == '\0') {
        *out = n;
        return 0;
    }
    if (end[1] != '\0')
        return M360_EINVAL;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (*end == units[i].unit) {
            if (n > INT64_MAX / units[i].seconds)
                return M360_EINVAL;
            *out = n * units[i].seconds;
            return 0;
        }
    }
    return M360_EINVAL;
}

static int cfg_int_parse(const char *text, long min, long max, long *out)
{
    char *end = NULL;
    long n;

    if ((text[0] < '0' || text[0] > '9') && text[0] != '-')
        return M360_EINVAL;
    errno = 0;
    n = strtol(text, &end, 10);
    if (errno != 0 || *end != '\0' || n < min || n > max)
        return M360_EINVAL;
    *out = n;
    return 0;
}

static char **cfg_string_slot(struct cfg *cfg, const struct cfg_var *var)
{
    return (char **)((char *)cfg + var->offset);
}

static int cfg_store(struct cfg_loader *l, const struct cfg_var *var, const char *value)
{
    char **slot = cfg_string_slot(l->cfg, var);

    *slot = strdup(value);
    if (*slot == NULL) {
        l->io_error = M360_ENOMEM;
        return M360_ENOMEM;
    }
    return 0;
}

/*
 * Reads the development secret for `var` from var_dir/secrets/<lower-case name>, creating it
 * with fresh random bytes the first time. O_EXCL makes two first starts agree on one value.
 */
static int cfg_dev_secret(struct cfg_loader *l, const char *var, char *out, size_t size)
{
    unsigned char raw[CFG_SECRET_GENERATED_BYTES];
    char dir[CFG_PATH_MAX];
    char path[CFG_PATH_MAX + 64];
    char file[64];
    ssize_t n;
    int fd = -1;
    int rc = M360_EIO;

    for (n = 0; var[n] != '\0' && (size_t)n < sizeof(file) - 1; n++)
        file[n] = (char)(var[n] >= 'A' && var[n] <= 'Z' ? var[n] - 'A' + 'a' : var[n]);
    file[n] = '\0';
    snprintf(dir, sizeof(dir), "%s/secrets", l->cfg->var_dir);
    snprintf(path, sizeof(path), "%s/%s", dir, file);
    if (mkdir(l->cfg->var_dir, 0700) != 0 && errno != EEXIST)
        goto done;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        goto done;

    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0) {
        randombytes_buf(raw, sizeof(raw));
        sodium_bin2hex(out, size, raw, sizeof(raw));
        sodium_memzero(raw, sizeof(raw));
        if (write(fd, out, strlen(out)) == (ssize_t)strlen(out))
            rc = 0;
        goto done;
    }
    if (errno != EEXIST)
        goto done;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        goto done;
    n = read(fd, out, size - 1);
    if (n <= 0)
        goto done;
    out[n] = '\0';
    out[strcspn(out, "\r\n")] = '\0';
    rc = 0;

done:
    if (fd >= 0)
        close(fd);
    if (rc != 0) {
        char what[sizeof(path) + 128];
        snprintf(what, sizeof(what), "cannot read or create %s: %s", path, strerror(errno));
        cfg_problem(l, var, what);
    }
    return rc;
}

static void cfg_load_secret(struct cfg_loader *l, const struct cfg_var *var, const char *value)
{
    char generated[2 * CFG_SECRET_GENERATED_BYTES + 1];
    char what[128];

    if (value == NULL && l->cfg->env == CFG_ENV_DEVELOPMENT) {
        if (cfg_dev_secret(l, var->name, generated, sizeof(generated)) == 0)
            cfg_store(l, var, generated);
        sodium_memzero(generated, sizeof(generated));
        return;
    }
    if (value == NULL) {
        cfg_problem(l, var->name, "is required outside development");
        return;
    }
    if (strlen(value) < CFG_SECRET_MIN_BYTES && l->cfg->env != CFG_ENV_DEVELOPMENT) {
        snprintf(what, sizeof(what), "must be at least %d bytes outside development (has %zu)",
                 CFG_SECRET_MIN_BYTES, strlen(value));
        cfg_problem(l, var->name, what);
        return;
    }
    cfg_store(l, var, value);
}

static bool cfg_has_prefix(const char *text, const char *prefix)
{
    return strncmp(text, prefix, strlen(prefix)) == 0;
}

/* Parses one variable of the table; a problem is reported and the field left unset. */
static void cfg_load_var(struct cfg_loader *l, const struct cfg_var *var)
{
    const char *value = getenv(var->name);
    char what[256];
    int64_t seconds;
    long n;

    if (value != NULL && value[0] == '\0')
        value = NULL;
    if (var->kind == CFG_SECRET) {
        cfg_load_secret(l, var, value);
        return;
    }
    if (value == NULL)
        value = var->fallback;
    if (value == NULL) {
        if (var->kind == CFG_REQUIRED)
            cfg_problem(l, var->name, "is required");
        return;
    }

    switch (var->kind) {
    case CFG_INT:
        if (cfg_int_parse(value, var->min, var->max, &n) != 0) {
            snprintf(what, sizeof(what), "must be a whole number from %ld to %ld", var->min,
                     var->max);
            cfg_problem(l, var->name, what);
            return;
        }
        *(int *)((char *)l->cfg + var->offset) = (int)n;
        return;
    case CFG_DURATION:
        if (cfg_duration_parse(value, &seconds) != 0 || seconds < var->min ||
            (var->max > 0 && seconds > var->max)) {
            if (var->max > 0)
                snprintf(what, sizeof(what),
                         "must be a duration such as 90s, 15m, 24h or 7d, from %lds to %lds",
                         var->min, var->max);
            else
                snprintf(what, sizeof(what),
                         "must be a duration such as 90s, 15m, 24h or 7d, at least %lds", var->min);
            cfg_problem(l, var->name, what);
            return;
        }
        *(int64_t *)((char *)l->cfg + var->offset) = seconds;
        return;
    case CFG_URL:
        if (!cfg_has_prefix(value, "http://") && !cfg_has_prefix(value, "https://")) {
            cfg_problem(l, var->name, "must start with http:// or https://");
            return;
        }
        if (cfg_store(l, var, value) == 0) {
            char *url = *cfg_string_slot(l->cfg, var);
            size_t len = strlen(url);
            while (len > 0 && url[len - 1] == '/')
                url[--len] = '\0';
        }
        return;
    case CFG_ENDPOINT:
        if (!cfg_has_prefix(value, "tcp://") && !cfg_has_prefix(value, "ipc://") &&
            !cfg_has_prefix(value, "inproc://")) {
            cfg_problem(l, var->name, "must be a tcp://, ipc:// or inproc:// endpoint");
            return;
        }
        cfg_store(l, var, value);
        return;
    default:
        cfg_store(l, var, value);
        return;
    }
}

/* Reads the variables every other one depends on. */
static void cfg_load_basics(struct cfg_loader *l)
{
    const char *env = getenv("MANAS360_ENV");
    const char *level = getenv("LOG_LEVEL");
    const char *var_dir = getenv("MANAS360_VAR_DIR");

    l->cfg->env = CFG_ENV_PRODUCTION;
    if (env != NULL && strcmp(env, "development") == 0)
        l->cfg->env = CFG_ENV_DEVELOPMENT;
    else if (env != NULL && env[0] != '\0' && strcmp(env, "production") != 0)
        cfg_problem(l, "MANAS360_ENV", "must be production or development");

    l->cfg->log_level = LOG_LEVEL_INFO;
    if (level != NULL && level[0] != '\0' && log_level_parse(level, &l->cfg->log_level) != 0)
        cfg_problem(l, "LOG_LEVEL", "must be one of err, warning, notice, info, debug");

    l->cfg->var_dir = strdup(var_dir != NULL && var_dir[0] != '\0' ? var_dir : "var");
    if (l->cfg->var_dir == NULL)
        l->io_error = M360_ENOMEM;
}

static bool cfg_email_plausible(const char *text)
{
    const char *at = strchr(text, '@');

    return at != NULL && at != text && strchr(at + 1, '.') != NULL && strchr(at + 1, '@') == NULL;
}

/* Counts Unicode characters the way the contract measures lengths. */
static size_t cfg_utf8_chars(const char *text)
{
    size_t n = 0;

    for (; *text != '\0'; text++) {
        if (((unsigned char)*text & 0xC0) != 0x80)
            n++;
    }
    return n;
}

/* Checks between variables, once each has been parsed on its own. */
static void cfg_check_pairs(struct cfg_loader *l)
{
    struct cfg *cfg = l->cfg;

    if (cfg->jwt_secret != NULL && cfg->jwt_refresh_secret != NULL &&
        strcmp(cfg->jwt_secret, cfg->jwt_refresh_secret) == 0)
        cfg_problem(l, "JWT_REFRESH_SECRET", "must differ from JWT_SECRET");
    if (cfg->jwt_expiry_s > 0 && cfg->jwt_refresh_expiry_s > 0 &&
        cfg->jwt_refresh_expiry_s < cfg->jwt_expiry_s)
        cfg_problem(l, "JWT_REFRESH_EXPIRY", "must not be shorter than JWT_EXPIRY");
    if ((cfg->smtp_user == NULL) != (cfg->smtp_password == NULL))
        cfg_problem(l, cfg->smtp_user == NULL ? "SMTP_USER" : "SMTP_PASSWORD",
                    "SMTP_USER and SMTP_PASSWORD are set together or not at all");
    if (cfg->smtp_from != NULL && strchr(cfg->smtp_from, '@') == NULL)
        cfg_problem(l, "SMTP_FROM", "must hold an email address");
    if ((cfg->bootstrap_email == NULL) != (cfg->bootstrap_password == NULL))
        cfg_problem(l,
                    cfg->bootstrap_email == NULL ? "MANAS360_BOOTSTRAP_EMAIL"
                                                 : "MANAS360_BOOTSTRAP_PASSWORD",
                    "MANAS360_BOOTSTRAP_EMAIL and MANAS360_BOOTSTRAP_PASSWORD are set together");
    if (cfg->bootstrap_email != NULL && !cfg_email_plausible(cfg->bootstrap_email))
        cfg_problem(l, "MANAS360_BOOTSTRAP_EMAIL", "must be an email address");
    if (cfg->bootstrap_password != NULL && (cfg_utf8_chars(cfg->bootstrap_password) < 8 ||
                                            cfg_utf8_chars(cfg->bootstrap_password) > 128))
        cfg_problem(l, "MANAS360_BOOTSTRAP_PASSWORD", "must be 8 to 128 characters");
}

/* Fills the defaults that are derived from other values. */
static void cfg_derive(struct cfg_loader *l)
{
    struct cfg *cfg = l->cfg;
    char buf[CFG_PATH_MAX];

    if (cfg->mail_dir == NULL) {
        snprintf(buf, sizeof(buf), "%s/mail", cfg->var_dir);
        if ((cfg->mail_dir = strdup(buf)) == NULL)
            l->io_error = M360_ENOMEM;
    }
    if (cfg->events_endpoint == NULL) {
        snprintf(buf, sizeof(buf), "ipc://%s/events.sock", cfg->var_dir);
        if ((cfg->events_endpoint = strdup(buf)) == NULL)
            l->io_error = M360_ENOMEM;
    }
}

static void cfg_register_secrets(const struct cfg *cfg)
{
    const char *secrets[] = {cfg->jwt_secret, cfg->jwt_refresh_secret, cfg->billing_webhook_secret,
                             cfg->smtp_password, cfg->bootstrap_password};

    for (size_t i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++)
        log_secret_register(secrets[i]);
}

int cfg_load(struct cfg *cfg, FILE *problems)
{
    struct cfg_loader l = {cfg, problems, 0, 0};

    memset(cfg, 0, sizeof(*cfg));
    cfg_load_basics(&l);
    if (l.io_error != 0)
        goto fail;

    for (size_t i = 0; i < sizeof(cfg_vars) / sizeof(cfg_vars[0]); i++)
        cfg_load_var(&l, &cfg_vars[i]);
    cfg_check_pairs(&l);
    cfg_derive(&l);
    if (l.io_error != 0 || l.problem_count > 0)
        goto fail;

    cfg_register_secrets(cfg);
    return 0;

fail:
    cfg_cleanup(cfg);
    return l.io_error != 0 ? l.io_error : M360_EINVAL;
}

static void cfg_free_string(char **slot)
{
    if (*slot != NULL) {
        sodium_memzero(*slot, strlen(*slot));
        free(*slot);
        *slot = NULL;
    }
}

void cfg_cleanup(struct cfg *cfg)
{
    for (size_t i = 0; i < sizeof(cfg_vars) / sizeof(cfg_vars[0]); i++) {
        enum cfg_kind kind = cfg_vars[i].kind;
        if (kind != CFG_INT && kind != CFG_DURATION)
            cfg_free_string(cfg_string_slot(cfg, &cfg_vars[i]));
    }
    cfg_free_string(&cfg->var_dir);
}
