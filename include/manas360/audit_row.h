/* SPDX-License-Identifier: MIT */
/*
 * Audit rows as they travel to the audit writer and into PostgreSQL: lines of the COPY text
 * format for the columns of AUDIT_ROWS_COPY_SQL. A producer renders its events once (off the
 * request path), the writer only concatenates what it receives and copies it in, so the
 * trail costs the writer next to nothing per event.
 */
#ifndef MANAS360_AUDIT_ROW_H
#define MANAS360_AUDIT_ROW_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define AUDIT_ROWS_COPY_SQL                                                                        \
    "COPY audit_logs (user_id, event_type, resource_type, resource_id, action, status, details,"   \
    " ip_address, user_agent, created_at) FROM STDIN"

/* A growing buffer of rows; zero-initialise it. `failed` once an allocation failed. */
struct audit_rows {
    char *data;
    size_t len;
    size_t cap;
    size_t count; /* rows held */
    bool failed;
};

/*
 * Renders one event {user_id, event_type, resource_type, resource_id, action, status,
 * details, ip_address, user_agent, at_ms} as a row; absent members are NULL, details {},
 * status "success", at_ms now. False (nothing added) when it is not an object with a string
 * event_type.
 */
bool audit_rows_add(struct audit_rows *rows, const json_t *event);

/*
 * Appends rows received from a producer as they are. False (nothing added) unless `data` is
 * whole rows: no NUL, ending with a newline.
 */
bool audit_rows_append(struct audit_rows *rows, const char *data, size_t len);

/* Forgets the rows and keeps the buffer. */
void audit_rows_reset(struct audit_rows *rows);

/* Frees the buffer; the struct may be used again. */
void audit_rows_release(struct audit_rows *rows);

#endif
