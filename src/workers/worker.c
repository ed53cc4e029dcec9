/* SPDX-License-Identifier: MIT */
/* Helpers every pool's handlers share: context, body checks, replies and audit rows. */
#include "worker.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "manas360/err.h"

#define WORKER_REQUEST_ID_MAX_CHARS 128
#define WORKER_REQUEST_ID_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-"

static const struct db_stmt worker_stmts[] = {
    {"worker_audit_insert",
     "INSERT INTO audit_logs (user_id, event_type, resource_type, resource_id, action, status,"
     " details, ip_address, user_agent)"
     " VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8::inet, $9)",
     9},
};

int worker_prepare(struct db *db)
{
    return db_prepare(db, worker_stmts, sizeof(worker_stmts) / sizeof(worker_stmts[0]));
}

static const char *worker_ctx_uuid(const struct pool_request *req, const char *key)
{
    const char *value = json_string_value(json_object_get(req->ctx, key));

    return input_uuid_valid(value) ? value : NULL;
}

const char *worker_ctx_user(const struct pool_request *req)
{
    return worker_ctx_uuid(req, "user_id");
}

const char *worker_ctx_session(const struct pool_request *req)
{
    return worker_ctx_uuid(req, "session_id");
}

const char *worker_ctx_request_id(const struct pool_request *req)
{
    const char *id = json_string_value(json_object_get(req->ctx, "request_id"));
    size_t len = id != NULL ? strlen(id) : 0;

    /* Logged bare, so only the characters the front end itself accepts may pass. */
    if (len == 0 || len > WORKER_REQUEST_ID_MAX_CHARS || strspn(id, WORKER_REQUEST_ID_CHARS) != len)
        return "none";
    return id;
}

void worker_client_read(const struct pool_request *req, struct worker_client *out)
{
    const char *ip = req != NULL ? json_string_value(json_object_get(req->ctx, "ip")) : NULL;
    const char *agent =
        req != NULL ? json_string_value(json_object_get(req->ctx, "user_agent")) : NULL;
    unsigned char addr[sizeof(struct in6_addr)];

    out->ip = NULL;
    out->user_agent = NULL;
    if (ip != NULL && strlen(ip) < sizeof(out->ip_buf) &&
        (inet_pton(AF_INET, ip, addr) == 1 || inet_pton(AF_INET6, ip, addr) == 1)) {
        memcpy(out->ip_buf, ip, strlen(ip) + 1);
        out->ip = out->ip_buf;
    }

    if (agent != NULL) {
        size_t n = input_utf8_prefix(agent, strlen(agent), WORKER_USER_AGENT_MAX_CHARS);

        if (n >= sizeof(out->agent_buf))
            n = sizeof(out->agent_buf) - 1;
        memcpy(out->agent_buf, agent, n);
        out->agent_buf[n] = '\0';
        out->user_agent = out->agent_buf;
    }
}

int worker_audit_write(struct db *db, const struct pool_request *req,
                       const struct worker_audit *row)
{
    const char *request_id = req != NULL ? worker_ctx_request_id(req) : "none";
    const char *status = row->failed ? "failure" : "success";
    json_t *details = row->details;
    struct worker_client client;
    char *text = NULL;
    int rc = M360_ENOMEM;

    if (details == NULL)
        goto done;
    if (strcmp(request_id, "none") != 0 &&
        json_object_set_new(details, "requestId", json_string(request_id)) != 0)
        goto done;
    text = json_dumps(details, JSON_COMPACT);
    if (text == NULL)
        goto done;

    worker_client_read(req, &client);
    {
        const char *params[] = {
            row->user_id, row->event, row->resource_type, row->resource_id, row->action,
            status,       text,       client.ip,          client.user_agent};

        rc = db_exec(db, "worker_audit_insert", 9, params, NULL);
    }

done:
    free(text);
    json_decref(details);
    return rc;
}

void worker_reply_invalid(struct pool_reply *reply, json_t *fields)
{
    pool_reply_error(reply, 400, "ValidationError", "Validation failed",
                     json_pack("{s:o}", "fields", fields));
}

void worker_reply_unauthorized(struct pool_reply *reply)
{
    pool_reply_error(reply, 401, "Unauthorized", "Authentication required", NULL);
}

int worker_reply_json(struct pool_reply *reply, int status, json_t *body)
{
    if (body == NULL)
        return M360_ENOMEM;
    pool_reply_json(reply, status, body);
    return 0;
}

void worker_reply_invalid_field(struct pool_reply *reply, const char *field, const char *reason)
{
    worker_reply_invalid(reply, json_pack("{s:s}", field, reason));
}

void worker_reply_not_found(struct pool_reply *reply)
{
    pool_reply_error(reply, 404, "NotFound", "Not found", NULL);
}

bool worker_body_ok(const struct pool_request *req, const struct input_field *spec, size_t nspec,
                    struct pool_reply *reply)
{
    json_t *fields = NULL;
    int rc = input_check(req->body, spec, nspec, &fields);

    if (rc == 0)
        return true;
    if (rc == M360_EINVAL)
        worker_reply_invalid(reply, fields);
    else
        pool_reply_error(reply, 500, "InternalError", "Internal error", NULL);
    return false;
}
