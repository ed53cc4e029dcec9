/* SPDX-License-Identifier: MIT */
/* The notifier pool and the outbox's front door: queueing a message in a caller's transaction. */
#include "manas360/notify.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "manas360/err.h"

static const struct db_stmt notify_stmts[] = {
    {"notify_queue",
     "INSERT INTO email_outbox (to_address, to_name, template, payload, dedupe_key)"
     " VALUES ($1, $2, $3, $4::jsonb, $5) ON CONFLICT (dedupe_key) DO NOTHING",
     5},
};

int notify_prepare(struct db *db)
{
    return db_prepare(db, notify_stmts, sizeof(notify_stmts) / sizeof(notify_stmts[0]));
}

int notify_queue(struct db *db, const struct notify_message *msg)
{
    char *payload = NULL;
    int rc;

    payload = msg->payload != NULL ? json_dumps(msg->payload, JSON_COMPACT) : strdup("{}");
    if (payload == NULL)
        return M360_ENOMEM;

    {
        const char *params[] = {msg->to_address, msg->to_name, msg->template, payload,
                                msg->dedupe_key};

        rc = db_exec(db, "notify_queue", 5, params, NULL);
    }

    /* The payload may hold a one-time token. */
    sodium_memzero(payload, strlen(payload));
    free(payload);
    return rc;
}

/* The pool has no messages of its own: it answers ping, and the sender thread
 * (notify_sender.c), which serve starts next to it, does the work. */
const struct pool_def notify_pool_def = {"notifier", NULL, 0, NULL};
