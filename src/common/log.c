/* SPDX-License-Identifier: MIT */
/* The logger: level filter, key=value lines, and masking of anything secret. */
#include "manas360/log.h"

#include <ctype.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "manas360/err.h"

#define LOG_LINE_MAX_BYTES 4096
#define LOG_SECRETS_MAX 32
#define LOG_SECRET_MIN_BYTES 4
#define LOG_MASK "***"

static const char *const log_level_names[] = {
    [LOG_LEVEL_ERR] = "err",   [LOG_LEVEL_WARNING] = "warning", [LOG_LEVEL_NOTICE] = "notice",
    [LOG_LEVEL_INFO] = "info", [LOG_LEVEL_DEBUG] = "debug",
};

/* Set once by log_init before threads start; read by every thread. */
static atomic_int log_threshold = LOG_LEVEL_INFO;
static FILE *log_sink;

/* Registered secrets; guarded by log_secrets_lock. */
static pthread_mutex_t log_secrets_lock = PTHREAD_MUTEX_INITIALIZER;
static char *log_secrets[LOG_SECRETS_MAX];
static int log_secret_count;

void log_init(enum log_level level, FILE *sink)
{
    atomic_store(&log_threshold, (int)level);
    log_sink = sink;
}

int log_level_parse(const char *text, enum log_level *out)
{
    for (int level = LOG_LEVEL_ERR; level <= LOG_LEVEL_DEBUG; level++) {
        if (strcmp(text, log_level_names[level]) == 0) {
            *out = (enum log_level)level;
            return 0;
        }
    }
    return M360_EINVAL;
}

bool log_enabled(enum log_level level)
{
    return (int)level <= atomic_load(&log_threshold);
}

int log_secret_register(const char *value)
{
    int rc = 0;

    if (value == NULL || strlen(value) < LOG_SECRET_MIN_BYTES)
        return 0;

    pthread_mutex_lock(&log_secrets_lock);
    for (int i = 0; i < log_secret_count; i++) {
        if (strcmp(log_secrets[i], value) == 0)
            goto done;
    }
    if (log_secret_count == LOG_SECRETS_MAX) {
        rc = M360_ENOMEM;
        goto done;
    }
    log_secrets[log_secret_count] = strdup(value);
    if (log_secrets[log_secret_count] == NULL)
        rc = M360_ENOMEM;
    else
        log_secret_count++;

done:
    pthread_mutex_unlock(&log_secrets_lock);
    return rc;
}

void log_shutdown(void)
{
    pthread_mutex_lock(&log_secrets_lock);
    for (int i = 0; i < log_secret_count; i++) {
        sodium_memzero(log_secrets[i], strlen(log_secrets[i]));
        free(log_secrets[i]);
        log_secrets[i] = NULL;
    }
    log_secret_count = 0;
    pthread_mutex_unlock(&log_secrets_lock);
}

/* A bounded writer: appends never overrun, and the text stays NUL-terminated. */
struct log_buf {
    char *data;
    size_t size;
    size_t len;
};

static void log_buf_put(struct log_buf *b, const char *src, size_t n)
{
    if (b->size == 0)
        return;
    if (n > b->size - 1 - b->len)
        n = b->size - 1 - b->len;
    memcpy(b->data + b->len, src, n);
    b->len += n;
    b->data[b->len] = '\0';
}

/* Length of the registered secret that starts at `s`, or 0. Caller holds the lock. */
static size_t log_secret_at(const char *s)
{
    for (int i = 0; i < log_secret_count; i++) {
        size_t n = strlen(log_secrets[i]);
        if (strncmp(s, log_secrets[i], n) == 0)
            return n;
    }
    return 0;
}

/* Length of a URI's userinfo password when `s` is just past "://" and one follows. */
static size_t log_url_password_at(const char *s, size_t *user_len)
{
    const char *colon = NULL;
    const char *p = s;

    for (; *p != '\0' && strchr("/?#@ \t\r\n", *p) == NULL; p++) {
        if (*p == ':' && colon == NULL)
            colon = p;
    }
    if (*p != '@' || colon == NULL)
        return 0;
    *user_len = (size_t)(colon - s) + 1;
    return (size_t)(p - colon - 1);
}

/* Length of a `password=` value when `s` starts with that key (conninfo or URI query). */
static size_t log_keyword_password_at(const char *s, size_t *key_len)
{
    static const char key[] = "password=";
    const char *p;

    if (strncasecmp(s, key, sizeof(key) - 1) != 0)
        return 0;
    p = s + sizeof(key) - 1;
    *key_len = sizeof(key) - 1;
    if (*p == '\'') {
        const char *end = p + 1;
        while (*end != '\0' && *end != '\'')
            end += (*end == '\\' && end[1] != '\0') ? 2 : 1;
        return (size_t)(end - p) + (*end == '\'' ? 1 : 0);
    }
    return strcspn(p, " \t\r\n&");
}

size_t log_mask(char *buf, size_t size, const char *line)
{
    struct log_buf out = {buf, size, 0};
    const char *p = line;

    if (size > 0)
        buf[0] = '\0';

    pthread_mutex_lock(&log_secrets_lock);
    while (*p != '\0') {
        size_t secret_len = log_secret_at(p);
        size_t lead = 0;
        size_t hidden;

        if (secret_len > 0) {
            log_buf_put(&out, LOG_MASK, strlen(LOG_MASK));
            p += secret_len;
            continue;
        }
        if (strncmp(p, "://", 3) == 0 && (hidden = log_url_password_at(p + 3, &lead)) > 0) {
            log_buf_put(&out, p, 3 + lead);
            log_buf_put(&out, LOG_MASK, strlen(LOG_MASK));
            p += 3 + lead + hidden;
            continue;
        }
        if ((p == line || strchr(" \t?&", p[-1]) != NULL) &&
            (hidden = log_keyword_password_at(p, &lead)) > 0) {
            log_buf_put(&out, p, lead);
            log_buf_put(&out, LOG_MASK, strlen(LOG_MASK));
            p += lead + hidden;
            continue;
        }
        log_buf_put(&out, p, 1);
        p++;
    }
    pthread_mutex_unlock(&log_secrets_lock);
    return out.len;
}

const char *log_quote(char *buf, size_t size, const char *value)
{
    struct log_buf out = {buf, size, 0};
    bool bare = value[0] != '\0';

    if (size > 0)
        buf[0] = '\0';
    for (const char *p = value; *p != '\0' && bare; p++)
        bare = isgraph((unsigned char)*p) && *p != '"' && *p != '\\' && *p != '=';
    if (bare) {
        log_buf_put(&out, value, strlen(value));
        return buf;
    }

    log_buf_put(&out, "\"", 1);
    for (const char *p = value; *p != '\0' && out.len + 6 < size; p++) {
        unsigned char c = (unsigned char)*p;
        char esc[8];

        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            log_buf_put(&out, esc, 2);
        } else if (c < 0x20 || c == 0x7f) {
            snprintf(esc, sizeof(esc), "\\x%02x", c);
            log_buf_put(&out, esc, 4);
        } else {
            log_buf_put(&out, (const char *)&c, 1);
        }
    }
    log_buf_put(&out, "\"", 1);
    return buf;
}

/* Renders, masks and writes one line; the va_list belongs to log_write. */
static void log_vwrite(enum log_level level, const char *module, const char *fmt, va_list ap)
{
    char raw[LOG_LINE_MAX_BYTES];
    char masked[LOG_LINE_MAX_BYTES];
    struct timespec now;
    struct tm tm;
    FILE *sink;
    size_t len;
    int head;

    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    head = snprintf(raw, sizeof(raw),
                    "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s module=%s pid=%ld "
                    "thread=%ld ",
                    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                    now.tv_nsec / 1000000L, log_level_names[level], module, (long)getpid(),
                    (long)syscall(SYS_gettid));
    if (head < 0 || (size_t)head >= sizeof(raw))
        return;
    vsnprintf(raw + head, sizeof(raw) - (size_t)head, fmt, ap);

    /* Newlines inside values would forge a second event; a line is one event. */
    for (char *p = raw; *p != '\0'; p++) {
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    }

    len = log_mask(masked, sizeof(masked) - 1, raw);
    masked[len++] = '\n';
    sink = log_sink != NULL ? log_sink : stderr;
    flockfile(sink);
    fwrite(masked, 1, len, sink);
    fflush(sink);
    funlockfile(sink);
}

void log_write(enum log_level level, const char *module, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_vwrite(level, module, fmt, ap);
    va_end(ap);
}
