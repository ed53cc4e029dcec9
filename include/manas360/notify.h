/* SPDX-License-Identifier: MIT */
/*
 * The notifier: the email outbox and its delivery. Messages are queued as email_outbox rows
 * in the transaction of the change that causes them; a sender thread in each process that
 * runs the notifier pool claims due rows, renders and sends each one over SMTP (or writes
 * it under MAIL_DIR without SMTP_HOST), and retries failures with backoff.
 */
#ifndef MANAS360_NOTIFY_H
#define MANAS360_NOTIFY_H

#include <jansson.h>

#include "manas360/cfg.h"
#include "manas360/db.h"
#include "manas360/pool.h"

/* Announced (by a trigger, after commit) whenever a message is queued. */
#define NOTIFY_CHANNEL "manas360_outbox"

/* The templates of email_outbox_template_check. */
#define NOTIFY_VERIFY_EMAIL "verify_email"
#define NOTIFY_PASSWORD_RESET "password_reset"
#define NOTIFY_SUBSCRIPTION_EXPIRING "subscription_expiring"
#define NOTIFY_SUBSCRIPTION_EXPIRED "subscription_expired"

extern const struct pool_def notify_pool_def;

/* One message to queue. Strings are borrowed; NULL is SQL NULL. */
struct notify_message {
    const char *to_address;
    const char *to_name;    /* shown in To; may be NULL */
    const char *template;   /* NOTIFY_* */
    const json_t *payload;  /* an object the template reads ({"token": ...}); NULL: {} */
    const char *dedupe_key; /* at most one message per key; NULL for none */
};

/* Prepares the statements notify_queue() needs on a connection. Returns 0 or a db code. */
int notify_prepare(struct db *db);

/*
 * Queues `msg` in the caller's transaction; it is sent once that transaction commits.
 * A message whose dedupe_key is already queued is skipped (still 0). Returns 0,
 * M360_ENOMEM or a database code.
 */
int notify_queue(struct db *db, const struct notify_message *msg);

struct notify_sender;

/*
 * Starts the sender thread, with its own connections to cfg->database_url: it claims due
 * outbox rows whenever a message is announced on NOTIFY_CHANNEL, and every second. Several
 * senders (threads or processes) share one outbox without ever sending a row twice while
 * each finishes a send within its claim. `cfg` is borrowed and must outlive the sender.
 * Returns NULL when the thread cannot start (logged).
 */
struct notify_sender *notify_sender_new(const struct cfg *cfg);

/* Stops the thread after the message in hand (a send under way is cut short and retried
 * later), closes its connections, frees it and sets *sender to NULL. Safe on NULL. */
void notify_sender_destroy(struct notify_sender **sender);

#endif
