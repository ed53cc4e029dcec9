/* SPDX-License-Identifier: MIT */
/* The audit pool: audit events pushed by the front ends, written in batches. */
#include "manas360/audit.h"

#include <stdlib.h>

#include <jansson.h>

#include "manas360/err.h"
#include "worker.h"

#define AUDIT_BATCH_MAX 1000

/*
 * XXX: events travel as a request to the pool and are written with one INSERT per batch;
 * the front end holds them in memory until then, so a crash of the front end loses the
 * events of its last moments. Partition retention is not run by the pool yet.
 */

/* clang-format off */
static const struct db_stmt audit_stmts[] = {
    /* A whole batch in one statement: the rows come as one JSON array. */
    {"audit_append",
     "INSERT INTO audit_logs (user_id, event_type, resource_type, resource_id, action, status,"
     "                        details, ip_address, user_agent, created_at)"
     " SELECT e.user_id, e.event_type, e.resource_type, e.resource_id, e.action,"
     "        coalesce(e.status, 'success'), coalesce(e.details, '{}'), e.ip_address,"
     "        e.user_agent, to_timestamp(e.at_ms / 1000.0)"
     "   FROM jsonb_to_recordset($1::jsonb) AS e(user_id uuid, event_type text,"
     "        resource_type text, resource_id text, action text, status text, details jsonb,"
     "        ip_address inet, user_agent text, at_ms bigint)",
     1},
};
/* clang-format on */

/* "audit.append" {events: [{user_id, event_type, resource_type, resource_id, action, status,
 * details, ip_address, user_agent, at_ms}]}: writes the batch, all or nothing. */
static int audit_append(struct pool_worker *worker, const struct pool_request *req,
                        struct pool_reply *reply)
{
    const json_t *events = json_object_get(req->body, "events");
    char *text;
    int rc;

    if (!json_is_array(events) || json_array_size(events) > AUDIT_BATCH_MAX) {
        worker_reply_invalid_field(reply, "events", "must be an array of at most 1000");
        return 0;
    }
    text = json_dumps(events, JSON_COMPACT);
    if (text == NULL)
        return M360_ENOMEM;
    rc = db_exec(worker->db, "audit_append", 1, (const char *const *)&text, NULL);
    free(text);
    return rc;
}

static const struct pool_route audit_routes[] = {
    {"audit.append", audit_append},
};

static int audit_thread_init(struct pool_worker *worker)
{
    return db_prepare(worker->db, audit_stmts, sizeof(audit_stmts) / sizeof(audit_stmts[0]));
}

const struct pool_def audit_pool_def = {
    .name = "audit",
    .routes = audit_routes,
    .nroutes = sizeof(audit_routes) / sizeof(audit_routes[0]),
    .thread_init = audit_thread_init,
};
