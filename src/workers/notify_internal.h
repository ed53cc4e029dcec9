/* SPDX-License-Identifier: MIT */
/* What the notifier's files share: a claimed message, rendering and delivery. */
#ifndef MANAS360_NOTIFY_INTERNAL_H
#define MANAS360_NOTIFY_INTERNAL_H

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "manas360/cfg.h"

#define NOTIFY_LOG_MODULE "notify"
#define NOTIFY_ERROR_MAX_BYTES 256 /* last_error as stored, and what delivery reports */
#define NOTIFY_ADDRESS_MAX_BYTES 320
#define NOTIFY_SEND_TIMEOUT_S 30L /* one whole SMTP exchange; a claim outlasts it */

/* One outbox row in the sender's hands. Strings are borrowed from the claim's result. */
struct notify_row {
    const char *id;
    const char *to_address;
    const char *to_name; /* NULL when the account has no name */
    const char *template;
    const json_t *payload;
};

/* A message ready to send: the complete RFC 5322 text and its envelope. */
struct notify_mail {
    char *text; /* CRLF line endings; owned */
    size_t len;
    char from[NOTIFY_ADDRESS_MAX_BYTES]; /* the envelope sender, SMTP_FROM's address */
};

/* ---- notify_render.c ----------------------------------------------------------------- */

/*
 * Renders `row` as a multipart/alternative message dated `now` (Unix seconds). Returns 0,
 * M360_EINVAL when the row can never be sent (unknown template, a verification or reset
 * message without its token, an address or SMTP_FROM unfit for a header; the reason goes
 * to `error`), or M360_ENOMEM. On success the caller frees mail->text (it may hold a token:
 * wipe it first).
 */
int notify_render(const struct cfg *cfg, const struct notify_row *row, int64_t now,
                  struct notify_mail *mail, char error[NOTIFY_ERROR_MAX_BYTES]);

/* ---- notify_transport.c -------------------------------------------------------------- */

/* Sets up libcurl; call once before any thread delivers. Returns 0 or M360_EINTERNAL. */
int notify_transport_init(void);
void notify_transport_cleanup(void);

/*
 * Delivers `mail` for `row`: over SMTP to SMTP_HOST, or as MAIL_DIR/<row id>.eml without
 * it (written under a temporary name, then renamed). A send stops early once `stopping` is
 * set. Returns 0, or M360_EIO with the reason in `error` (never a credential).
 */
int notify_deliver(const struct cfg *cfg, const struct notify_row *row,
                   const struct notify_mail *mail, const atomic_bool *stopping,
                   char error[NOTIFY_ERROR_MAX_BYTES]);

/* "smtp" or "file": where notify_deliver() sends with this configuration. */
const char *notify_transport_name(const struct cfg *cfg);

#endif
