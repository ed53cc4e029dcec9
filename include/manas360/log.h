/* SPDX-License-Identifier: MIT */
/*
 * The one logger: a level filter and one `key=value` line per event. The sink adds ts (UTC,
 * milliseconds), level, module, pid and thread, and masks every registered secret and URL
 * or conninfo password before a line leaves the process.
 */
#ifndef MANAS360_LOG_H
#define MANAS360_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* The syslog priorities we use; the names avoid <syslog.h>'s LOG_* macros. */
enum log_level {
    LOG_LEVEL_ERR = 3,
    LOG_LEVEL_WARNING = 4,
    LOG_LEVEL_NOTICE = 5,
    LOG_LEVEL_INFO = 6,
    LOG_LEVEL_DEBUG = 7,
};

/* Sends lines to `sink` (stderr when NULL) from `level` up. Call before any thread logs. */
void log_init(enum log_level level, FILE *sink);

/* Parses "err", "warning", "notice", "info" or "debug". Returns 0 or M360_EINVAL. */
int log_level_parse(const char *text, enum log_level *out);

/* True when an event at `level` would be written. Thread-safe. */
bool log_enabled(enum log_level level);

/*
 * Registers a value that must never be written: every later line has it replaced by `***`.
 * Values under 4 bytes are ignored, since masking them would shred ordinary text. The logger
 * keeps a copy, wiped at log_shutdown(). Returns 0 or M360_ENOMEM. Thread-safe.
 */
int log_secret_register(const char *value);

/* Wipes and forgets registered secrets. */
void log_shutdown(void);

/*
 * Writes one event. `fmt` renders the caller's part: `event=name key=value ...`. Values
 * that may hold spaces, quotes or control bytes go through log_quote(). Thread-safe: one
 * line is one write.
 */
void log_write(enum log_level level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * Renders `value` as a log value into `buf`: bare when it is all safe characters, else in
 * double quotes with `"`, `\` and control bytes escaped; cut to fit `size`. Returns buf.
 */
const char *log_quote(char *buf, size_t size, const char *value);

/*
 * Copies `line` into `buf` with registered secrets, URL userinfo passwords and
 * `password=` conninfo values masked. Exposed so callers and tests can see exactly what the
 * sink writes. Returns the length written, cut to fit `size`.
 */
size_t log_mask(char *buf, size_t size, const char *line);

/* The level test comes first, so arguments are not evaluated for a filtered event. */
#define log_at(level, module, ...)                                                                 \
    do {                                                                                           \
        if (log_enabled(level))                                                                    \
            log_write((level), (module), __VA_ARGS__);                                             \
    } while (0)

#define log_err(module, ...) log_at(LOG_LEVEL_ERR, module, __VA_ARGS__)
#define log_warn(module, ...) log_at(LOG_LEVEL_WARNING, module, __VA_ARGS__)
#define log_notice(module, ...) log_at(LOG_LEVEL_NOTICE, module, __VA_ARGS__)
#define log_info(module, ...) log_at(LOG_LEVEL_INFO, module, __VA_ARGS__)
#define log_debug(module, ...) log_at(LOG_LEVEL_DEBUG, module, __VA_ARGS__)

#endif
