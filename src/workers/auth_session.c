/* SPDX-License-Identifier: MIT */
/*
 * Sessions of the auth pool: opening one at login, ending them (each end revokes the
 * session's refresh tokens and is announced to every front end), the user's own list and
 * delete, and the front end's internal calls for its session cache.
 */
#include "auth_internal.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "manas360/err.h"
#include "manas360/log.h"

#define AUTH_TOUCH_MAX 1000
#define AUTH_TOUCH_TS_MAX 253402300799LL /* 9999-12-31T23:59:59Z, PostgreSQL's last year */
#define AUTH_TOUCH_TS_BYTES 21           /* a bigint in text and its separator */
#define AUTH_INT_BYTES 24

/* clang-format off */
static const struct db_stmt auth_session_stmts[] = {
    {"auth_session_insert",
     "INSERT INTO sessions (user_id, ip_address, user_agent, device_type, expires_at)"
     " VALUES ($1, $2::inet, $3, $4, now() + make_interval(secs => $5))"
     " RETURNING id",
     5},
    /* Also revokes live tokens of the user outside the ended sessions, which nothing
     * should have left behind. */
    {"auth_sessions_end_user",
     "WITH ended AS ("
     "  UPDATE sessions SET ended_at = now(), end_reason = $3"
     "   WHERE user_id = $1 AND ended_at IS NULL AND id IS DISTINCT FROM $2::uuid"
     "  RETURNING id),"
     " revoked AS ("
     "  UPDATE tokens SET status = 'revoked', revoked_at = coalesce(revoked_at, now()),"
     "         revoked_reason = $3"
     "   WHERE (session_id IN (SELECT id FROM ended) AND status <> 'revoked')"
     "      OR (user_id = $1 AND status = 'active'"
     "          AND session_id IS DISTINCT FROM $2::uuid)"
     "  RETURNING id)"
     " SELECT pg_notify('" AUTH_SESSION_CHANNEL "', id::text) FROM ended",
     3},
    {"auth_session_end",
     "WITH ended AS ("
     "  UPDATE sessions SET ended_at = now(), end_reason = $2"
     "   WHERE id = $1 AND ended_at IS NULL AND user_id = coalesce($3::uuid, user_id)"
     "  RETURNING id, user_id),"
     " revoked AS ("
     "  UPDATE tokens SET status = 'revoked', revoked_at = coalesce(revoked_at, now()),"
     "         revoked_reason = $2"
     "   WHERE session_id IN (SELECT id FROM ended) AND status <> 'revoked'"
     "  RETURNING id)"
     " SELECT user_id, pg_notify('" AUTH_SESSION_CHANNEL "', id::text) FROM ended",
     3},
    {"auth_sessions_list",
     "SELECT id, host(ip_address), user_agent, device_type,"
     "       " SQL_TIME_RFC3339("created_at") ","
     "       " SQL_TIME_RFC3339("last_activity") ","
     "       " SQL_TIME_RFC3339("expires_at") ","
     "       coalesce(id = $2::uuid, false)"
     "  FROM sessions"
     " WHERE user_id = $1 AND ended_at IS NULL AND expires_at > now()"
     " ORDER BY created_at DESC, id DESC",
     2},
    {"auth_session_get",
     "SELECT s.user_id,"
     "       s.ended_at IS NOT NULL OR NOT u.is_active OR u.deleted_at IS NOT NULL,"
     "       floor(extract(epoch FROM s.last_activity))::bigint,"
     "       floor(extract(epoch FROM s.expires_at))::bigint"
     "  FROM sessions s JOIN user_accounts u ON u.id = s.user_id"
     " WHERE s.id = $1",
     1},
    /* Activity only moves forward and never past now; one row per session however often
     * the batch names it. */
    {"auth_sessions_touch",
     "UPDATE sessions s SET last_activity = greatest(s.last_activity, b.ts)"
     "  FROM (SELECT id, least(to_timestamp(max(ts)), now()) AS ts"
     "          FROM unnest($1::uuid[], $2::bigint[]) AS u (id, ts)"
     "         GROUP BY id) b"
     " WHERE s.id = b.id AND s.ended_at IS NULL AND s.last_activity < b.ts",
     2},
    {"auth_sessions_active",
     "SELECT count(*) FROM sessions"
     " WHERE ended_at IS NULL AND expires_at > now()"
     "   AND last_activity > now() - make_interval(secs => $1)",
     1},
};
/* clang-format on */

int auth_session_prepare(struct db *db)
{
    return db_prepare(db, auth_session_stmts,
                      sizeof(auth_session_stmts) / sizeof(auth_session_stmts[0]));
}

static bool auth_agent_has_any(const char *agent, const char *const *words)
{
    for (; *words != NULL; words++) {
        if (strstr(agent, *words) != NULL)
            return true;
    }
    return false;
}

const char *auth_device_type(const char *user_agent)
{
    static const char *const bots[] = {"bot",  "crawl",           "spider",     "slurp", "curl",
                                       "wget", "python-requests", "httpclient", NULL};
    static const char *const tablets[] = {"ipad", "tablet", NULL};
    static const char *const mobiles[] = {"mobi", "iphone", "ipod", "android", NULL};
    static const char *const desktops[] = {"windows", "macintosh", "x11", "linux", "cros", NULL};
    char agent[WORKER_USER_AGENT_MAX_BYTES];
    size_t n = 0;

    if (user_agent == NULL)
        return "unknown";
    for (; user_agent[n] != '\0' && n + 1 < sizeof(agent); n++)
        agent[n] = (char)tolower((unsigned char)user_agent[n]);
    agent[n] = '\0';

    /* Order matters: Android phones say "Linux", tablets say "Android" without "Mobile". */
    if (auth_agent_has_any(agent, bots))
        return "bot";
    if (auth_agent_has_any(agent, tablets) ||
        (strstr(agent, "android") != NULL && strstr(agent, "mobile") == NULL))
        return "tablet";
    if (auth_agent_has_any(agent, mobiles))
        return "mobile";
    if (auth_agent_has_any(agent, desktops))
        return "desktop";
    return "unknown";
}

int auth_session_open(struct db *db, const struct pool_request *req, const char *user_id,
                      int64_t ttl_s, char sid[TOKEN_ID_BYTES])
{
    struct worker_client client;
    char ttl[AUTH_INT_BYTES];
    PGresult *res = NULL;
    int rc;

    worker_client_read(req, &client);
    snprintf(ttl, sizeof(ttl), "%" PRId64, ttl_s);
    {
        const char *params[] = {user_id, client.ip, client.user_agent,
                                auth_device_type(client.user_agent), ttl};

        rc = db_exec(db, "auth_session_insert", 5, params, &res);
    }
    if (rc == 0)
        snprintf(sid, TOKEN_ID_BYTES, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    return rc;
}

int auth_sessions_end_user(struct db *db, const char *user_id, const char *keep_sid,
                           const char *reason, int *ended)
{
    const char *params[] = {user_id, keep_sid, reason};
    PGresult *res = NULL;
    int rc = db_exec(db, "auth_sessions_end_user", 3, params, &res);

    if (rc == 0)
        *ended = PQntuples(res);
    PQclear(res);
    return rc;
}

int auth_session_end(struct db *db, const char *sid, const char *user_id, const char *reason,
                     char owner[TOKEN_ID_BYTES])
{
    const char *params[] = {sid, reason, user_id};
    PGresult *res = NULL;
    int rc = db_exec(db, "auth_session_end", 3, params, &res);

    owner[0] = '\0';
    if (rc == 0 && PQntuples(res) == 1)
        snprintf(owner, TOKEN_ID_BYTES, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    return rc;
}

/* ---- sessions.list ------------------------------------------------------------------- */

static json_t *auth_session_json(const PGresult *res, int row)
{
    return json_pack("{s:s, s:s?, s:s?, s:s, s:s, s:s, s:s, s:b}", "id", PQgetvalue(res, row, 0),
                     "ipAddress", row_text(res, row, 1), "userAgent", row_text(res, row, 2),
                     "deviceType", PQgetvalue(res, row, 3), "createdAt", PQgetvalue(res, row, 4),
                     "lastActivity", PQgetvalue(res, row, 5), "expiresAt", PQgetvalue(res, row, 6),
                     "current", row_bool(res, row, 7));
}

int auth_sessions_json(struct db *db, const char *user_id, const char *current_sid,
                       json_t **sessions)
{
    const char *params[] = {user_id, current_sid};
    PGresult *res = NULL;
    json_t *list;
    int rc;

    *sessions = NULL;
    rc = db_exec(db, "auth_sessions_list", 2, params, &res);
    if (rc != 0)
        return rc;
    list = json_array();
    for (int i = 0; list != NULL && i < PQntuples(res); i++) {
        if (json_array_append_new(list, auth_session_json(res, i)) != 0) {
            json_decref(list);
            list = NULL;
        }
    }
    PQclear(res);
    if (list == NULL)
        return M360_ENOMEM;
    *sessions = list;
    return 0;
}

int auth_sessions_list(struct pool_worker *worker, const struct pool_request *req,
                       struct pool_reply *reply)
{
    const char *user_id = worker_ctx_user(req);
    json_t *sessions = NULL;
    int rc;

    if (!worker_body_ok(req, NULL, 0, reply))
        return 0;
    if (user_id == NULL) {
        worker_reply_unauthorized(reply);
        return 0;
    }

    rc = auth_sessions_json(worker->db, user_id, worker_ctx_session(req), &sessions);
    if (rc != 0)
        return rc;
    return worker_reply_json(reply, 200,
                             json_pack("{s:b, s:o}", "success", 1, "sessions", sessions));
}

/* ---- sessions.delete and session.end_idle -------------------------------------------- */

/* Ends one session and audits it, in one transaction. */
struct auth_session_end_tx {
    const struct pool_request *req;
    const char *sid;
    const char *user_id; /* the caller, who must own it; NULL for the front end's own call */
    const char *reason;
    char owner[TOKEN_ID_BYTES]; /* "" when nothing was ended */
};

static int auth_session_end_body(struct db *db, void *arg)
{
    struct auth_session_end_tx *tx = arg;
    int rc;

    rc = auth_session_end(db, tx->sid, tx->user_id, tx->reason, tx->owner);
    if (rc != 0 || tx->owner[0] == '\0')
        return rc;

    {
        struct worker_audit audit = {.user_id = tx->owner,
                                     .event = "session_ended",
                                     .resource_type = "session",
                                     .resource_id = tx->sid,
                                     .action = "end",
                                     .details = json_pack("{s:s}", "reason", tx->reason)};

        rc = worker_audit_write(db, tx->req, &audit);
    }
    return rc;
}

int auth_sessions_delete(struct pool_worker *worker, const struct pool_request *req,
                         struct pool_reply *reply)
{
    struct auth_session_end_tx tx = {.req = req, .reason = AUTH_END_BY_USER};
    int rc;

    if (!worker_body_ok(req, NULL, 0, reply))
        return 0;
    tx.user_id = worker_ctx_user(req);
    if (tx.user_id == NULL) {
        worker_reply_unauthorized(reply);
        return 0;
    }

    /* Not a UUID, unknown, ended or someone else's: all look the same from outside. */
    tx.sid = json_string_value(json_object_get(req->params, "id"));
    rc = input_uuid_valid(tx.sid) ? db_tx(worker->db, auth_session_end_body, &tx) : 0;
    if (rc != 0)
        return rc;
    if (tx.owner[0] == '\0') {
        pool_reply_error(reply, 404, "NotFound", "Session not found", NULL);
        return 0;
    }

    log_info(AUTH_LOG_MODULE, "event=session_ended req_id=%s user_id=%s session_id=%s reason=%s",
             worker_ctx_request_id(req), tx.owner, tx.sid, tx.reason);
    return worker_reply_json(reply, 200, json_pack("{s:b}", "success", 1));
}

static const struct input_field auth_session_id_spec[] = {
    {"session_id", INPUT_UUID, INPUT_REQUIRED, 0},
};

int auth_session_end_idle(struct pool_worker *worker, const struct pool_request *req,
                          struct pool_reply *reply)
{
    struct auth_session_end_tx tx = {.req = req, .reason = AUTH_END_IDLE};
    int rc;

    if (!worker_body_ok(req, auth_session_id_spec,
                        sizeof(auth_session_id_spec) / sizeof(auth_session_id_spec[0]), reply))
        return 0;

    tx.sid = input_str(req->body, "session_id");
    rc = db_tx(worker->db, auth_session_end_body, &tx);
    if (rc != 0)
        return rc;
    if (tx.owner[0] != '\0')
        log_info(AUTH_LOG_MODULE, "event=session_ended user_id=%s session_id=%s reason=%s",
                 tx.owner, tx.sid, tx.reason);
    return worker_reply_json(reply, 200,
                             json_pack("{s:b, s:b}", "success", 1, "ended", tx.owner[0] != '\0'));
}

/* ---- session.get --------------------------------------------------------------------- */

int auth_session_get(struct pool_worker *worker, const struct pool_request *req,
                     struct pool_reply *reply)
{
    const char *params[1];
    PGresult *res = NULL;
    json_t *body;
    int rc;

    if (!worker_body_ok(req, auth_session_id_spec,
                        sizeof(auth_session_id_spec) / sizeof(auth_session_id_spec[0]), reply))
        return 0;

    params[0] = input_str(req->body, "session_id");
    rc = db_exec(worker->db, "auth_session_get", 1, params, &res);
    if (rc != 0)
        return rc;
    if (PQntuples(res) != 1)
        body = json_pack("{s:b, s:b, s:n, s:b, s:i, s:i}", "success", 1, "found", 0, "userId",
                         "ended", 1, "lastActivity", 0, "expiresAt", 0);
    else
        body =
            json_pack("{s:b, s:b, s:s, s:b, s:I, s:I}", "success", 1, "found", 1, "userId",
                      PQgetvalue(res, 0, 0), "ended", row_bool(res, 0, 1), "lastActivity",
                      (json_int_t)row_int(res, 0, 2), "expiresAt", (json_int_t)row_int(res, 0, 3));
    PQclear(res);
    return worker_reply_json(reply, 200, body);
}

/* ---- session.touch ------------------------------------------------------------------- */

static const struct input_field auth_touch_spec[] = {
    {"sessions", INPUT_ARRAY, INPUT_REQUIRED, 0},
};

/*
 * Renders the batch as two PostgreSQL array literals, {id,...} and {ts,...}. Only checked
 * UUIDs and integers go in, so nothing needs quoting. False when an entry is not a
 * [session id, unix seconds] pair.
 */
static bool auth_touch_arrays(const json_t *batch, char *ids, char *stamps)
{
    size_t ids_at = 1;
    size_t stamps_at = 1;

    ids[0] = '{';
    stamps[0] = '{';
    for (size_t i = 0; i < json_array_size(batch); i++) {
        const json_t *entry = json_array_get(batch, i);
        const char *sid = json_string_value(json_array_get(entry, 0));
        const json_t *ts = json_array_get(entry, 1);
        const char *sep = i > 0 ? "," : "";

        if (json_array_size(entry) != 2 || !input_uuid_valid(sid) || !json_is_integer(ts) ||
            json_integer_value(ts) < 0 || json_integer_value(ts) > AUTH_TOUCH_TS_MAX)
            return false;
        ids_at += (size_t)sprintf(ids + ids_at, "%s%s", sep, sid);
        stamps_at +=
            (size_t)sprintf(stamps + stamps_at, "%s%lld", sep, (long long)json_integer_value(ts));
    }
    memcpy(ids + ids_at, "}", 2);
    memcpy(stamps + stamps_at, "}", 2);
    return true;
}

static int auth_touch_refuse(struct pool_reply *reply, const char *reason)
{
    json_t *fields = json_pack("{s:s}", "sessions", reason);

    if (fields == NULL)
        return M360_ENOMEM;
    worker_reply_invalid(reply, fields);
    return 0;
}

int auth_session_touch(struct pool_worker *worker, const struct pool_request *req,
                       struct pool_reply *reply)
{
    const json_t *batch = json_object_get(req->body, "sessions");
    size_t n = json_array_size(batch);
    char *ids = NULL;
    char *stamps = NULL;
    PGresult *res = NULL;
    long long updated = 0;
    int rc = 0;

    if (!worker_body_ok(req, auth_touch_spec, sizeof(auth_touch_spec) / sizeof(auth_touch_spec[0]),
                        reply))
        return 0;
    if (n > AUTH_TOUCH_MAX)
        return auth_touch_refuse(reply, "must hold at most 1000 entries");
    if (n == 0)
        goto reply;

    ids = malloc(n * TOKEN_ID_BYTES + 3);
    stamps = malloc(n * AUTH_TOUCH_TS_BYTES + 3);
    if (ids == NULL || stamps == NULL) {
        rc = M360_ENOMEM;
        goto done;
    }
    if (!auth_touch_arrays(batch, ids, stamps)) {
        rc = auth_touch_refuse(reply, "must be [session id, unix seconds] pairs");
        goto done;
    }
    {
        const char *params[] = {ids, stamps};

        rc = db_exec(worker->db, "auth_sessions_touch", 2, params, &res);
    }
    if (rc != 0)
        goto done;
    updated = strtoll(PQcmdTuples(res), NULL, 10);

reply:
    rc = worker_reply_json(reply, 200,
                           json_pack("{s:b, s:I}", "success", 1, "updated", (json_int_t)updated));
done:
    PQclear(res);
    free(ids);
    free(stamps);
    return rc;
}

/* ---- auth.stats ---------------------------------------------------------------------- */

int auth_stats(struct pool_worker *worker, const struct pool_request *req, struct pool_reply *reply)
{
    char idle[AUTH_INT_BYTES];
    const char *params[] = {idle};
    PGresult *res = NULL;
    json_int_t active;
    int rc;

    if (!worker_body_ok(req, NULL, 0, reply))
        return 0;

    snprintf(idle, sizeof(idle), "%" PRId64, worker->cfg->session_idle_timeout_s);
    rc = db_exec(worker->db, "auth_sessions_active", 1, params, &res);
    if (rc != 0)
        return rc;
    active = (json_int_t)row_int(res, 0, 0);
    PQclear(res);
    return worker_reply_json(reply, 200,
                             json_pack("{s:b, s:I}", "success", 1, "activeSessions", active));
}
