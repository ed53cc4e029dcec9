/* SPDX-License-Identifier: MIT */
/* Audit events rendered as COPY text rows. */
#include "manas360/audit_row.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define AUDIT_ROWS_FIRST_CAP 65536

static void audit_rows_put(struct audit_rows *rows, const char *bytes, size_t n)
{
    if (rows->failed)
        return;
    if (rows->len + n > rows->cap) {
        size_t cap = rows->cap > 0 ? rows->cap : AUDIT_ROWS_FIRST_CAP;
        char *grown;

        while (rows->len + n > cap)
            cap *= 2;
        grown = realloc(rows->data, cap);
        if (grown == NULL) {
            rows->failed = true;
            return;
        }
        rows->data = grown;
        rows->cap = cap;
    }
    memcpy(rows->data + rows->len, bytes, n);
    rows->len += n;
}

/* One column: \N for NULL, and the escapes for what would break a row. */
static void audit_rows_column(struct audit_rows *rows, const char *value, bool last)
{
    if (value == NULL) {
        audit_rows_put(rows, "\\N", 2);
    } else {
        const char *run = value;

        for (const char *p = value; *p != '\0'; p++) {
            const char *escaped = *p == '\\'   ? "\\\\"
                                  : *p == '\t' ? "\\t"
                                  : *p == '\n' ? "\\n"
                                  : *p == '\r' ? "\\r"
                                               : NULL;

            if (escaped == NULL)
                continue;
            audit_rows_put(rows, run, (size_t)(p - run));
            audit_rows_put(rows, escaped, 2);
            run = p + 1;
        }
        audit_rows_put(rows, run, strlen(run));
    }
    audit_rows_put(rows, last ? "\n" : "\t", 1);
}

bool audit_rows_add(struct audit_rows *rows, const json_t *event)
{
    static const char *const text_columns[] = {"user_id", "event_type", "resource_type",
                                               "resource_id", "action"};
    const char *status = json_string_value(json_object_get(event, "status"));
    const json_t *details = json_object_get(event, "details");
    json_int_t at_ms = json_integer_value(json_object_get(event, "at_ms"));
    char *details_text;
    char created[48];
    struct timespec now;
    time_t seconds;
    struct tm tm;

    if (!json_is_object(event) || json_string_value(json_object_get(event, "event_type")) == NULL)
        return false;
    for (size_t i = 0; i < sizeof(text_columns) / sizeof(text_columns[0]); i++)
        audit_rows_column(rows, json_string_value(json_object_get(event, text_columns[i])), false);
    audit_rows_column(rows, status != NULL ? status : "success", false);

    details_text = json_is_object(details) ? json_dumps(details, JSON_COMPACT) : NULL;
    audit_rows_column(rows, details_text != NULL ? details_text : "{}", false);
    free(details_text);
    audit_rows_column(rows, json_string_value(json_object_get(event, "ip_address")), false);
    audit_rows_column(rows, json_string_value(json_object_get(event, "user_agent")), false);

    if (at_ms <= 0) {
        clock_gettime(CLOCK_REALTIME, &now);
        at_ms = (json_int_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
    }
    seconds = (time_t)(at_ms / 1000);
    gmtime_r(&seconds, &tm);
    snprintf(created, sizeof(created), "%04d-%02d-%02d %02d:%02d:%02d.%03d+00", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(at_ms % 1000));
    audit_rows_column(rows, created, true);
    rows->count++;
    return true;
}

bool audit_rows_append(struct audit_rows *rows, const char *data, size_t len)
{
    size_t count = 0;

    if (len == 0 || data[len - 1] != '\n' || memchr(data, '\0', len) != NULL)
        return false;
    for (const char *p = data; (p = memchr(p, '\n', len - (size_t)(p - data))) != NULL; p++)
        count++;
    audit_rows_put(rows, data, len);
    if (!rows->failed)
        rows->count += count;
    return !rows->failed;
}

void audit_rows_reset(struct audit_rows *rows)
{
    rows->len = 0;
    rows->count = 0;
}

void audit_rows_release(struct audit_rows *rows)
{
    free(rows->data);
    *rows = (struct audit_rows){0};
}
