/* SPDX-License-Identifier: MIT */
/*
 * The auth pool against a real database over real ZeroMQ: every message type, every error
 * it answers, and the rows each change leaves behind (sessions, tokens, audit).
 */
#include <crypt.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <criterion/criterion.h>
#include <jansson.h>
#include <sodium.h>
#include <zmq.h>

#include "../src/workers/auth_internal.h"
#include "manas360/auth.h"
#include "manas360/db.h"
#include "manas360/err.h"
#include "manas360/log.h"
#include "manas360/pool.h"
#include "manas360/token.h"
#include "test_support.h"

#define TEST_ENDPOINT "inproc://auth-test"
#define TEST_CALL_TIMEOUT_MS 30000
#define TEST_ACCESS_TTL_S 900
#define TEST_REFRESH_TTL_S 3600
#define TEST_IDLE_S 1800
#define TEST_PASSWORD "correct horse battery"
#define TEST_AGENT "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0"
#define TEST_IPHONE "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile/15E148"
#define TEST_NOTIFY_WAIT_MS 5000

static char access_secret[] = "test-access-secret-0123456789abcdefghijkl";
static char refresh_secret[] = "test-refresh-secret-0123456789abcdefghijk";

static struct tsupport_db test_db;
static struct cfg test_cfg;
static void *zctx;
static struct pool *pool;
static struct pool_stats stats;
static struct pool_client *client;
static PGconn *conn;

/* What the pool answered. */
struct answer {
    int status;
    char *headers;
    json_t *body;
};

/* A logged-in user: ids and both tokens. */
struct login {
    char user_id[TOKEN_ID_BYTES];
    char sid[TOKEN_ID_BYTES];
    char access[TOKEN_MAX_BYTES];
    char refresh[TOKEN_MAX_BYTES];
};

static void auth_test_setup(void)
{
    cr_assert_geq(sodium_init(), 0);
    log_init(LOG_LEVEL_ERR, NULL);
    tsupport_db_migrated(&test_db);

    test_cfg = (struct cfg){
        .database_url = test_db.url,
        .jwt_secret = access_secret,
        .jwt_refresh_secret = refresh_secret,
        .jwt_expiry_s = TEST_ACCESS_TTL_S,
        .jwt_refresh_expiry_s = TEST_REFRESH_TTL_S,
        .session_idle_timeout_s = TEST_IDLE_S,
        .pool_threads = 2,
    };
    zctx = zmq_ctx_new();
    cr_assert_not_null(zctx);
    pool = pool_new(zctx, &auth_pool_def, &test_cfg, TEST_ENDPOINT, 2);
    cr_assert_not_null(pool);
    client = pool_client_new(zctx, TEST_ENDPOINT, &stats);
    cr_assert_not_null(client);
    conn = tsupport_connect(test_db.url);
}

static void auth_test_teardown(void)
{
    pool_client_destroy(&client);
    pool_destroy(&pool);
    if (zctx != NULL)
        zmq_ctx_term(zctx);
    zctx = NULL;
    if (conn != NULL)
        PQfinish(conn);
    conn = NULL;
    tsupport_db_destroy(&test_db);
}

TestSuite(auth, .init = auth_test_setup, .fini = auth_test_teardown, .timeout = 120);

/* ---- Calling the pool ----------------------------------------------------------------- */

static json_t *ctx_of(const char *user_id, const char *sid, const char *agent)
{
    json_t *ctx = json_pack("{s:s, s:s, s:s}", "request_id", "test-req-1", "ip", "127.0.0.1",
                            "user_agent", agent != NULL ? agent : TEST_AGENT);

    if (user_id != NULL)
        json_object_set_new(ctx, "user_id", json_string(user_id));
    if (sid != NULL)
        json_object_set_new(ctx, "session_id", json_string(sid));
    return ctx;
}

/* Sends one message through `with` (steals ctx, body and params; NULL means {}). */
static struct answer call_with(struct pool_client *with, const char *type, json_t *ctx,
                               json_t *body, json_t *params)
{
    json_t *payload = json_pack("{s:o, s:o, s:o}", "ctx", ctx != NULL ? ctx : json_object(), "body",
                                body != NULL ? body : json_object(), "params",
                                params != NULL ? params : json_object());
    char *text = json_dumps(payload, JSON_COMPACT);
    struct answer a = {0};
    char *body_text = NULL;
    int rc = M360_EUNAVAILABLE;

    cr_assert_not_null(text);
    /* An inproc client may need a moment to see the bound pool. */
    for (int tries = 0; tries < 100 && rc == M360_EUNAVAILABLE; tries++) {
        rc = pool_client_call(with, type, text, strlen(text), TEST_CALL_TIMEOUT_MS, &a.status,
                              &a.headers, &body_text);
        if (rc == M360_EUNAVAILABLE)
            poll(NULL, 0, 10);
    }
    cr_assert_eq(rc, 0, "%s: call failed: %s", type, err_str(rc));
    a.body = json_loads(body_text, 0, NULL);
    cr_assert_not_null(a.body, "%s: reply is not JSON: %s", type, body_text);
    free(body_text);
    free(text);
    json_decref(payload);
    return a;
}

static struct answer call(const char *type, json_t *ctx, json_t *body, json_t *params)
{
    return call_with(client, type, ctx, body, params);
}

static void answer_free(struct answer *a)
{
    free(a->headers);
    json_decref(a->body);
    memset(a, 0, sizeof(*a));
}

static const char *jstr(const json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

static const json_t *juser(const struct answer *a)
{
    return json_object_get(a->body, "user");
}

/* Asserts an error answer: status, success false, the error code and a message. */
static void expect_error(const struct answer *a, int status, const char *error)
{
    cr_expect_eq(a->status, status, "status %d, wanted %d (%s)", a->status, status, error);
    cr_expect(json_is_false(json_object_get(a->body, "success")));
    cr_expect_str_eq(jstr(a->body, "error"), error);
    cr_expect_not_null(jstr(a->body, "message"));
}

/* Asserts 400 ValidationError naming `field`. */
static void expect_invalid(struct answer *a, const char *field)
{
    expect_error(a, 400, "ValidationError");
    cr_expect_not_null(json_object_get(json_object_get(a->body, "fields"), field),
                       "fields has no \"%s\"", field);
    answer_free(a);
}

static bool is_rfc3339_utc(const char *text)
{
    int y, mo, d, h, mi, s;
    char z = 0;

    return text != NULL && strlen(text) == 20 &&
           sscanf(text, "%4d-%2d-%2dT%2d:%2d:%2d%c", &y, &mo, &d, &h, &mi, &s, &z) == 7 && z == 'Z';
}

/* ---- Database checks ------------------------------------------------------------------ */

static long db_long(const char *sql, int nparams, const char *const *params)
{
    return tsupport_scalar(conn, sql, nparams, params);
}

static long db_long1(const char *sql, const char *param)
{
    const char *params[] = {param};

    return db_long(sql, 1, params);
}

/* The first value of the first row (malloc'd), or NULL for SQL NULL or no row. */
static char *db_text1(const char *sql, const char *param)
{
    const char *params[] = {param};
    PGresult *res = tsupport_query(conn, sql, param != NULL ? 1 : 0, params);
    char *value = NULL;

    cr_assert_eq(PQresultStatus(res), PGRES_TUPLES_OK, "%s: %s", sql, PQresultErrorMessage(res));
    if (PQntuples(res) > 0 && !PQgetisnull(res, 0, 0))
        value = strdup(PQgetvalue(res, 0, 0));
    PQclear(res);
    return value;
}

static void db_run(const char *sql, int nparams, const char *const *params)
{
    PGresult *res = tsupport_query(conn, sql, nparams, params);

    cr_assert(PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK,
              "%s: %s", sql, PQresultErrorMessage(res));
    PQclear(res);
}

static long audit_count(const char *event, const char *status)
{
    const char *params[] = {event, status};

    return db_long("SELECT count(*) FROM audit_logs WHERE event_type = $1 AND status = $2", 2,
                   params);
}

/* ---- Common steps --------------------------------------------------------------------- */

static struct answer do_register(const char *email, const char *password)
{
    return call("auth.register", ctx_of(NULL, NULL, NULL),
                json_pack("{s:s, s:s}", "email", email, "password", password), NULL);
}

/* Registers and returns the new user's id (malloc'd). */
static char *register_user(const char *email)
{
    struct answer a = do_register(email, TEST_PASSWORD);
    char *id;

    cr_assert_eq(a.status, 201, "register %s: %d", email, a.status);
    id = strdup(jstr(juser(&a), "id"));
    answer_free(&a);
    return id;
}

static struct answer do_login(const char *email, const char *password, const char *agent)
{
    return call("auth.login", ctx_of(NULL, NULL, agent),
                json_pack("{s:s, s:s}", "email", email, "password", password), NULL);
}

static void tokens_read(const struct answer *a, struct login *out)
{
    struct token_keys keys = {access_secret, refresh_secret, TEST_ACCESS_TTL_S, TEST_REFRESH_TTL_S};
    struct token_claims claims;

    snprintf(out->access, sizeof(out->access), "%s", jstr(a->body, "accessToken"));
    snprintf(out->refresh, sizeof(out->refresh), "%s", jstr(a->body, "refreshToken"));
    cr_assert_eq(token_verify(&keys, TOKEN_ACCESS, out->access, time(NULL), &claims), TOKEN_VALID);
    snprintf(out->user_id, sizeof(out->user_id), "%s", claims.sub);
    snprintf(out->sid, sizeof(out->sid), "%s", claims.sid);
    cr_assert_eq(token_verify(&keys, TOKEN_REFRESH, out->refresh, time(NULL), &claims),
                 TOKEN_VALID);
    cr_assert_str_eq(claims.sub, out->user_id);
    cr_assert_str_eq(claims.sid, out->sid);
}

static struct login login_as(const char *email, const char *agent)
{
    struct answer a = do_login(email, TEST_PASSWORD, agent);
    struct login l;

    cr_assert_eq(a.status, 200, "login %s: %d %s", email, a.status, jstr(a.body, "error"));
    tokens_read(&a, &l);
    answer_free(&a);
    return l;
}

static struct answer do_refresh(const char *refresh)
{
    return call("auth.refresh", ctx_of(NULL, NULL, NULL),
                json_pack("{s:s}", "refreshToken", refresh), NULL);
}

static void hash_hex(const char *token, char out[65])
{
    token_hash_hex(token, out);
}

static char *token_status(const char *refresh)
{
    char hash[65];

    hash_hex(refresh, hash);
    return db_text1("SELECT status FROM tokens WHERE token_hash = decode($1, 'hex')", hash);
}

static void expect_token_status(const char *refresh, const char *want)
{
    char *status = token_status(refresh);

    cr_expect(status != NULL && strcmp(status, want) == 0, "token status %s, wanted %s",
              status != NULL ? status : "(none)", want);
    free(status);
}

static char *session_end_reason(const char *sid)
{
    return db_text1("SELECT end_reason FROM sessions WHERE id = $1", sid);
}

static void expect_session_ended(const char *sid, const char *reason)
{
    char *got = session_end_reason(sid);

    cr_expect(got != NULL && strcmp(got, reason) == 0, "session %s end_reason %s, wanted %s", sid,
              got != NULL ? got : "(open)", reason);
    free(got);
}

static void expect_session_open(const char *sid)
{
    cr_expect_eq(db_long1("SELECT count(*) FROM sessions WHERE id = $1 AND ended_at IS NULL", sid),
                 1, "session %s is not open", sid);
}

/* Starts listening for session ends on a connection of its own. */
static PGconn *listener_new(void)
{
    PGconn *listener = tsupport_connect(test_db.url);
    PGresult *res = PQexec(listener, "LISTEN " AUTH_SESSION_CHANNEL);

    cr_assert_eq(PQresultStatus(res), PGRES_COMMAND_OK);
    PQclear(res);
    return listener;
}

/* Waits for `want` notifications and checks each payload is one of `sids`. */
static void expect_notified(PGconn *listener, const char *const *sids, int want)
{
    int got = 0;

    for (int waited = 0; got < want && waited < TEST_NOTIFY_WAIT_MS; waited += 50) {
        struct pollfd pfd = {.fd = PQsocket(listener), .events = POLLIN};
        PGnotify *note;

        poll(&pfd, 1, 50);
        PQconsumeInput(listener);
        while ((note = PQnotifies(listener)) != NULL) {
            bool known = false;

            for (int i = 0; i < want; i++)
                known = known || strcmp(note->extra, sids[i]) == 0;
            cr_expect(known, "unexpected notification %s", note->extra);
            cr_expect_str_eq(note->relname, AUTH_SESSION_CHANNEL);
            got++;
            PQfreemem(note);
        }
    }
    cr_expect_eq(got, want, "%d notifications, wanted %d", got, want);
}

/* ---- auth.register -------------------------------------------------------------------- */

Test(auth, register_creates_account_subscription_and_audit)
{
    struct answer a = call("auth.register", ctx_of(NULL, NULL, NULL),
                           json_pack("{s:s, s:s, s:s, s:n, s:s}", "email", "  Alice@Example.COM ",
                                     "password", TEST_PASSWORD, "firstName", "Alice", "lastName",
                                     "phoneNumber", "+919876543210"),
                           NULL);
    const json_t *user = juser(&a);
    const char *id = jstr(user, "id");
    char *hash;

    cr_assert_eq(a.status, 201);
    cr_expect(json_is_true(json_object_get(a.body, "success")));
    cr_assert(input_uuid_valid(id));
    cr_expect_str_eq(jstr(user, "email"), "alice@example.com");
    cr_expect_str_eq(jstr(user, "role"), "user");
    cr_expect_str_eq(jstr(user, "firstName"), "Alice");
    cr_expect(json_is_null(json_object_get(user, "lastName")));
    cr_expect(is_rfc3339_utc(jstr(user, "createdAt")), "createdAt %s", jstr(user, "createdAt"));
    cr_expect_eq(json_object_size(user), 6);

    cr_expect_eq(db_long1("SELECT count(*) FROM user_accounts u JOIN roles r ON r.id = u.role_id"
                          " WHERE u.id = $1 AND u.email = 'alice@example.com' AND r.name = 'user'"
                          " AND u.phone_number = '+919876543210' AND NOT u.is_verified",
                          id),
                 1);
    hash = db_text1("SELECT password_hash FROM user_accounts WHERE id = $1", id);
    cr_expect(hash != NULL && strncmp(hash, "$argon2id$", 10) == 0);
    free(hash);
    cr_expect_eq(db_long1("SELECT count(*) FROM user_subscriptions s"
                          " JOIN subscription_plans p ON p.id = s.plan_id"
                          " WHERE s.user_id = $1 AND p.name = 'Free' AND s.status = 'active'"
                          " AND s.ends_at IS NULL AND NOT s.is_trial",
                          id),
                 1);
    cr_expect_eq(db_long1("SELECT count(*) FROM audit_logs WHERE event_type = 'register'"
                          " AND user_id = $1 AND status = 'success' AND ip_address = '127.0.0.1'"
                          " AND details->>'requestId' = 'test-req-1'",
                          id),
                 1);
    answer_free(&a);
}

Test(auth, register_duplicate_email_in_any_case_is_409)
{
    struct answer a;

    free(register_user("bob@example.com"));
    a = do_register(" BOB@Example.com", "another password");
    expect_error(&a, 409, "EmailAlreadyRegistered");
    answer_free(&a);
    cr_expect_eq(db_long("SELECT count(*) FROM user_accounts", 0, NULL), 1);
    cr_expect_eq(db_long("SELECT count(*) FROM user_subscriptions", 0, NULL), 1);
    cr_expect_eq(audit_count("register", "success"), 1);
}

Test(auth, register_refuses_bad_emails)
{
    static const char *const bad[] = {"a..b@x.com", ".a@x.com", "a.@x.com",  "a@x",
                                      "a@-x.com",   "a@x-.com", "a b@x.com", "",
                                      "no-at-sign", "a@x..com", "a@x_y.com"};
    char long_email[300];
    struct answer a;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        a = do_register(bad[i], TEST_PASSWORD);
        cr_expect_eq(a.status, 400, "accepted \"%s\"", bad[i]);
        expect_invalid(&a, "email");
    }

    /* 243 + 12 = 255 characters: one too many. */
    memset(long_email, 'a', 243);
    snprintf(long_email + 243, sizeof(long_email) - 243, "@example.com");
    a = do_register(long_email, TEST_PASSWORD);
    expect_invalid(&a, "email");

    /* 254 is the limit itself. */
    snprintf(long_email + 242, sizeof(long_email) - 242, "@example.com");
    a = do_register(long_email, TEST_PASSWORD);
    cr_expect_eq(a.status, 201);
    answer_free(&a);
    cr_expect_eq(db_long("SELECT count(*) FROM user_accounts", 0, NULL), 1);
}

Test(auth, register_password_length_counts_characters)
{
    char p129[130];
    struct answer a;

    a = do_register("p7@example.com", "1234567");
    expect_invalid(&a, "password");
    memset(p129, 'x', 129);
    p129[129] = '\0';
    a = do_register("p129@example.com", p129);
    expect_invalid(&a, "password");

    /* Seven two-byte characters are 14 bytes but still seven characters. */
    a = do_register("p7mb@example.com", "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9");
    expect_invalid(&a, "password");

    /* Eight multibyte characters pass, and the same eight log in. */
    a = do_register("p8mb@example.com", "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xe2\x82\xac\xe2\x82\xac"
                                        "\xe2\x82\xac\xe2\x82\xac");
    cr_expect_eq(a.status, 201);
    answer_free(&a);
    a = do_login("p8mb@example.com",
                 "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac",
                 NULL);
    cr_expect_eq(a.status, 200);
    answer_free(&a);
    cr_expect_eq(db_long("SELECT count(*) FROM user_accounts", 0, NULL), 1);
}

/*
 * Runs one handler on this thread with its own connection, skipping the pool's wire format:
 * the runtime refuses a payload holding a NUL character before any handler sees it, so the
 * handlers' own refusal of NUL can only be reached this way.
 */
static struct answer call_handler(const char *type, json_t *body)
{
    struct pool_worker worker = {.db = db_new(test_db.url), .cfg = &test_cfg, .pool_name = "auth"};
    struct pool_reply reply = {.status = 200};
    json_t *ctx = ctx_of(NULL, NULL, NULL);
    json_t *params = json_object();
    struct pool_request req = {
        .type = type, .ctx = ctx, .body = body, .params = params, .now = time(NULL)};
    pool_handler_fn handler = NULL;
    struct answer a = {0};

    cr_assert_not_null(worker.db);
    cr_assert_eq(auth_pool_def.thread_init(&worker), 0);
    for (int i = 0; i < auth_pool_def.nroutes; i++) {
        if (strcmp(auth_pool_def.routes[i].type, type) == 0)
            handler = auth_pool_def.routes[i].handler;
    }
    cr_assert_not_null(handler);
    cr_assert_eq(handler(&worker, &req, &reply), 0);
    a.status = reply.status;
    a.headers = strdup(reply.headers);
    a.body = reply.body;
    json_decref(ctx);
    json_decref(params);
    json_decref(body);
    db_destroy(&worker.db);
    return a;
}

Test(auth, register_refuses_nul_wrong_types_and_unknown_fields)
{
    struct answer a;
    char name101[102];

    a = call_handler("auth.register",
                     json_pack("{s:s, s:s, s:s%}", "email", "n@example.com", "password",
                               TEST_PASSWORD, "firstName", "Ann\0Evil", (size_t)8));
    expect_invalid(&a, "firstName");
    a = call_handler("auth.register", json_pack("{s:s, s:s%}", "email", "n@example.com", "password",
                                                "12345678\0abc", (size_t)12));
    expect_invalid(&a, "password");
    a = call_handler("profile.patch", json_pack("{s:s%}", "lastName", "x\0y", (size_t)3));
    expect_invalid(&a, "lastName");

    a = call("auth.register", NULL, json_pack("{s:i, s:s}", "email", 42, "password", TEST_PASSWORD),
             NULL);
    expect_invalid(&a, "email");

    a = call("auth.register", NULL,
             json_pack("{s:s, s:b}", "email", "t@example.com", "password", 1), NULL);
    expect_invalid(&a, "password");

    a = call("auth.register", NULL,
             json_pack("{s:s, s:s, s:s}", "email", "r@example.com", "password", TEST_PASSWORD,
                       "role", "admin"),
             NULL);
    expect_invalid(&a, "role");

    a = call("auth.register", NULL,
             json_pack("{s:s, s:s, s:s}", "email", "ph@example.com", "password", TEST_PASSWORD,
                       "phoneNumber", "12345"),
             NULL);
    expect_invalid(&a, "phoneNumber");

    memset(name101, 'n', 101);
    name101[101] = '\0';
    a = call("auth.register", NULL,
             json_pack("{s:s, s:s, s:s}", "email", "nm@example.com", "password", TEST_PASSWORD,
                       "lastName", name101),
             NULL);
    expect_invalid(&a, "lastName");

    a = call("auth.register", NULL, json_object(), NULL);
    cr_expect_str_eq(jstr(json_object_get(a.body, "fields"), "password"), "is required");
    expect_invalid(&a, "email");

    cr_expect_eq(db_long("SELECT count(*) FROM user_accounts", 0, NULL), 0);
    cr_expect_eq(db_long("SELECT count(*) FROM audit_logs", 0, NULL), 0);
}

/* ---- auth.login ----------------------------------------------------------------------- */

Test(auth, login_returns_tokens_and_opens_a_session)
{
    char *id = register_user("carol@example.com");
    struct answer a = do_login("  Carol@EXAMPLE.com", TEST_PASSWORD, NULL);
    const json_t *user = juser(&a);
    char hash[65];
    struct login l;

    cr_assert_eq(a.status, 200);
    cr_expect(json_is_true(json_object_get(a.body, "success")));
    cr_expect_str_eq(jstr(a.body, "tokenType"), "Bearer");
    cr_expect_eq(json_integer_value(json_object_get(a.body, "expiresIn")), TEST_ACCESS_TTL_S);
    cr_expect_str_eq(jstr(user, "id"), id);
    cr_expect_str_eq(jstr(user, "email"), "carol@example.com");
    cr_expect_str_eq(jstr(user, "role"), "user");
    tokens_read(&a, &l);
    cr_expect_str_eq(l.user_id, id);

    /* The session, with what the caller sent. */
    cr_expect_eq(db_long1("SELECT count(*) FROM sessions WHERE id = $1 AND ended_at IS NULL"
                          " AND ip_address = '127.0.0.1' AND device_type = 'desktop'"
                          " AND user_agent = '" TEST_AGENT "'"
                          " AND expires_at BETWEEN now() + interval '3590 seconds'"
                          "                    AND now() + interval '3610 seconds'",
                          l.sid),
                 1);

    /* Only the refresh token's hash is stored, never a token. */
    hash_hex(l.refresh, hash);
    {
        const char *params[] = {hash, l.sid};

        cr_expect_eq(db_long("SELECT count(*) FROM tokens WHERE token_hash = decode($1, 'hex')"
                             " AND session_id = $2 AND status = 'active'",
                             2, params),
                     1);
    }
    hash_hex(l.access, hash);
    cr_expect_eq(db_long1("SELECT count(*) FROM tokens WHERE token_hash = decode($1, 'hex')", hash),
                 0);
    cr_expect_eq(db_long1("SELECT count(*) FROM user_accounts WHERE id = $1"
                          " AND last_login_at > now() - interval '1 minute'",
                          id),
                 1);
    cr_expect_eq(db_long1("SELECT count(*) FROM audit_logs WHERE event_type = 'login'"
                          " AND status = 'success' AND user_id = $1",
                          id),
                 1);
    answer_free(&a);
    free(id);
}

Test(auth, login_unknown_email_and_wrong_password_answer_alike)
{
    char *id = register_user("dave@example.com");
    struct answer wrong = do_login("dave@example.com", "not the password", NULL);
    struct answer unknown = do_login("nobody@example.com", TEST_PASSWORD, NULL);

    expect_error(&wrong, 401, "InvalidCredentials");
    expect_error(&unknown, 401, "InvalidCredentials");
    cr_expect(json_equal(wrong.body, unknown.body), "the two failures differ");
    cr_expect_str_eq(wrong.headers, unknown.headers);

    cr_expect_eq(db_long("SELECT count(*) FROM login_attempts", 0, NULL), 2);
    cr_expect_eq(db_long1("SELECT count(*) FROM audit_logs WHERE event_type = 'login'"
                          " AND status = 'failure' AND user_id = $1",
                          id),
                 1);
    cr_expect_eq(db_long("SELECT count(*) FROM audit_logs WHERE event_type = 'login'"
                         " AND status = 'failure' AND user_id IS NULL"
                         " AND details->>'email' = 'nobody@example.com'",
                         0, NULL),
                 1);
    cr_expect_eq(db_long("SELECT count(*) FROM sessions", 0, NULL), 0);
    answer_free(&wrong);
    answer_free(&unknown);
    free(id);
}

Test(auth, login_throttles_after_five_failures_even_for_the_right_password)
{
    struct answer a;
    long retry;

    free(register_user("erin@example.com"));
    for (int i = 0; i < 5; i++) {
        a = do_login(i % 2 ? "ERIN@example.com" : "erin@example.com", "wrong password", NULL);
        expect_error(&a, 401, "InvalidCredentials");
        answer_free(&a);
    }

    a = do_login("erin@example.com", TEST_PASSWORD, NULL);
    expect_error(&a, 429, "TooManyAttempts");
    cr_assert_not_null(strstr(a.headers, "Retry-After: "), "headers: %s", a.headers);
    retry = strtol(strstr(a.headers, "Retry-After: ") + 13, NULL, 10);
    cr_expect(retry >= 1 && retry <= 900, "Retry-After %ld", retry);
    answer_free(&a);

    /* Throttled attempts are not counted, and create nothing. */
    cr_expect_eq(db_long("SELECT count(*) FROM login_attempts", 0, NULL), 5);
    cr_expect_eq(db_long("SELECT count(*) FROM sessions", 0, NULL), 0);

    /* Another email is not affected. */
    a = do_login("other@example.com", "wrong password", NULL);
    expect_error(&a, 401, "InvalidCredentials");
    answer_free(&a);
}

Test(auth, login_retry_after_is_when_the_oldest_failure_leaves_the_window)
{
    struct answer a;
    long retry;

    free(register_user("fay@example.com"));
    for (int i = 0; i < 5; i++)
        db_run("INSERT INTO login_attempts (email, attempted_at)"
               " VALUES ('fay@example.com', now() - interval '10 minutes')",
               0, NULL);
    db_run("INSERT INTO login_attempts (email, attempted_at)"
           " VALUES ('fay@example.com', now() - interval '20 minutes')",
           0, NULL);

    a = do_login("fay@example.com", TEST_PASSWORD, NULL);
    expect_error(&a, 429, "TooManyAttempts");
    cr_assert_not_null(strstr(a.headers, "Retry-After: "), "headers: %s", a.headers);
    retry = strtol(strstr(a.headers, "Retry-After: ") + 13, NULL, 10);
    cr_expect(retry >= 295 && retry <= 301, "Retry-After %ld, wanted about 300", retry);
    answer_free(&a);

    /* Failures older than 15 minutes do not count: four recent ones leave the door open. */
    db_run("DELETE FROM login_attempts WHERE id IN (SELECT id FROM login_attempts"
           " WHERE attempted_at > now() - interval '15 minutes' LIMIT 1)",
           0, NULL);
    a = do_login("fay@example.com", TEST_PASSWORD, NULL);
    cr_expect_eq(a.status, 200);
    answer_free(&a);
}

Test(auth, login_success_clears_failures)
{
    struct answer a;

    free(register_user("gus@example.com"));
    for (int i = 0; i < 4; i++) {
        a = do_login("gus@example.com", "wrong password", NULL);
        answer_free(&a);
    }
    a = do_login("gus@example.com", TEST_PASSWORD, NULL);
    cr_expect_eq(a.status, 200);
    answer_free(&a);
    cr_expect_eq(db_long("SELECT count(*) FROM login_attempts", 0, NULL), 0);

    for (int i = 0; i < 4; i++) {
        a = do_login("gus@example.com", "wrong password", NULL);
        answer_free(&a);
    }
    a = do_login("gus@example.com", TEST_PASSWORD, NULL);
    cr_expect_eq(a.status, 200);
    answer_free(&a);
}

Test(auth, login_to_a_disabled_account)
{
    char *id = register_user("hal@example.com");
    const char *params[] = {id};
    struct answer a;

    db_run("UPDATE user_accounts SET is_active = false, deleted_at = now() WHERE id = $1", 1,
           params);

    a = do_login("hal@example.com", "wrong password", NULL);
    expect_error(&a, 401, "InvalidCredentials");
    answer_free(&a);
    a = do_login("hal@example.com", TEST_PASSWORD, NULL);
    expect_error(&a, 403, "AccountDisabled");
    answer_free(&a);

    cr_expect_eq(db_long("SELECT count(*) FROM sessions", 0, NULL), 0);
    cr_expect_eq(db_long("SELECT count(*) FROM login_attempts", 0, NULL), 1);
    cr_expect_eq(db_long("SELECT count(*) FROM audit_logs WHERE event_type = 'login'"
                         " AND status = 'failure' AND details->>'reason' = 'account_disabled'",
                         0, NULL),
                 1);
    free(id);
}

Test(auth, login_with_two_factor_is_refused_until_totp_exists)
{
    char *id = register_user("ivy@example.com");
    const char *params[] = {id};
    struct answer a;

    db_run("UPDATE user_accounts SET two_factor_enabled = true, two_factor_secret = '\\x01'"
           " WHERE id = $1",
           1, params);

    a = do_login("ivy@example.com", TEST_PASSWORD, NULL);
    expect_error(&a, 401, "OtpRequired");
    answer_free(&a);
    a = call("auth.login", NULL,
             json_pack("{s:s, s:s, s:s}", "email", "ivy@example.com", "password", TEST_PASSWORD,
                       "otp", "123456"),
             NULL);
    expect_error(&a, 401, "InvalidOtp");
    answer_free(&a);

    /* The second factor is asked only after a right password. */
    a = do_login("ivy@example.com", "wrong password", NULL);
    expect_error(&a, 401, "InvalidCredentials");
    answer_free(&a);
    cr_expect_eq(db_long("SELECT count(*) FROM sessions", 0, NULL), 0);
    free(id);
}

Test(auth, login_rehashes_an_imported_bcrypt_hash)
{
    char setting[CRYPT_GENSALT_OUTPUT_SIZE];
    struct crypt_data *data = calloc(1, sizeof(*data));
    const char *bcrypt;
    char *stored;
    struct answer a;

    cr_assert_not_null(data);
    cr_assert_not_null(crypt_gensalt_rn("$2b$", 4, NULL, 0, setting, sizeof(setting)));
    bcrypt = crypt_r(TEST_PASSWORD, setting, data);
    cr_assert(bcrypt != NULL && strncmp(bcrypt, "$2b$", 4) == 0);
    {
        const char *params[] = {bcrypt};

        db_run("INSERT INTO user_accounts (email, password_hash, role_id)"
               " SELECT 'imported@example.com', $1, id FROM roles WHERE name = 'user'",
               1, params);
    }
    free(data);

    a = do_login("imported@example.com", "wrong password", NULL);
    expect_error(&a, 401, "InvalidCredentials");
    answer_free(&a);
    a = do_login("imported@example.com", TEST_PASSWORD, NULL);
    cr_expect_eq(a.status, 200);
    answer_free(&a);

    stored = db_text1("SELECT password_hash FROM user_accounts"
                      " WHERE email = 'imported@example.com'",
                      NULL);
    cr_expect(stored != NULL && strncmp(stored, "$argon2id$", 10) == 0, "hash %s", stored);
    free(stored);
    a = do_login("imported@example.com", TEST_PASSWORD, NULL);
    cr_expect_eq(a.status, 200);
    answer_free(&a);
}

Test(auth, login_validates_its_body)
{
    struct answer a;

    a = call("auth.login", NULL, json_pack("{s:s}", "email", "x@example.com"), NULL);
    expect_invalid(&a, "password");
    a = call("auth.login", NULL,
             json_pack("{s:s, s:s}", "email", "not-an-email", "password", TEST_PASSWORD), NULL);
    expect_invalid(&a, "email");
    a = call("auth.login", NULL,
             json_pack("{s:s, s:s, s:b}", "email", "x@example.com", "password", TEST_PASSWORD,
                       "remember", 1),
             NULL);
    expect_invalid(&a, "remember");
    a = call("auth.login", NULL,
             json_pack("{s:s, s:i}", "email", "x@example.com", "password", 12345678), NULL);
    expect_invalid(&a, "password");
    cr_expect_eq(db_long("SELECT count(*) FROM login_attempts", 0, NULL), 0);
}

/* ---- auth.refresh --------------------------------------------------------------------- */

Test(auth, refresh_rotates_twice_in_a_row)
{
    struct token_keys keys = {access_secret, refresh_secret, TEST_ACCESS_TTL_S, TEST_REFRESH_TTL_S};
    struct login l;
    struct answer a;
    char r2[TOKEN_MAX_BYTES];
    char r3[TOKEN_MAX_BYTES];
    char h1[65];
    char h2[65];

    free(register_user("jay@example.com"));
    l = login_as("jay@example.com", NULL);

    a = do_refresh(l.refresh);
    cr_assert_eq(a.status, 200, "%s", jstr(a.body, "error"));
    cr_expect_str_eq(jstr(a.body, "tokenType"), "Bearer");
    cr_expect_eq(json_integer_value(json_object_get(a.body, "expiresIn")), TEST_ACCESS_TTL_S);
    cr_expect_eq(token_verify(&keys, TOKEN_ACCESS, jstr(a.body, "accessToken"), time(NULL), NULL),
                 TOKEN_VALID);
    snprintf(r2, sizeof(r2), "%s", jstr(a.body, "refreshToken"));
    cr_expect_str_neq(r2, l.refresh);
    answer_free(&a);

    a = do_refresh(r2);
    cr_assert_eq(a.status, 200);
    snprintf(r3, sizeof(r3), "%s", jstr(a.body, "refreshToken"));
    answer_free(&a);

    expect_token_status(l.refresh, "rotated");
    expect_token_status(r2, "rotated");
    expect_token_status(r3, "active");
    hash_hex(l.refresh, h1);
    hash_hex(r2, h2);
    {
        const char *params[] = {h1, h2};

        cr_expect_eq(db_long("SELECT count(*) FROM tokens a JOIN tokens b ON b.id = a.replaced_by"
                             " WHERE a.token_hash = decode($1, 'hex')"
                             " AND b.token_hash = decode($2, 'hex') AND a.revoked_at IS NOT NULL",
                             2, params),
                     1);
    }
    expect_session_open(l.sid);
    cr_expect_eq(audit_count("token_refresh", "success"), 2);
}

Test(auth, refresh_reuse_ends_the_session)
{
    PGconn *listener = listener_new();
    struct login l;
    struct answer a;
    char r2[TOKEN_MAX_BYTES];

    free(register_user("kim@example.com"));
    l = login_as("kim@example.com", NULL);
    a = do_refresh(l.refresh);
    cr_assert_eq(a.status, 200);
    snprintf(r2, sizeof(r2), "%s", jstr(a.body, "refreshToken"));
    answer_free(&a);

    /* The retired token comes back: the whole login goes. */
    a = do_refresh(l.refresh);
    expect_error(&a, 401, "InvalidRefreshToken");
    answer_free(&a);
    expect_session_ended(l.sid, "refresh_token_reuse");
    expect_token_status(r2, "revoked");
    cr_expect_eq(db_long1("SELECT count(*) FROM tokens WHERE session_id = $1"
                          " AND status <> 'revoked'",
                          l.sid),
                 0);
    cr_expect_eq(db_long1("SELECT count(*) FROM audit_logs WHERE event_type = 'refresh_token_reuse'"
                          " AND status = 'failure' AND resource_id = $1",
                          l.sid),
                 1);
    {
        const char *sids[] = {l.sid};

        expect_notified(listener, sids, 1);
    }

    a = do_refresh(r2);
    expect_error(&a, 401, "InvalidRefreshToken");
    answer_free(&a);
    PQfinish(listener);
}

Test(auth, refresh_refuses_other_tokens_and_bad_bodies)
{
    struct login l;
    struct answer a;

    free(register_user("lee@example.com"));
    l = login_as("lee@example.com", NULL);

    a = do_refresh(l.access);
    expect_error(&a, 401, "InvalidRefreshToken");
    answer_free(&a);
    a = do_refresh("not.a.token");
    expect_error(&a, 401, "InvalidRefreshToken");
    answer_free(&a);
    a = do_refresh("");
    expect_error(&a, 401, "InvalidRefreshToken");
    answer_free(&a);

    a = call("auth.refresh", NULL, json_object(), NULL);
    expect_invalid(&a, "refreshToken");
    a = call("auth.refresh", NULL, json_pack("{s:i}", "refreshToken", 7), NULL);
    expect_invalid(&a, "refreshToken");
    a = call("auth.refresh", NULL, json_pack("{s:s, s:s}", "refreshToken", l.refresh, "extra", "x"),
             NULL);
    expect_invalid(&a, "extra");

    /* None of that touched the real token. */
    expect_token_status(l.refresh, "active");
    expect_session_open(l.sid);
}

Test(auth, refresh_of_an_expired_or_disabled_login_is_refused_quietly)
{
    struct login l;
    struct answer a;
    const char *params[1];

    free(register_user("max@example.com"));
    l = login_as("max@example.com", NULL);
    params[0] = l.sid;

    db_run("UPDATE sessions SET last_activity = now() - interval '2 hours' WHERE id = $1", 1,
           params);
    a = do_refresh(l.refresh);
    expect_error(&a, 401, "InvalidRefreshToken");
    answer_free(&a);
    expect_token_status(l.refresh, "active");

    db_run("UPDATE sessions SET last_activity = now() WHERE id = $1", 1, params);
    params[0] = l.user_id;
    db_run("UPDATE user_accounts SET is_active = false WHERE id = $1", 1, params);
    a = do_refresh(l.refresh);
    expect_error(&a, 401, "InvalidRefreshToken");
    answer_free(&a);
    expect_token_status(l.refresh, "active");
    expect_session_open(l.sid);
    cr_expect_eq(audit_count("refresh_token_reuse", "failure"), 0);
}

struct race {
    const char *token;
    pthread_barrier_t *start;
    int status;
};

static void *race_refresh(void *arg)
{
    struct race *r = arg;
    struct pool_client *own = pool_client_new(zctx, TEST_ENDPOINT, &stats);
    struct answer a;

    pthread_barrier_wait(r->start);
    a = call_with(own, "auth.refresh", NULL, json_pack("{s:s}", "refreshToken", r->token), NULL);
    r->status = a.status;
    answer_free(&a);
    pool_client_destroy(&own);
    return NULL;
}

Test(auth, concurrent_refreshes_of_one_token_let_exactly_one_win)
{
    pthread_barrier_t start;
    struct race races[2];
    pthread_t threads[2];
    struct login l;
    int wins = 0;

    free(register_user("ned@example.com"));
    l = login_as("ned@example.com", NULL);
    pthread_barrier_init(&start, NULL, 2);
    for (int i = 0; i < 2; i++) {
        races[i] = (struct race){.token = l.refresh, .start = &start};
        pthread_create(&threads[i], NULL, race_refresh, &races[i]);
    }
    for (int i = 0; i < 2; i++) {
        pthread_join(threads[i], NULL);
        wins += races[i].status == 200;
        cr_expect(races[i].status == 200 || races[i].status == 401, "status %d", races[i].status);
    }
    pthread_barrier_destroy(&start);
    cr_expect_eq(wins, 1);

    /* The loser presented a token already rotated: that is reuse, and the login is over. */
    expect_session_ended(l.sid, "refresh_token_reuse");
}

/* ---- auth.logout ---------------------------------------------------------------------- */

Test(auth, logout_ends_every_session_of_the_user)
{
    PGconn *listener = listener_new();
    struct login one;
    struct login two;
    struct login other;
    struct answer a;

    free(register_user("oli@example.com"));
    free(register_user("pam@example.com"));
    one = login_as("oli@example.com", NULL);
    two = login_as("oli@example.com", TEST_IPHONE);
    other = login_as("pam@example.com", NULL);

    a = call("auth.logout", ctx_of(one.user_id, one.sid, NULL), NULL, NULL);
    cr_assert_eq(a.status, 200);
    cr_expect(json_is_true(json_object_get(a.body, "success")));
    cr_expect_str_eq(jstr(a.body, "message"), "Logged out");
    answer_free(&a);

    expect_session_ended(one.sid, "logout");
    expect_session_ended(two.sid, "logout");
    expect_session_open(other.sid);
    expect_token_status(one.refresh, "revoked");
    expect_token_status(two.refresh, "revoked");
    expect_token_status(other.refresh, "active");
    {
        const char *sids[] = {one.sid, two.sid};

        expect_notified(listener, sids, 2);
    }
    cr_expect_eq(db_long1("SELECT count(*) FROM audit_logs WHERE event_type = 'logout'"
                          " AND user_id = $1 AND (details->>'sessionsEnded')::int = 2",
                          one.user_id),
                 1);

    /* A token revoked by logout is simply refused: no reuse alarm. */
    a = do_refresh(two.refresh);
    expect_error(&a, 401, "InvalidRefreshToken");
    answer_free(&a);
    cr_expect_eq(audit_count("refresh_token_reuse", "failure"), 0);

    a = call("auth.logout", ctx_of(NULL, NULL, NULL), NULL, NULL);
    expect_error(&a, 401, "Unauthorized");
    answer_free(&a);
    a = call("auth.logout", ctx_of(one.user_id, one.sid, NULL), json_pack("{s:b}", "all", 1), NULL);
    expect_invalid(&a, "all");
    PQfinish(listener);
}

/* ---- profile.* ------------------------------------------------------------------------ */

Test(auth, profile_get_answers_the_user_and_plan)
{
    struct login l;
    struct answer a;
    const json_t *user;
    const json_t *sub;

    free(register_user("quinn@example.com"));
    l = login_as("quinn@example.com", NULL);
    a = call("profile.get", ctx_of(l.user_id, l.sid, NULL), NULL, NULL);
    cr_assert_eq(a.status, 200);
    user = juser(&a);
    cr_expect_str_eq(jstr(user, "id"), l.user_id);
    cr_expect_str_eq(jstr(user, "email"), "quinn@example.com");
    cr_expect(json_is_null(json_object_get(user, "firstName")));
    cr_expect(json_is_null(json_object_get(user, "lastName")));
    cr_expect(json_is_null(json_object_get(user, "phoneNumber")));
    cr_expect_str_eq(jstr(user, "role"), "user");
    cr_expect(json_is_false(json_object_get(user, "isVerified")));
    cr_expect(json_is_false(json_object_get(user, "twoFactorEnabled")));
    cr_expect(is_rfc3339_utc(jstr(user, "createdAt")));
    cr_expect(is_rfc3339_utc(jstr(user, "lastLoginAt")));
    sub = json_object_get(user, "subscription");
    cr_assert(json_is_object(sub));
    cr_expect(input_uuid_valid(jstr(sub, "id")));
    cr_expect_str_eq(jstr(sub, "plan"), "Free");
    cr_expect_str_eq(jstr(sub, "status"), "active");
    cr_expect(json_is_false(json_object_get(sub, "isTrial")));
    cr_expect(is_rfc3339_utc(jstr(sub, "startsAt")));
    cr_expect(json_is_null(json_object_get(sub, "endsAt")));
    cr_expect(json_is_boolean(json_object_get(sub, "autoRenew")));
    answer_free(&a);

    /* A plan past its end reads as expired; no plan at all reads as null. */
    {
        const char *params[] = {l.user_id};

        db_run("UPDATE user_subscriptions SET starts_at = now() - interval '2 days',"
               " ends_at = now() - interval '1 day' WHERE user_id = $1",
               1, params);
        a = call("profile.get", ctx_of(l.user_id, l.sid, NULL), NULL, NULL);
        cr_expect_str_eq(jstr(json_object_get(juser(&a), "subscription"), "status"), "expired");
        answer_free(&a);
        db_run("DELETE FROM user_subscriptions WHERE user_id = $1", 1, params);
        a = call("profile.get", ctx_of(l.user_id, l.sid, NULL), NULL, NULL);
        cr_expect(json_is_null(json_object_get(juser(&a), "subscription")));
        answer_free(&a);

        db_run("UPDATE user_accounts SET is_active = false, deleted_at = now() WHERE id = $1", 1,
               params);
        a = call("profile.get", ctx_of(l.user_id, l.sid, NULL), NULL, NULL);
        expect_error(&a, 401, "Unauthorized");
        answer_free(&a);
    }
    a = call("profile.get", ctx_of("123e4567-e89b-12d3-a456-426614174000", l.sid, NULL), NULL,
             NULL);
    expect_error(&a, 401, "Unauthorized");
    answer_free(&a);
}

Test(auth, profile_patch_changes_only_the_three_fields)
{
    char *id = register_user("rae@example.com");
    json_t *ctx = ctx_of(id, NULL, NULL);
    struct answer a;

    a = call("profile.patch", json_deep_copy(ctx),
             json_pack("{s:s, s:s, s:s}", "firstName", "Rae", "lastName", "Jones", "phoneNumber",
                       "+15551234567"),
             NULL);
    cr_assert_eq(a.status, 200);
    cr_expect_str_eq(jstr(juser(&a), "firstName"), "Rae");
    cr_expect_str_eq(jstr(juser(&a), "lastName"), "Jones");
    cr_expect_str_eq(jstr(juser(&a), "phoneNumber"), "+15551234567");
    cr_expect_not_null(json_object_get(juser(&a), "subscription"));
    answer_free(&a);

    /* null clears; absent keeps. */
    a = call("profile.patch", json_deep_copy(ctx), json_pack("{s:n}", "lastName"), NULL);
    cr_assert_eq(a.status, 200);
    cr_expect_str_eq(jstr(juser(&a), "firstName"), "Rae");
    cr_expect(json_is_null(json_object_get(juser(&a), "lastName")));
    answer_free(&a);
    cr_expect_eq(db_long1("SELECT count(*) FROM user_accounts WHERE id = $1"
                          " AND last_name IS NULL AND first_name = 'Rae'",
                          id),
                 1);
    cr_expect_eq(audit_count("profile_update", "success"), 2);

    /* An empty body answers the user and changes nothing. */
    a = call("profile.patch", json_deep_copy(ctx), NULL, NULL);
    cr_expect_eq(a.status, 200);
    cr_expect_str_eq(jstr(juser(&a), "email"), "rae@example.com");
    answer_free(&a);
    cr_expect_eq(audit_count("profile_update", "success"), 2);

    a = call("profile.patch", json_deep_copy(ctx), json_pack("{s:s}", "email", "x@example.com"),
             NULL);
    expect_invalid(&a, "email");
    a = call("profile.patch", json_deep_copy(ctx), json_pack("{s:s}", "role", "admin"), NULL);
    expect_invalid(&a, "role");
    a = call("profile.patch", json_deep_copy(ctx), json_pack("{s:s}", "password", "newpassword1"),
             NULL);
    expect_invalid(&a, "password");
    a = call("profile.patch", json_deep_copy(ctx), json_pack("{s:s}", "nickname", "r"), NULL);
    expect_invalid(&a, "nickname");
    a = call("profile.patch", json_deep_copy(ctx), json_pack("{s:s}", "phoneNumber", "555"), NULL);
    expect_invalid(&a, "phoneNumber");
    a = call("profile.patch", json_deep_copy(ctx), json_pack("{s:i}", "firstName", 5), NULL);
    expect_invalid(&a, "firstName");
    cr_expect_eq(db_long1("SELECT count(*) FROM user_accounts WHERE id = $1"
                          " AND email = 'rae@example.com' AND first_name = 'Rae'",
                          id),
                 1);

    a = call("profile.patch", ctx_of("123e4567-e89b-12d3-a456-426614174000", NULL, NULL),
             json_pack("{s:s}", "firstName", "Ghost"), NULL);
    expect_error(&a, 401, "Unauthorized");
    answer_free(&a);
    json_decref(ctx);
    free(id);
}

Test(auth, password_change_ends_the_other_sessions)
{
    PGconn *listener = listener_new();
    struct login here;
    struct login there;
    struct answer a;

    free(register_user("sam@example.com"));
    here = login_as("sam@example.com", NULL);
    there = login_as("sam@example.com", TEST_IPHONE);

    a = call("profile.password", ctx_of(here.user_id, here.sid, NULL),
             json_pack("{s:s, s:s}", "currentPassword", "not it at all", "newPassword",
                       "a brand new secret"),
             NULL);
    cr_expect_str_eq(jstr(json_object_get(a.body, "fields"), "currentPassword"), "is incorrect");
    expect_invalid(&a, "currentPassword");
    a = call("profile.password", ctx_of(here.user_id, here.sid, NULL),
             json_pack("{s:s, s:s}", "currentPassword", TEST_PASSWORD, "newPassword", "short"),
             NULL);
    expect_invalid(&a, "newPassword");
    a = call("profile.password", ctx_of(here.user_id, here.sid, NULL),
             json_pack("{s:s}", "newPassword", "a brand new secret"), NULL);
    expect_invalid(&a, "currentPassword");
    expect_session_open(there.sid);

    a = call("profile.password", ctx_of(here.user_id, here.sid, NULL),
             json_pack("{s:s, s:s}", "currentPassword", TEST_PASSWORD, "newPassword",
                       "a brand new secret"),
             NULL);
    cr_assert_eq(a.status, 200, "%s", jstr(a.body, "error"));
    cr_expect(json_is_true(json_object_get(a.body, "success")));
    cr_expect_not_null(jstr(a.body, "message"));
    answer_free(&a);

    expect_session_open(here.sid);
    expect_session_ended(there.sid, "password_changed");
    expect_token_status(there.refresh, "revoked");
    expect_token_status(here.refresh, "active");
    {
        const char *sids[] = {there.sid};

        expect_notified(listener, sids, 1);
    }
    cr_expect_eq(audit_count("password_changed", "success"), 1);
    cr_expect_eq(audit_count("password_changed", "failure"), 1);

    a = do_login("sam@example.com", TEST_PASSWORD, NULL);
    expect_error(&a, 401, "InvalidCredentials");
    answer_free(&a);
    a = do_login("sam@example.com", "a brand new secret", NULL);
    cr_expect_eq(a.status, 200);
    answer_free(&a);
    PQfinish(listener);
}

/* ---- sessions.* ----------------------------------------------------------------------- */

Test(auth, sessions_list_and_delete)
{
    PGconn *listener = listener_new();
    struct login desk;
    struct login phone;
    struct login stranger;
    struct answer a;
    const json_t *list;
    const json_t *first;

    free(register_user("tess@example.com"));
    free(register_user("uma@example.com"));
    desk = login_as("tess@example.com", NULL);
    phone = login_as("tess@example.com", TEST_IPHONE);
    stranger = login_as("uma@example.com", "curl/8.4.0");

    a = call("sessions.list", ctx_of(desk.user_id, desk.sid, NULL), NULL, NULL);
    cr_assert_eq(a.status, 200);
    list = json_object_get(a.body, "sessions");
    cr_assert_eq(json_array_size(list), 2);
    first = json_array_get(list, 0);
    cr_expect_str_eq(jstr(first, "id"), phone.sid, "newest first");
    cr_expect_str_eq(jstr(first, "deviceType"), "mobile");
    cr_expect_str_eq(jstr(first, "userAgent"), TEST_IPHONE);
    cr_expect_str_eq(jstr(first, "ipAddress"), "127.0.0.1");
    cr_expect(json_is_false(json_object_get(first, "current")));
    cr_expect(is_rfc3339_utc(jstr(first, "createdAt")));
    cr_expect(is_rfc3339_utc(jstr(first, "lastActivity")));
    cr_expect(is_rfc3339_utc(jstr(first, "expiresAt")));
    cr_expect_str_eq(jstr(json_array_get(list, 1), "id"), desk.sid);
    cr_expect(json_is_true(json_object_get(json_array_get(list, 1), "current")));
    answer_free(&a);

    a = call("sessions.delete", ctx_of(desk.user_id, desk.sid, NULL), NULL,
             json_pack("{s:s}", "id", stranger.sid));
    expect_error(&a, 404, "NotFound");
    answer_free(&a);
    expect_session_open(stranger.sid);
    a = call("sessions.delete", ctx_of(desk.user_id, desk.sid, NULL), NULL,
             json_pack("{s:s}", "id", "not-a-uuid"));
    expect_error(&a, 404, "NotFound");
    answer_free(&a);
    a = call("sessions.delete", ctx_of(desk.user_id, desk.sid, NULL), NULL,
             json_pack("{s:s}", "id", "123e4567-e89b-12d3-a456-426614174000"));
    expect_error(&a, 404, "NotFound");
    answer_free(&a);

    a = call("sessions.delete", ctx_of(desk.user_id, desk.sid, NULL), NULL,
             json_pack("{s:s}", "id", phone.sid));
    cr_expect_eq(a.status, 200);
    cr_expect(json_is_true(json_object_get(a.body, "success")));
    answer_free(&a);
    expect_session_ended(phone.sid, "ended_by_user");
    expect_token_status(phone.refresh, "revoked");
    {
        const char *sids[] = {phone.sid};

        expect_notified(listener, sids, 1);
    }
    cr_expect_eq(db_long1("SELECT count(*) FROM audit_logs WHERE event_type = 'session_ended'"
                          " AND resource_id = $1",
                          phone.sid),
                 1);

    a = call("sessions.delete", ctx_of(desk.user_id, desk.sid, NULL), NULL,
             json_pack("{s:s}", "id", phone.sid));
    expect_error(&a, 404, "NotFound");
    answer_free(&a);
    a = call("sessions.list", ctx_of(desk.user_id, desk.sid, NULL), NULL, NULL);
    cr_expect_eq(json_array_size(json_object_get(a.body, "sessions")), 1);
    answer_free(&a);
    PQfinish(listener);
}

/* ---- Internal messages ---------------------------------------------------------------- */

static struct answer session_get(const char *sid)
{
    return call("session.get", NULL, json_pack("{s:s}", "session_id", sid), NULL);
}

Test(auth, session_get_touch_and_end_idle)
{
    PGconn *listener = listener_new();
    struct login l;
    struct answer a;
    char ts[32];
    long now = (long)time(NULL);
    const char *params[2];

    free(register_user("vic@example.com"));
    l = login_as("vic@example.com", NULL);
    params[0] = l.sid;

    a = session_get(l.sid);
    cr_assert_eq(a.status, 200);
    cr_expect(json_is_true(json_object_get(a.body, "found")));
    cr_expect_str_eq(jstr(a.body, "userId"), l.user_id);
    cr_expect(json_is_false(json_object_get(a.body, "ended")));
    cr_expect(labs((long)json_integer_value(json_object_get(a.body, "lastActivity")) - now) <= 5);
    cr_expect(labs((long)json_integer_value(json_object_get(a.body, "expiresAt")) - now -
                   TEST_REFRESH_TTL_S) <= 5);
    answer_free(&a);

    a = session_get("123e4567-e89b-12d3-a456-426614174000");
    cr_expect_eq(a.status, 200);
    cr_expect(json_is_false(json_object_get(a.body, "found")));
    answer_free(&a);
    a = call("session.get", NULL, json_pack("{s:s}", "session_id", "nope"), NULL);
    expect_invalid(&a, "session_id");

    /* Activity moves forward only, and never past now. */
    db_run("UPDATE sessions SET last_activity = now() - interval '1 hour' WHERE id = $1", 1,
           params);
    a = call("session.touch", NULL,
             json_pack("{s:[[s,I],[s,I]]}", "sessions", l.sid, (json_int_t)(now - 60),
                       "123e4567-e89b-12d3-a456-426614174000", (json_int_t)now),
             NULL);
    cr_assert_eq(a.status, 200);
    cr_expect_eq(json_integer_value(json_object_get(a.body, "updated")), 1);
    answer_free(&a);
    snprintf(ts, sizeof(ts), "%ld", now - 60);
    params[1] = ts;
    cr_expect_eq(db_long("SELECT count(*) FROM sessions WHERE id = $1"
                         " AND last_activity = to_timestamp($2::bigint)",
                         2, params),
                 1);
    a = call("session.touch", NULL,
             json_pack("{s:[[s,I]]}", "sessions", l.sid, (json_int_t)(now - 600)), NULL);
    cr_expect_eq(json_integer_value(json_object_get(a.body, "updated")), 0);
    answer_free(&a);
    a = call("session.touch", NULL,
             json_pack("{s:[[s,I]]}", "sessions", l.sid, (json_int_t)(now + 86400)), NULL);
    cr_expect_eq(json_integer_value(json_object_get(a.body, "updated")), 1);
    answer_free(&a);
    cr_expect_eq(db_long1("SELECT count(*) FROM sessions WHERE id = $1"
                          " AND last_activity <= now()",
                          l.sid),
                 1);

    a = call("session.touch", NULL, json_pack("{s:[[s]]}", "sessions", l.sid), NULL);
    expect_invalid(&a, "sessions");
    a = call("session.touch", NULL, json_pack("{s:[[s,s]]}", "sessions", l.sid, "now"), NULL);
    expect_invalid(&a, "sessions");
    a = call("session.touch", NULL, json_pack("{s:s}", "sessions", "x"), NULL);
    expect_invalid(&a, "sessions");
    {
        json_t *many = json_array();

        for (int i = 0; i < 1001; i++)
            json_array_append_new(many, json_pack("[s,I]", l.sid, (json_int_t)now));
        a = call("session.touch", NULL, json_pack("{s:o}", "sessions", many), NULL);
        expect_invalid(&a, "sessions");
    }
    a = call("session.touch", NULL, json_pack("{s:[]}", "sessions"), NULL);
    cr_expect_eq(a.status, 200);
    cr_expect_eq(json_integer_value(json_object_get(a.body, "updated")), 0);
    answer_free(&a);

    a = call("session.end_idle", NULL, json_pack("{s:s}", "session_id", l.sid), NULL);
    cr_expect_eq(a.status, 200);
    cr_expect(json_is_true(json_object_get(a.body, "ended")));
    answer_free(&a);
    expect_session_ended(l.sid, "idle_timeout");
    expect_token_status(l.refresh, "revoked");
    {
        const char *sids[] = {l.sid};

        expect_notified(listener, sids, 1);
    }
    cr_expect_eq(db_long1("SELECT count(*) FROM audit_logs WHERE event_type = 'session_ended'"
                          " AND user_id = $1 AND details->>'reason' = 'idle_timeout'",
                          l.user_id),
                 1);
    a = call("session.end_idle", NULL, json_pack("{s:s}", "session_id", l.sid), NULL);
    cr_expect_eq(a.status, 200);
    cr_expect(json_is_false(json_object_get(a.body, "ended")));
    answer_free(&a);

    a = session_get(l.sid);
    cr_expect(json_is_true(json_object_get(a.body, "ended")));
    answer_free(&a);
    PQfinish(listener);
}

Test(auth, session_get_reports_a_disabled_account_as_ended)
{
    struct login l;
    struct answer a;
    const char *params[1];

    free(register_user("wes@example.com"));
    l = login_as("wes@example.com", NULL);
    params[0] = l.user_id;
    db_run("UPDATE user_accounts SET is_active = false WHERE id = $1", 1, params);
    a = session_get(l.sid);
    cr_expect(json_is_true(json_object_get(a.body, "found")));
    cr_expect(json_is_true(json_object_get(a.body, "ended")));
    answer_free(&a);
}

Test(auth, stats_count_open_recent_sessions)
{
    struct login one;
    struct login two;
    struct answer a;
    const char *params[1];

    free(register_user("xia@example.com"));
    one = login_as("xia@example.com", NULL);
    two = login_as("xia@example.com", NULL);

    a = call("auth.stats", NULL, NULL, NULL);
    cr_assert_eq(a.status, 200);
    cr_expect_eq(json_integer_value(json_object_get(a.body, "activeSessions")), 2);
    answer_free(&a);

    params[0] = one.sid;
    db_run("UPDATE sessions SET last_activity = now() - interval '1 hour' WHERE id = $1", 1,
           params);
    a = call("auth.stats", NULL, NULL, NULL);
    cr_expect_eq(json_integer_value(json_object_get(a.body, "activeSessions")), 1);
    answer_free(&a);

    a = call("session.end_idle", NULL, json_pack("{s:s}", "session_id", two.sid), NULL);
    answer_free(&a);
    a = call("auth.stats", NULL, NULL, NULL);
    cr_expect_eq(json_integer_value(json_object_get(a.body, "activeSessions")), 0);
    answer_free(&a);
}

Test(auth, device_types_from_user_agents)
{
    cr_expect_str_eq(auth_device_type(NULL), "unknown");
    cr_expect_str_eq(auth_device_type(""), "unknown");
    cr_expect_str_eq(auth_device_type("Googlebot/2.1 (+http://www.google.com/bot.html)"), "bot");
    cr_expect_str_eq(auth_device_type("curl/8.4.0"), "bot");
    cr_expect_str_eq(auth_device_type("python-requests/2.31"), "bot");
    cr_expect_str_eq(auth_device_type("Mozilla/5.0 (iPad; CPU OS 17_0 like Mac OS X)"), "tablet");
    cr_expect_str_eq(auth_device_type("Mozilla/5.0 (Linux; Android 14; SM-X710)"), "tablet");
    cr_expect_str_eq(auth_device_type("Mozilla/5.0 (Linux; Android 14; Pixel 8) Mobile Safari"),
                     "mobile");
    cr_expect_str_eq(auth_device_type(TEST_IPHONE), "mobile");
    cr_expect_str_eq(auth_device_type(TEST_AGENT), "desktop");
    cr_expect_str_eq(auth_device_type("Mozilla/5.0 (Windows NT 10.0; Win64; x64)"), "desktop");
    cr_expect_str_eq(auth_device_type("Mozilla/5.0 (X11; CrOS x86_64 14541.0.0)"), "desktop");
    cr_expect_str_eq(auth_device_type("SomethingElse/1.0"), "unknown");
}

Test(auth, session_stores_a_long_agent_cut_and_a_bad_ip_as_null)
{
    char agent[2000];
    json_t *ctx;
    struct answer a;
    struct login l;

    free(register_user("yan@example.com"));
    for (size_t i = 0; i + 2 < sizeof(agent); i += 2)
        memcpy(agent + i, "\xc3\xa9", 2);
    agent[sizeof(agent) - 2] = '\0';
    ctx = json_pack("{s:s, s:s, s:s}", "request_id", "r2", "ip", "not-an-ip", "user_agent", agent);
    a = call("auth.login", ctx,
             json_pack("{s:s, s:s}", "email", "yan@example.com", "password", TEST_PASSWORD), NULL);
    cr_assert_eq(a.status, 200);
    tokens_read(&a, &l);
    answer_free(&a);
    cr_expect_eq(db_long1("SELECT count(*) FROM sessions WHERE id = $1 AND ip_address IS NULL"
                          " AND char_length(user_agent) = 512",
                          l.sid),
                 1);
}

/* ---- First administrator -------------------------------------------------------------- */

Test(auth, bootstrap_creates_the_first_superadmin_once)
{
    struct db *db = db_new(test_db.url);
    struct cfg cfg = test_cfg;
    char email[] = "Root@Example.com";
    char password[] = "bootstrap password";
    char other[] = "second@example.com";
    struct answer a;

    cr_assert_not_null(db);
    cr_expect_eq(auth_bootstrap_admin(db, &cfg), 0);
    cr_expect_eq(db_long("SELECT count(*) FROM user_accounts", 0, NULL), 0);

    cfg.bootstrap_email = email;
    cfg.bootstrap_password = password;
    cr_expect_eq(auth_bootstrap_admin(db, &cfg), 0);
    cr_expect_eq(db_long("SELECT count(*) FROM user_accounts u JOIN roles r ON r.id = u.role_id"
                         " WHERE u.email = 'root@example.com' AND r.name = 'superadmin'"
                         " AND u.is_verified AND u.is_active",
                         0, NULL),
                 1);
    cr_expect_eq(db_long("SELECT count(*) FROM user_subscriptions s"
                         " JOIN user_accounts u ON u.id = s.user_id"
                         " WHERE u.email = 'root@example.com' AND s.status = 'active'",
                         0, NULL),
                 1);

    /* Idempotent: a superadmin exists now, so nothing more happens, whatever the email. */
    cr_expect_eq(auth_bootstrap_admin(db, &cfg), 0);
    cfg.bootstrap_email = other;
    cr_expect_eq(auth_bootstrap_admin(db, &cfg), 0);
    cr_expect_eq(db_long("SELECT count(*) FROM user_accounts", 0, NULL), 1);

    a = do_login("root@example.com", password, NULL);
    cr_expect_eq(a.status, 200);
    cr_expect_str_eq(jstr(juser(&a), "role"), "superadmin");
    answer_free(&a);
    db_destroy(&db);
}

Test(auth, bootstrap_never_overwrites_an_existing_account)
{
    char *id = register_user("boss@example.com");
    char *before = db_text1("SELECT password_hash FROM user_accounts WHERE id = $1", id);
    struct db *db = db_new(test_db.url);
    struct cfg cfg = test_cfg;
    char email[] = "BOSS@example.com";
    char password[] = "takeover attempt";
    char *after;

    cr_assert_not_null(db);
    cfg.bootstrap_email = email;
    cfg.bootstrap_password = password;
    cr_expect_eq(auth_bootstrap_admin(db, &cfg), 0);
    after = db_text1("SELECT password_hash FROM user_accounts WHERE id = $1", id);
    cr_expect_str_eq(after, before);
    cr_expect_eq(db_long1("SELECT count(*) FROM user_accounts u JOIN roles r ON r.id = u.role_id"
                          " WHERE u.id = $1 AND r.name = 'user'",
                          id),
                 1);
    cr_expect_eq(db_long("SELECT count(*) FROM user_accounts", 0, NULL), 1);

    password[0] = '\0';
    cr_expect_eq(auth_bootstrap_admin(db, &cfg), M360_EINVAL);
    free(before);
    free(after);
    free(id);
    db_destroy(&db);
}

/* ---- Secrets stay out of the audit log and the logs ------------------------------------ */

static long audit_rows_containing(const char *needle)
{
    return db_long1("SELECT count(*) FROM audit_logs a WHERE strpos(a::text, $1) > 0", needle);
}

Test(auth, no_audit_row_or_log_line_holds_a_password_or_token)
{
    char *log_text = NULL;
    size_t log_len = 0;
    FILE *sink = open_memstream(&log_text, &log_len);
    const char *secrets[6];
    char hash[65];
    struct login l;
    struct answer a;
    char refreshed[TOKEN_MAX_BYTES];

    cr_assert_not_null(sink);
    log_init(LOG_LEVEL_DEBUG, sink);
    free(register_user("zoe@example.com"));
    a = do_login("zoe@example.com", "wrong password guess", NULL);
    answer_free(&a);
    a = do_login("nobody@example.com", "wrong password guess", NULL);
    answer_free(&a);
    l = login_as("zoe@example.com", NULL);
    a = do_refresh(l.refresh);
    snprintf(refreshed, sizeof(refreshed), "%s", jstr(a.body, "refreshToken"));
    answer_free(&a);
    a = call("profile.password", ctx_of(l.user_id, l.sid, NULL),
             json_pack("{s:s, s:s}", "currentPassword", TEST_PASSWORD, "newPassword",
                       "the second secret"),
             NULL);
    cr_expect_eq(a.status, 200);
    answer_free(&a);
    a = do_refresh(l.refresh); /* reuse */
    answer_free(&a);

    /* Every change above wrote its row. */
    cr_expect_eq(audit_count("register", "success"), 1);
    cr_expect_eq(audit_count("login", "failure"), 2);
    cr_expect_eq(audit_count("login", "success"), 1);
    cr_expect_eq(audit_count("token_refresh", "success"), 1);
    cr_expect_eq(audit_count("password_changed", "success"), 1);
    cr_expect_eq(audit_count("refresh_token_reuse", "failure"), 1);

    hash_hex(l.refresh, hash);
    secrets[0] = TEST_PASSWORD;
    secrets[1] = "wrong password guess";
    secrets[2] = "the second secret";
    secrets[3] = l.access;
    secrets[4] = l.refresh;
    secrets[5] = hash;
    pool_destroy(&pool); /* every log line is written by now */
    log_init(LOG_LEVEL_ERR, NULL);
    fclose(sink);
    for (size_t i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++) {
        cr_expect_eq(audit_rows_containing(secrets[i]), 0, "secret %zu in audit_logs", i);
        cr_expect_null(strstr(log_text, secrets[i]), "secret %zu in the log", i);
    }
    cr_expect_eq(audit_rows_containing(refreshed), 0);
    cr_expect_null(strstr(log_text, refreshed));
    cr_expect_not_null(strstr(log_text, "event=refresh_token_reuse"));
    free(log_text);
}
