/* SPDX-License-Identifier: MIT */
/*
 * Accounts over real HTTP: register, login and its throttle, refresh rotation and reuse,
 * logout, the profile, the password, sessions, and tokens an attacker might send.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <jwt.h>
#include <sodium.h>

#include "test_support.h"

#define PASSWORD "correct horse battery"
#define NEW_PASSWORD "staple battery horse"
#define IPHONE_UA                                                                                  \
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "                 \
    "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"
#define DESKTOP_UA                                                                                 \
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "                      \
    "Chrome/120.0 Safari/537.36"
#define ENDED_WITHIN_MS 1000 /* the contract: an ended session's token is refused within 1 s */

static struct tsupport_server server;

static void auth_setup(void)
{
    tsupport_server_start(&server, NULL);
}

static void auth_teardown(void)
{
    tsupport_server_destroy(&server);
}

TestSuite(http_auth, .init = auth_setup, .fini = auth_teardown);

/* Every test ends here: SIGTERM, and a clean exit 0 (no leak, no sanitizer report). */
static void auth_stop(void)
{
    cr_expect_eq(tsupport_server_stop(&server), 0, "the server did not stop cleanly");
}

/* ---- Helpers --------------------------------------------------------------------------- */

static void post(const char *path, const char *token, const char *body,
                 struct tsupport_response *res)
{
    tsupport_json(server.port, "POST", path, token, body, res);
}

static void post_pack(const char *path, const char *token, json_t *body,
                      struct tsupport_response *res)
{
    char *text = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);

    cr_assert_not_null(text);
    post(path, token, text, res);
    free(text);
    json_decref(body);
}

static void get_profile(const char *token, struct tsupport_response *res)
{
    tsupport_json(server.port, "GET", "/api/profile", token, NULL, res);
}

static long profile_status(const char *token)
{
    struct tsupport_response res;
    long status;

    get_profile(token, &res);
    status = res.status;
    tsupport_response_cleanup(&res);
    return status;
}

static void expect_bearer_challenge(const struct tsupport_response *res, const char *what)
{
    char value[128];

    cr_expect(tsupport_header(res, "WWW-Authenticate", value, sizeof(value)) != NULL &&
                  strncmp(value, "Bearer", 6) == 0,
              "%s: 401 without WWW-Authenticate: Bearer:\n%s", what, res->headers);
}

/* GET /api/profile with `token` answers 401 Unauthorized and the Bearer challenge. */
static void expect_refused(const char *token, const char *error, const char *what)
{
    struct tsupport_response res;

    get_profile(token, &res);
    cr_expect_eq(res.status, 401, "%s: got %ld %s", what, res.status, res.body);
    if (res.status == 401) {
        tsupport_expect_error(&res, 401, error);
        expect_bearer_challenge(&res, what);
    }
    tsupport_response_cleanup(&res);
}

/* Polls GET /api/profile until `token` is refused; expects that within ENDED_WITHIN_MS. */
static void expect_refused_soon(const char *token, const char *what)
{
    long long started = tsupport_now_ms();
    long long elapsed;
    long status;

    do {
        status = profile_status(token);
        elapsed = tsupport_now_ms() - started;
        if (status == 401)
            break;
        usleep(25000);
    } while (elapsed <= ENDED_WITHIN_MS);
    cr_expect_eq(status, 401, "%s: still %ld after %lld ms", what, status, elapsed);
    cr_expect(elapsed <= ENDED_WITHIN_MS, "%s: refused only after %lld ms", what, elapsed);
    if (status == 401)
        expect_refused(token, "Unauthorized", what);
}

static void refresh(const char *token, struct tsupport_response *res)
{
    post_pack("/api/auth/refresh", NULL, json_pack("{s:s}", "refreshToken", token), res);
}

static void expect_refresh_refused(const char *token, const char *what)
{
    struct tsupport_response res;

    refresh(token, &res);
    tsupport_expect_error(&res, 401, "InvalidRefreshToken");
    cr_expect(tsupport_str(res.json, "accessToken") == NULL, "%s: %s", what, res.body);
    tsupport_response_cleanup(&res);
}

/* The `fields` member names `field`. */
static void expect_field(const struct tsupport_response *res, const char *field, const char *what)
{
    json_t *fields = tsupport_get(res->json, "fields");

    cr_expect(json_is_object(fields), "%s: no fields object in %s", what, res->body);
    cr_expect(json_is_string(json_object_get(fields, field)), "%s: fields.%s missing in %s", what,
              field, res->body);
}

static void expect_validation(const struct tsupport_response *res, const char *field,
                              const char *what)
{
    cr_expect_eq(res->status, 400, "%s: %ld %s", what, res->status, res->body);
    if (res->status == 400) {
        tsupport_expect_error(res, 400, "ValidationError");
        expect_field(res, field, what);
    }
}

static long db_scalar(const char *sql, const char *param)
{
    PGconn *conn = tsupport_connect(server.db.url);
    const char *params[] = {param};
    long value = tsupport_scalar(conn, sql, param != NULL ? 1 : 0, params);

    PQfinish(conn);
    return value;
}

static void db_exec(const char *sql, const char *param)
{
    PGconn *conn = tsupport_connect(server.db.url);
    const char *params[] = {param};
    PGresult *res = tsupport_query(conn, sql, 1, params);

    cr_assert_eq(PQresultStatus(res), PGRES_COMMAND_OK, "%s: %s", sql, PQresultErrorMessage(res));
    PQclear(res);
    PQfinish(conn);
}

/* A string of `n` copies of `unit`. Caller frees. */
static char *repeat(const char *unit, size_t n)
{
    size_t len = strlen(unit);
    char *text = malloc(len * n + 1);

    cr_assert_not_null(text);
    for (size_t i = 0; i < n; i++)
        memcpy(text + i * len, unit, len);
    text[len * n] = '\0';
    return text;
}

/* Signs `claims` (JSON) with libjwt; alg JWT_ALG_NONE takes no key. Caller frees. */
static char *jwt_sign(jwt_alg_t alg, const char *secret, const char *claims)
{
    jwt_t *jwt = NULL;
    char *token;

    cr_assert_eq(jwt_new(&jwt), 0);
    cr_assert_eq(jwt_add_grants_json(jwt, claims), 0, "%s", claims);
    if (alg == JWT_ALG_NONE)
        cr_assert_eq(jwt_set_alg(jwt, alg, NULL, 0), 0);
    else
        cr_assert_eq(jwt_set_alg(jwt, alg, (const unsigned char *)secret, (int)strlen(secret)), 0);
    token = jwt_encode_str(jwt);
    cr_assert_not_null(token);
    jwt_free(jwt);
    return token;
}

/* The claims the server writes, for `user`, with a chosen type, issuer and times. */
static char *claims_json(const struct tsupport_user *user, const char *typ, const char *iss,
                         long long iat, long long exp)
{
    char *text = malloc(512);

    cr_assert_not_null(text);
    snprintf(text, 512,
             "{\"sub\":\"%s\",\"sid\":\"%s\",\"jti\":\"6f1c1b8e-3d6c-4c55-9d55-2f1e0c7a9b10\","
             "\"typ\":\"%s\",\"iss\":\"%s\",\"iat\":%lld,\"exp\":%lld}",
             user->id, user->session_id, typ, iss, iat, exp);
    return text;
}

static char *b64url(const char *text)
{
    size_t size = sodium_base64_ENCODED_LEN(strlen(text), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    char *out = malloc(size);

    cr_assert_not_null(out);
    sodium_bin2base64(out, size, (const unsigned char *)text, strlen(text),
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    return out;
}

/* Flips one character in the middle of part `part` (0, 1 or 2) of a JWT. */
static char *tamper(const char *token, int part)
{
    char *copy = strdup(token);
    char *start = copy;
    size_t len;
    char *c;

    cr_assert_not_null(copy);
    for (int i = 0; i < part; i++)
        start = strchr(start, '.') + 1;
    len = strcspn(start, ".");
    c = start + len / 2;
    *c = *c == 'A' ? 'B' : 'A';
    return copy;
}

/* ---- Register -------------------------------------------------------------------------- */

Test(http_auth, register_creates_a_user)
{
    struct tsupport_response res;
    const char *id;
    char stored_email[256] = "";

    post("/api/auth/register", NULL,
         "{\"email\":\"  Mixed.Case@Example.COM \",\"password\":\"" PASSWORD "\","
         "\"firstName\":\"Asha\",\"lastName\":\"Rao\",\"phoneNumber\":\"+919876543210\"}",
         &res);
    cr_assert_eq(res.status, 201, "%s", res.body);
    cr_expect(json_is_true(tsupport_get(res.json, "success")), "%s", res.body);
    id = tsupport_str(res.json, "user.id");
    cr_expect(tsupport_is_uuid(id), "user.id is not a UUID: %s", res.body);
    cr_expect_str_eq(tsupport_str(res.json, "user.email"), "mixed.case@example.com");
    cr_expect_str_eq(tsupport_str(res.json, "user.role"), "user");
    cr_expect_str_eq(tsupport_str(res.json, "user.firstName"), "Asha");
    cr_expect_str_eq(tsupport_str(res.json, "user.lastName"), "Rao");
    cr_expect(tsupport_is_rfc3339_utc(tsupport_str(res.json, "user.createdAt")), "createdAt: %s",
              res.body);

    /* Stored lower-case and trimmed, role user, an active Free subscription, audited. */
    {
        PGconn *conn = tsupport_connect(server.db.url);
        const char *params[] = {id};
        PGresult *row = tsupport_query(
            conn,
            "SELECT u.email, r.name FROM user_accounts u JOIN roles r ON r.id = u.role_id"
            " WHERE u.id = $1",
            1, params);

        cr_assert_eq(PQntuples(row), 1, "%s", PQresultErrorMessage(row));
        snprintf(stored_email, sizeof(stored_email), "%s", PQgetvalue(row, 0, 0));
        cr_expect_str_eq(PQgetvalue(row, 0, 1), "user");
        PQclear(row);
        cr_expect_eq(tsupport_scalar(conn,
                                     "SELECT count(*) FROM user_subscriptions s"
                                     " JOIN subscription_plans p ON p.id = s.plan_id"
                                     " WHERE s.user_id = $1 AND p.name = 'Free'"
                                     "   AND s.status = 'active'",
                                     1, params),
                     1);
        cr_expect_geq(
            tsupport_scalar(conn, "SELECT count(*) FROM audit_logs WHERE user_id = $1", 1, params),
            1);
        PQfinish(conn);
    }
    cr_expect_str_eq(stored_email, "mixed.case@example.com");
    tsupport_response_cleanup(&res);

    /* Optional fields absent: present as null. */
    post("/api/auth/register", NULL,
         "{\"email\":\"bare@example.com\",\"password\":\"" PASSWORD "\"}", &res);
    cr_assert_eq(res.status, 201, "%s", res.body);
    cr_expect(json_is_null(tsupport_get(res.json, "user.firstName")), "%s", res.body);
    cr_expect(json_is_null(tsupport_get(res.json, "user.lastName")), "%s", res.body);
    tsupport_response_cleanup(&res);

    /* Any case logs in. */
    cr_expect_eq(tsupport_login(server.port, "MIXED.case@example.com", PASSWORD, NULL, NULL), 200);
    cr_expect_eq(tsupport_login(server.port, " mixed.case@EXAMPLE.com", PASSWORD, NULL, NULL), 200);
    auth_stop();
}

Test(http_auth, register_duplicate_email_in_any_case_is_409)
{
    static const char *const variants[] = {"dup@example.com", "DUP@Example.com",
                                           "  dup@EXAMPLE.COM  ", NULL};

    tsupport_register(server.port, "dup@example.com", PASSWORD);
    for (int i = 0; variants[i] != NULL; i++) {
        struct tsupport_response res;

        post_pack("/api/auth/register", NULL,
                  json_pack("{s:s, s:s}", "email", variants[i], "password", "another password"),
                  &res);
        tsupport_expect_error(&res, 409, "EmailAlreadyRegistered");
        tsupport_response_cleanup(&res);
    }
    cr_expect_eq(
        db_scalar("SELECT count(*) FROM user_accounts WHERE lower(email) = $1", "dup@example.com"),
        1);
    auth_stop();
}

/* Sends `body` (stolen) to register and expects 400 naming `field`. */
static void register_refused(json_t *body, const char *field, const char *what)
{
    struct tsupport_response res;

    post_pack("/api/auth/register", NULL, body, &res);
    expect_validation(&res, field, what);
    tsupport_response_cleanup(&res);
}

static void register_accepted(json_t *body, const char *what)
{
    struct tsupport_response res;

    post_pack("/api/auth/register", NULL, body, &res);
    cr_expect_eq(res.status, 201, "%s: %ld %s", what, res.status, res.body);
    tsupport_response_cleanup(&res);
}

Test(http_auth, register_validation_names_each_bad_field)
{
    static const char *const bad_emails[] = {
        "plainaddress",
        "@example.com",
        "a@",
        "a@example",
        ".a@example.com",
        "a.@example.com",
        "a..b@example.com",
        "a@-example.com",
        "a@example-.com",
        "a@exa_mple.com",
        "a b@example.com",
        "a@@example.com",
        "",
        "a@example..com",
        "a@.example.com",
        "\xc3\xa9@example.com",
        "a(b)@example.com",
        NULL,
    };
    static const char *const bad_phones[] = {"12345678",    "+123456",   "+1234567890123456",
                                             "+12 3456789", "+12345abc", "",
                                             "++1234567",   NULL};
    char *long_local = repeat("a", 64);
    char *long_domain = repeat("b", 190);
    char email_255[300];
    char *pw7 = repeat("p", 7);
    char *pw129 = repeat("p", 129);
    char *pw7_unicode = repeat("\xc3\xa9", 7);
    char *name101 = repeat("n", 101);
    char *name101_unicode = repeat("\xc3\xa9", 101);
    long users_before = db_scalar("SELECT count(*) FROM user_accounts", NULL);

    snprintf(email_255, sizeof(email_255), "%s@%s.example.com", long_local, long_domain);
    email_255[255] = '\0';
    memcpy(email_255 + 255 - 4, ".com", 4);

    for (int i = 0; bad_emails[i] != NULL; i++)
        register_refused(json_pack("{s:s, s:s}", "email", bad_emails[i], "password", PASSWORD),
                         "email", bad_emails[i]);
    register_refused(json_pack("{s:s, s:s}", "email", email_255, "password", PASSWORD), "email",
                     "255-character email");

    register_refused(json_pack("{s:s, s:s}", "email", "pw7@example.com", "password", pw7),
                     "password", "7-character password");
    register_refused(json_pack("{s:s, s:s}", "email", "pw129@example.com", "password", pw129),
                     "password", "129-character password");
    register_refused(json_pack("{s:s, s:s}", "email", "pw7u@example.com", "password", pw7_unicode),
                     "password", "7-character password of 14 bytes");

    register_refused(json_pack("{s:s, s:s, s:s}", "email", "n1@example.com", "password", PASSWORD,
                               "firstName", name101),
                     "firstName", "101-character firstName");
    register_refused(json_pack("{s:s, s:s, s:s}", "email", "n2@example.com", "password", PASSWORD,
                               "lastName", name101_unicode),
                     "lastName", "101-character lastName");
    for (int i = 0; bad_phones[i] != NULL; i++)
        register_refused(json_pack("{s:s, s:s, s:s}", "email", "ph@example.com", "password",
                                   PASSWORD, "phoneNumber", bad_phones[i]),
                         "phoneNumber", bad_phones[i]);

    /* Unknown fields, wrong types, NUL characters. */
    register_refused(json_pack("{s:s, s:s, s:s}", "email", "u1@example.com", "password", PASSWORD,
                               "role", "admin"),
                     "role", "unknown field role");
    register_refused(
        json_pack("{s:s, s:s, s:b}", "email", "u2@example.com", "password", PASSWORD, "isAdmin", 1),
        "isAdmin", "unknown field isAdmin");
    register_refused(json_pack("{s:i, s:s}", "email", 42, "password", PASSWORD), "email",
                     "number for email");
    register_refused(json_pack("{s:s, s:b}", "email", "t1@example.com", "password", 1), "password",
                     "boolean for password");
    register_refused(json_pack("{s:s, s:s, s:i}", "email", "t2@example.com", "password", PASSWORD,
                               "firstName", 7),
                     "firstName", "number for firstName");
    register_refused(json_pack("{s:s, s:s, s:[]}", "email", "t3@example.com", "password", PASSWORD,
                               "phoneNumber"),
                     "phoneNumber", "array for phoneNumber");
    register_refused(json_pack("{s:s, s:s, s:s%}", "email", "z1@example.com", "password", PASSWORD,
                               "firstName", "a\0b", (size_t)3),
                     "firstName", "NUL in firstName");
    register_refused(
        json_pack("{s:s%, s:s}", "email", "z2@exa\0mple.com", (size_t)15, "password", PASSWORD),
        "email", "NUL in email");
    register_refused(json_pack("{s:s, s:s%}", "email", "z3@example.com", "password",
                               "password\0tail", (size_t)13),
                     "password", "NUL in password");

    /* Several problems: each is named. */
    {
        struct tsupport_response res;

        post("/api/auth/register", NULL,
             "{\"email\":\"nope\",\"password\":\"short\",\"nickname\":\"x\"}", &res);
        expect_validation(&res, "email", "three problems");
        expect_field(&res, "password", "three problems");
        expect_field(&res, "nickname", "three problems");
        tsupport_response_cleanup(&res);
    }
    cr_expect_eq(db_scalar("SELECT count(*) FROM user_accounts", NULL), users_before,
                 "a refused registration created an account");

    /* The limits themselves are allowed. */
    {
        char *pw8 = repeat("p", 8);
        char *pw128 = repeat("p", 128);
        char *pw128_unicode = repeat("\xc3\xa9", 128);
        char *name100 = repeat("\xc3\xa9", 100);

        register_accepted(json_pack("{s:s, s:s}", "email", "ok8@example.com", "password", pw8),
                          "8-character password");
        register_accepted(json_pack("{s:s, s:s}", "email", "ok128@example.com", "password", pw128),
                          "128-character password");
        register_accepted(
            json_pack("{s:s, s:s}", "email", "ok128u@example.com", "password", pw128_unicode),
            "128-character password of 256 bytes");
        register_accepted(json_pack("{s:s, s:s, s:s, s:s, s:s}", "email",
                                    "first.last+tag@mail.example-host.co", "password", PASSWORD,
                                    "firstName", name100, "lastName", name100, "phoneNumber",
                                    "+1234567"),
                          "limits of names and phone");
        register_accepted(json_pack("{s:s, s:s, s:n, s:n, s:s}", "email",
                                    "o'brien_x!#$%&*=?^`{|}~-@x1.example", "password", PASSWORD,
                                    "firstName", "lastName", "phoneNumber", "+123456789012345"),
                          "atext specials, nulls, 15-digit phone");
        free(pw8);
        free(pw128);
        free(pw128_unicode);
        free(name100);
    }
    free(long_local);
    free(long_domain);
    free(pw7);
    free(pw129);
    free(pw7_unicode);
    free(name101);
    free(name101_unicode);
    auth_stop();
}

/* ---- Login ----------------------------------------------------------------------------- */

Test(http_auth, login_returns_tokens_and_the_user)
{
    struct tsupport_response res;
    char claim[64];
    const char *access;
    const char *refresh_token;
    const char *id;

    tsupport_register(server.port, "login@example.com", PASSWORD);
    post("/api/auth/login", NULL, "{\"email\":\"login@example.com\",\"password\":\"" PASSWORD "\"}",
         &res);
    cr_assert_eq(res.status, 200, "%s", res.body);
    cr_expect(json_is_true(tsupport_get(res.json, "success")), "%s", res.body);
    access = tsupport_str(res.json, "accessToken");
    refresh_token = tsupport_str(res.json, "refreshToken");
    id = tsupport_str(res.json, "user.id");
    cr_assert(access != NULL && refresh_token != NULL, "%s", res.body);
    cr_expect_str_eq(tsupport_str(res.json, "tokenType"), "Bearer");
    cr_expect(json_is_integer(tsupport_get(res.json, "expiresIn")), "%s", res.body);
    cr_expect_eq(json_integer_value(tsupport_get(res.json, "expiresIn")), 24 * 3600,
                 "expiresIn is not JWT_EXPIRY's default 24h in seconds: %s", res.body);
    cr_expect(tsupport_is_uuid(id), "%s", res.body);
    cr_expect_str_eq(tsupport_str(res.json, "user.email"), "login@example.com");
    cr_expect_str_eq(tsupport_str(res.json, "user.role"), "user");
    cr_expect_str_neq(access, refresh_token);

    /* The claims the contract names. */
    cr_expect(tsupport_token_claim(access, "typ", claim, sizeof(claim)) &&
                  strcmp(claim, "access") == 0,
              "access typ");
    cr_expect(tsupport_token_claim(refresh_token, "typ", claim, sizeof(claim)) &&
                  strcmp(claim, "refresh") == 0,
              "refresh typ");
    cr_expect(tsupport_token_claim(access, "sub", claim, sizeof(claim)) && strcmp(claim, id) == 0,
              "sub");
    cr_expect(tsupport_token_claim(access, "iss", claim, sizeof(claim)) &&
                  strcmp(claim, "manas360") == 0,
              "iss");
    cr_expect(tsupport_token_claim(access, "sid", claim, sizeof(claim)) && tsupport_is_uuid(claim),
              "sid");
    cr_expect(tsupport_token_claim(access, "jti", claim, sizeof(claim)), "jti");

    /* A session exists and the token opens the profile. */
    cr_expect_eq(
        db_scalar("SELECT count(*) FROM sessions WHERE user_id = $1 AND ended_at IS NULL", id), 1);
    cr_expect_eq(profile_status(access), 200);
    tsupport_response_cleanup(&res);
    auth_stop();
}

Test(http_auth, login_refuses_unknown_email_and_wrong_password_alike)
{
    struct tsupport_response unknown;
    struct tsupport_response wrong;

    tsupport_register(server.port, "alike@example.com", PASSWORD);
    post("/api/auth/login", NULL,
         "{\"email\":\"nobody@example.com\",\"password\":\"" PASSWORD "\"}", &unknown);
    post("/api/auth/login", NULL,
         "{\"email\":\"alike@example.com\",\"password\":\"not the password\"}", &wrong);
    tsupport_expect_error(&unknown, 401, "InvalidCredentials");
    tsupport_expect_error(&wrong, 401, "InvalidCredentials");
    cr_expect_str_eq(unknown.body, wrong.body, "the two refusals differ");
    cr_expect(tsupport_str(wrong.json, "accessToken") == NULL);
    tsupport_response_cleanup(&unknown);
    tsupport_response_cleanup(&wrong);

    /* A password that differs only after the 72nd byte is a different password. */
    {
        char *base = repeat("x", 80);
        char *other = strdup(base);
        struct tsupport_response res;

        other[75] = 'y';
        tsupport_register(server.port, "long@example.com", base);
        post_pack("/api/auth/login", NULL,
                  json_pack("{s:s, s:s}", "email", "long@example.com", "password", other), &res);
        tsupport_expect_error(&res, 401, "InvalidCredentials");
        tsupport_response_cleanup(&res);
        cr_expect_eq(tsupport_login(server.port, "long@example.com", base, NULL, NULL), 200);
        free(base);
        free(other);
    }
    auth_stop();
}

static void expect_throttled(const char *email, const char *password, const char *what)
{
    struct tsupport_response res;
    char retry[64];

    post_pack("/api/auth/login", NULL,
              json_pack("{s:s, s:s}", "email", email, "password", password), &res);
    tsupport_expect_error(&res, 429, "TooManyAttempts");
    cr_expect(tsupport_str(res.json, "accessToken") == NULL, "%s: %s", what, res.body);
    if (tsupport_header(&res, "Retry-After", retry, sizeof(retry)) == NULL) {
        cr_expect_fail("%s: 429 without Retry-After:\n%s", what, res.headers);
    } else {
        char *end = NULL;
        long seconds = strtol(retry, &end, 10);

        cr_expect(end != retry && *end == '\0', "%s: Retry-After \"%s\" is not whole seconds", what,
                  retry);
        /* The oldest failure was moments ago: it leaves the 15-minute window in ~900 s. */
        cr_expect(seconds >= 800 && seconds <= 900, "%s: Retry-After %ld", what, seconds);
    }
    tsupport_response_cleanup(&res);
}

Test(http_auth, login_is_throttled_after_five_failures)
{
    tsupport_register(server.port, "throttle@example.com", PASSWORD);
    tsupport_register(server.port, "bystander@example.com", PASSWORD);

    for (int i = 0; i < 5; i++) {
        struct tsupport_response res;

        post("/api/auth/login", NULL,
             "{\"email\":\"throttle@example.com\",\"password\":\"wrong guess\"}", &res);
        tsupport_expect_error(&res, 401, "InvalidCredentials");
        tsupport_response_cleanup(&res);
    }
    expect_throttled("throttle@example.com", "wrong guess", "sixth wrong password");
    expect_throttled("throttle@example.com", PASSWORD, "the right password while throttled");
    expect_throttled("THROTTLE@example.com", PASSWORD, "another case of the email");

    /* Only that email is throttled. */
    cr_expect_eq(tsupport_login(server.port, "bystander@example.com", PASSWORD, NULL, NULL), 200);

    /* Unknown emails are throttled the same way, so throttling tells nothing. */
    for (int i = 0; i < 5; i++)
        cr_expect_eq(tsupport_login(server.port, "ghost@example.com", "whatever1", NULL, NULL),
                     401);
    expect_throttled("ghost@example.com", "whatever1", "unknown email");
    auth_stop();
}

Test(http_auth, login_to_a_disabled_account_is_403)
{
    struct tsupport_user user;
    struct tsupport_response res;

    tsupport_user_new(server.port, "gone@example.com", PASSWORD, &user);
    db_exec("UPDATE user_accounts SET deleted_at = now(), is_active = false WHERE id = $1",
            user.id);

    post("/api/auth/login", NULL, "{\"email\":\"gone@example.com\",\"password\":\"" PASSWORD "\"}",
         &res);
    tsupport_expect_error(&res, 403, "AccountDisabled");
    cr_expect(tsupport_str(res.json, "accessToken") == NULL, "%s", res.body);
    tsupport_response_cleanup(&res);

    /* Only after a correct password: a wrong one learns nothing. */
    post("/api/auth/login", NULL, "{\"email\":\"gone@example.com\",\"password\":\"wrong one\"}",
         &res);
    tsupport_expect_error(&res, 401, "InvalidCredentials");
    tsupport_response_cleanup(&res);
    auth_stop();
}

Test(http_auth, login_with_missing_or_mistyped_fields_is_400)
{
    struct tsupport_response res;

    post("/api/auth/login", NULL, "{}", &res);
    expect_validation(&res, "email", "empty object");
    expect_field(&res, "password", "empty object");
    tsupport_response_cleanup(&res);

    post("/api/auth/login", NULL, "{\"email\":\"a@example.com\"}", &res);
    expect_validation(&res, "password", "no password");
    tsupport_response_cleanup(&res);

    post("/api/auth/login", NULL, "{\"password\":\"" PASSWORD "\"}", &res);
    expect_validation(&res, "email", "no email");
    tsupport_response_cleanup(&res);

    post("/api/auth/login", NULL, "{\"email\":5,\"password\":\"" PASSWORD "\"}", &res);
    expect_validation(&res, "email", "number for email");
    tsupport_response_cleanup(&res);

    post("/api/auth/login", NULL,
         "{\"email\":\"a@example.com\",\"password\":\"" PASSWORD "\",\"remember\":true}", &res);
    expect_validation(&res, "remember", "unknown field");
    tsupport_response_cleanup(&res);
    auth_stop();
}

/* ---- Refresh --------------------------------------------------------------------------- */

Test(http_auth, refresh_rotates_the_tokens)
{
    struct tsupport_user user;
    struct tsupport_response res;
    char sid[64];

    tsupport_user_new(server.port, "rotate@example.com", PASSWORD, &user);
    refresh(user.refresh, &res);
    cr_assert_eq(res.status, 200, "%s", res.body);
    cr_expect(json_is_true(tsupport_get(res.json, "success")), "%s", res.body);
    cr_expect_str_eq(tsupport_str(res.json, "tokenType"), "Bearer");
    cr_expect(json_is_integer(tsupport_get(res.json, "expiresIn")) &&
                  json_integer_value(tsupport_get(res.json, "expiresIn")) > 0,
              "%s", res.body);
    cr_assert(tsupport_str(res.json, "accessToken") != NULL &&
                  tsupport_str(res.json, "refreshToken") != NULL,
              "%s", res.body);
    cr_expect_str_neq(tsupport_str(res.json, "refreshToken"), user.refresh);
    cr_expect_str_neq(tsupport_str(res.json, "accessToken"), user.access);

    /* Same login, new tokens that work. */
    cr_expect(
        tsupport_token_claim(tsupport_str(res.json, "accessToken"), "sid", sid, sizeof(sid)) &&
            strcmp(sid, user.session_id) == 0,
        "the refreshed token belongs to another session");
    cr_expect_eq(profile_status(tsupport_str(res.json, "accessToken")), 200);
    {
        struct tsupport_response again;

        refresh(tsupport_str(res.json, "refreshToken"), &again);
        cr_expect_eq(again.status, 200, "the new refresh token does not refresh: %s", again.body);
        tsupport_response_cleanup(&again);
    }
    tsupport_response_cleanup(&res);
    auth_stop();
}

Test(http_auth, refresh_token_reuse_ends_the_session)
{
    struct tsupport_user user;
    struct tsupport_response res;
    char newest_access[2048];
    char newest_refresh[2048];

    tsupport_user_new(server.port, "reuse@example.com", PASSWORD, &user);
    refresh(user.refresh, &res);
    cr_assert_eq(res.status, 200, "%s", res.body);
    snprintf(newest_access, sizeof(newest_access), "%s", tsupport_str(res.json, "accessToken"));
    snprintf(newest_refresh, sizeof(newest_refresh), "%s", tsupport_str(res.json, "refreshToken"));
    tsupport_response_cleanup(&res);
    cr_assert_eq(profile_status(newest_access), 200);

    /* The retired token comes back: refused, and the whole login goes. */
    expect_refresh_refused(user.refresh, "reused refresh token");
    expect_refused_soon(newest_access, "access token of a session ended by reuse");
    expect_refused(user.access, "Unauthorized", "first access token of that session");
    expect_refresh_refused(newest_refresh, "newest refresh token after reuse");
    cr_expect_eq(db_scalar("SELECT count(*) FROM audit_logs"
                           " WHERE user_id = $1 AND event_type = 'refresh_token_reuse'",
                           user.id),
                 1, "the reuse was not audited as refresh_token_reuse");

    /* Another login of the same user is untouched. */
    {
        struct tsupport_user other;

        cr_assert_eq(tsupport_login(server.port, user.email, PASSWORD, NULL, &other), 200);
        cr_expect_eq(profile_status(other.access), 200);
    }
    auth_stop();
}

Test(http_auth, refresh_refuses_what_is_not_a_live_refresh_token)
{
    struct tsupport_user user;
    struct tsupport_response res;
    char *forged;
    char *claims;
    long long now = (long long)time(NULL);

    tsupport_user_new(server.port, "badrefresh@example.com", PASSWORD, &user);
    expect_refresh_refused(user.access, "an access token");
    expect_refresh_refused("garbage", "garbage");
    expect_refresh_refused("", "empty");
    expect_refresh_refused("a.b.c", "three parts of nothing");
    forged = tamper(user.refresh, 1);
    expect_refresh_refused(forged, "tampered refresh token");
    free(forged);

    /* typ refresh, but signed with the access secret. */
    claims = claims_json(&user, "refresh", "manas360", now, now + 3600);
    forged = jwt_sign(JWT_ALG_HS256, TSUPPORT_JWT_SECRET, claims);
    expect_refresh_refused(forged, "refresh claims signed with JWT_SECRET");
    free(forged);
    free(claims);

    post("/api/auth/refresh", NULL, "{}", &res);
    expect_validation(&res, "refreshToken", "no refreshToken");
    tsupport_response_cleanup(&res);
    post("/api/auth/refresh", NULL, "{\"refreshToken\":5}", &res);
    expect_validation(&res, "refreshToken", "number for refreshToken");
    tsupport_response_cleanup(&res);

    /* None of that hurt the real one. */
    refresh(user.refresh, &res);
    cr_expect_eq(res.status, 200, "%s", res.body);
    tsupport_response_cleanup(&res);
    auth_stop();
}

/* ---- Logout ---------------------------------------------------------------------------- */

Test(http_auth, logout_ends_every_session)
{
    struct tsupport_user first;
    struct tsupport_user second;
    struct tsupport_response res;

    tsupport_user_new(server.port, "logout@example.com", PASSWORD, &first);
    cr_assert_eq(tsupport_login(server.port, first.email, PASSWORD, NULL, &second), 200);
    cr_assert_eq(profile_status(second.access), 200);

    post("/api/auth/logout", NULL, NULL, &res);
    tsupport_expect_error(&res, 401, "Unauthorized");
    expect_bearer_challenge(&res, "logout without a token");
    tsupport_response_cleanup(&res);

    post("/api/auth/logout", first.access, NULL, &res);
    cr_expect_eq(res.status, 200, "%s", res.body);
    cr_expect(json_is_true(tsupport_get(res.json, "success")), "%s", res.body);
    cr_expect_str_eq(tsupport_str(res.json, "message") ? tsupport_str(res.json, "message") : "",
                     "Logged out");
    tsupport_response_cleanup(&res);

    expect_refused(first.access, "Unauthorized", "access token after logout");
    expect_refused_soon(second.access, "the user's other session after logout");
    expect_refresh_refused(first.refresh, "refresh token after logout");
    expect_refresh_refused(second.refresh, "other refresh token after logout");
    cr_expect_geq(db_scalar("SELECT count(*) FROM audit_logs"
                            " WHERE user_id = $1 AND event_type = 'logout'",
                            first.id),
                  1, "logout was not audited");

    /* Logging out again with the dead token: 401. */
    post("/api/auth/logout", first.access, NULL, &res);
    tsupport_expect_error(&res, 401, "Unauthorized");
    tsupport_response_cleanup(&res);
    auth_stop();
}

/* ---- Profile --------------------------------------------------------------------------- */

static void expect_member(const json_t *root, const char *path, const char *what)
{
    cr_expect(tsupport_get(root, path) != NULL, "%s: %s is missing", what, path);
}

Test(http_auth, profile_has_every_field)
{
    static const char *const members[] = {
        "user.id",
        "user.email",
        "user.firstName",
        "user.lastName",
        "user.phoneNumber",
        "user.role",
        "user.isVerified",
        "user.twoFactorEnabled",
        "user.createdAt",
        "user.lastLoginAt",
        "user.subscription.id",
        "user.subscription.plan",
        "user.subscription.status",
        "user.subscription.isTrial",
        "user.subscription.startsAt",
        "user.subscription.endsAt",
        "user.subscription.autoRenew",
        NULL,
    };
    struct tsupport_response res;
    struct tsupport_user user;

    post("/api/auth/register", NULL,
         "{\"email\":\"Profile@Example.com\",\"password\":\"" PASSWORD "\","
         "\"firstName\":\"Kavya\",\"lastName\":\"Nair\",\"phoneNumber\":\"+14155550123\"}",
         &res);
    cr_assert_eq(res.status, 201, "%s", res.body);
    tsupport_response_cleanup(&res);
    cr_assert_eq(tsupport_login(server.port, "profile@example.com", PASSWORD, NULL, &user), 200);

    get_profile(user.access, &res);
    cr_assert_eq(res.status, 200, "%s", res.body);
    cr_expect(json_is_true(tsupport_get(res.json, "success")), "%s", res.body);
    for (int i = 0; members[i] != NULL; i++)
        expect_member(res.json, members[i], res.body);
    cr_expect_str_eq(tsupport_str(res.json, "user.id"), user.id);
    cr_expect_str_eq(tsupport_str(res.json, "user.email"), "profile@example.com");
    cr_expect_str_eq(tsupport_str(res.json, "user.firstName"), "Kavya");
    cr_expect_str_eq(tsupport_str(res.json, "user.lastName"), "Nair");
    cr_expect_str_eq(tsupport_str(res.json, "user.phoneNumber"), "+14155550123");
    cr_expect_str_eq(tsupport_str(res.json, "user.role"), "user");
    cr_expect(json_is_false(tsupport_get(res.json, "user.isVerified")), "%s", res.body);
    cr_expect(json_is_false(tsupport_get(res.json, "user.twoFactorEnabled")), "%s", res.body);
    cr_expect(tsupport_is_rfc3339_utc(tsupport_str(res.json, "user.createdAt")), "%s", res.body);
    cr_expect(tsupport_is_rfc3339_utc(tsupport_str(res.json, "user.lastLoginAt")), "%s", res.body);
    cr_expect(tsupport_is_uuid(tsupport_str(res.json, "user.subscription.id")), "%s", res.body);
    cr_expect_str_eq(tsupport_str(res.json, "user.subscription.plan"), "Free");
    cr_expect_str_eq(tsupport_str(res.json, "user.subscription.status"), "active");
    cr_expect(json_is_false(tsupport_get(res.json, "user.subscription.isTrial")), "%s", res.body);
    cr_expect(tsupport_is_rfc3339_utc(tsupport_str(res.json, "user.subscription.startsAt")), "%s",
              res.body);
    cr_expect(json_is_null(tsupport_get(res.json, "user.subscription.endsAt")),
              "Free never expires: %s", res.body);
    cr_expect(json_is_boolean(tsupport_get(res.json, "user.subscription.autoRenew")), "%s",
              res.body);
    cr_expect(tsupport_get(res.json, "user.password") == NULL &&
                  tsupport_get(res.json, "user.passwordHash") == NULL,
              "the profile leaks the password hash: %s", res.body);
    cr_expect(strstr(res.body, "$argon2") == NULL, "%s", res.body);
    tsupport_response_cleanup(&res);

    expect_refused(NULL, "Unauthorized", "profile without a token");
    auth_stop();
}

static void patch(const char *token, const char *body, struct tsupport_response *res)
{
    tsupport_json(server.port, "PATCH", "/api/profile", token, body, res);
}

Test(http_auth, profile_patch_changes_only_what_it_may)
{
    static const struct {
        const char *body;
        const char *field;
    } refused[] = {
        {"{\"email\":\"other@example.com\"}", "email"},
        {"{\"role\":\"admin\"}", "role"},
        {"{\"password\":\"a new password\"}", "password"},
        {"{\"isVerified\":true}", "isVerified"},
        {"{\"id\":\"6f1c1b8e-3d6c-4c55-9d55-2f1e0c7a9b10\"}", "id"},
        {"{\"favouriteColour\":\"teal\"}", "favouriteColour"},
        {"{\"firstName\":5}", "firstName"},
        {"{\"phoneNumber\":\"12345\"}", "phoneNumber"},
        {"{\"lastName\":\"a\\u0000b\"}", "lastName"},
        {"{\"firstName\":\"Ok\",\"role\":\"superadmin\"}", "role"},
    };
    struct tsupport_user user;
    struct tsupport_response res;

    tsupport_user_new(server.port, "patch@example.com", PASSWORD, &user);

    patch(user.access, "{\"firstName\":\"Meera\"}", &res);
    cr_assert_eq(res.status, 200, "%s", res.body);
    cr_expect(json_is_true(tsupport_get(res.json, "success")), "%s", res.body);
    cr_expect_str_eq(tsupport_str(res.json, "user.firstName"), "Meera");
    cr_expect(json_is_null(tsupport_get(res.json, "user.lastName")), "%s", res.body);
    cr_expect_str_eq(tsupport_str(res.json, "user.email"), "patch@example.com");
    cr_expect_str_eq(tsupport_str(res.json, "user.subscription.plan"), "Free");
    tsupport_response_cleanup(&res);

    patch(user.access, "{\"lastName\":\"Iyer\",\"phoneNumber\":\"+919812345678\"}", &res);
    cr_assert_eq(res.status, 200, "%s", res.body);
    cr_expect_str_eq(tsupport_str(res.json, "user.firstName"), "Meera");
    cr_expect_str_eq(tsupport_str(res.json, "user.lastName"), "Iyer");
    cr_expect_str_eq(tsupport_str(res.json, "user.phoneNumber"), "+919812345678");
    tsupport_response_cleanup(&res);

    /* null clears. */
    patch(user.access, "{\"firstName\":null}", &res);
    cr_assert_eq(res.status, 200, "%s", res.body);
    cr_expect(json_is_null(tsupport_get(res.json, "user.firstName")), "%s", res.body);
    cr_expect_str_eq(tsupport_str(res.json, "user.lastName"), "Iyer");
    tsupport_response_cleanup(&res);

    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        patch(user.access, refused[i].body, &res);
        expect_validation(&res, refused[i].field, refused[i].body);
        tsupport_response_cleanup(&res);
    }

    /* Nothing of the refused patches landed. */
    get_profile(user.access, &res);
    cr_assert_eq(res.status, 200, "%s", res.body);
    cr_expect(json_is_null(tsupport_get(res.json, "user.firstName")), "%s", res.body);
    cr_expect_str_eq(tsupport_str(res.json, "user.lastName"), "Iyer");
    cr_expect_str_eq(tsupport_str(res.json, "user.phoneNumber"), "+919812345678");
    cr_expect_str_eq(tsupport_str(res.json, "user.email"), "patch@example.com");
    cr_expect_str_eq(tsupport_str(res.json, "user.role"), "user");
    cr_expect(json_is_false(tsupport_get(res.json, "user.isVerified")), "%s", res.body);
    tsupport_response_cleanup(&res);
    cr_expect_eq(tsupport_login(server.port, "patch@example.com", PASSWORD, NULL, NULL), 200);
    auth_stop();
}

static void change_password(const char *token, const char *current, const char *next,
                            struct tsupport_response *res)
{
    post_pack("/api/profile/password", token,
              json_pack("{s:s, s:s}", "currentPassword", current, "newPassword", next), res);
}

Test(http_auth, password_change_ends_the_other_sessions)
{
    struct tsupport_user mine;
    struct tsupport_user other;
    struct tsupport_response res;

    tsupport_user_new(server.port, "pw@example.com", PASSWORD, &mine);
    cr_assert_eq(tsupport_login(server.port, mine.email, PASSWORD, NULL, &other), 200);
    cr_assert_eq(profile_status(other.access), 200);

    change_password(mine.access, "not my password", NEW_PASSWORD, &res);
    expect_validation(&res, "currentPassword", "wrong currentPassword");
    tsupport_response_cleanup(&res);
    change_password(mine.access, PASSWORD, "short", &res);
    expect_validation(&res, "newPassword", "7-character newPassword");
    tsupport_response_cleanup(&res);
    post("/api/profile/password", mine.access, "{\"newPassword\":\"" NEW_PASSWORD "\"}", &res);
    expect_validation(&res, "currentPassword", "no currentPassword");
    tsupport_response_cleanup(&res);
    cr_expect_eq(profile_status(other.access), 200, "a refused change ended a session");

    change_password(mine.access, PASSWORD, NEW_PASSWORD, &res);
    cr_expect_eq(res.status, 200, "%s", res.body);
    cr_expect(json_is_true(tsupport_get(res.json, "success")), "%s", res.body);
    tsupport_response_cleanup(&res);

    expect_refused_soon(other.access, "the other session after a password change");
    cr_expect_eq(profile_status(mine.access), 200, "the session that changed it was ended");
    expect_refresh_refused(other.refresh, "the other session's refresh token");

    cr_expect_eq(tsupport_login(server.port, mine.email, NEW_PASSWORD, NULL, NULL), 200);
    cr_expect_eq(tsupport_login(server.port, mine.email, PASSWORD, NULL, NULL), 401);
    auth_stop();
}

/* ---- Sessions -------------------------------------------------------------------------- */

/* The session of `id` in a list answer, or NULL. */
static json_t *session_in(const struct tsupport_response *res, const char *id)
{
    json_t *sessions = tsupport_get(res->json, "sessions");

    for (size_t i = 0; i < json_array_size(sessions); i++) {
        json_t *s = json_array_get(sessions, i);
        const char *sid = json_string_value(json_object_get(s, "id"));

        if (sid != NULL && strcmp(sid, id) == 0)
            return s;
    }
    return NULL;
}

Test(http_auth, sessions_are_listed_and_deleted)
{
    static const char *const members[] = {"id",         "ipAddress", "userAgent",
                                          "deviceType", "createdAt", "lastActivity",
                                          "expiresAt",  "current",   NULL};
    struct tsupport_user phone;
    struct tsupport_user desktop;
    struct tsupport_user stranger;
    struct tsupport_response res;
    char path[128];
    json_t *s;

    tsupport_register(server.port, "sessions@example.com", PASSWORD);
    cr_assert_eq(tsupport_login(server.port, "sessions@example.com", PASSWORD, IPHONE_UA, &phone),
                 200);
    cr_assert_eq(
        tsupport_login(server.port, "sessions@example.com", PASSWORD, DESKTOP_UA, &desktop), 200);
    tsupport_user_new(server.port, "stranger@example.com", PASSWORD, &stranger);

    tsupport_json(server.port, "GET", "/api/sessions", phone.access, NULL, &res);
    cr_assert_eq(res.status, 200, "%s", res.body);
    cr_expect(json_is_true(tsupport_get(res.json, "success")), "%s", res.body);
    cr_expect_eq(json_array_size(tsupport_get(res.json, "sessions")), 2, "%s", res.body);
    s = session_in(&res, phone.session_id);
    cr_assert_not_null(s, "the phone session is not listed: %s", res.body);
    for (int i = 0; members[i] != NULL; i++)
        cr_expect(json_object_get(s, members[i]) != NULL, "%s missing: %s", members[i], res.body);
    cr_expect(json_is_true(json_object_get(s, "current")), "%s", res.body);
    cr_expect_str_eq(json_string_value(json_object_get(s, "deviceType")), "mobile");
    cr_expect_str_eq(json_string_value(json_object_get(s, "userAgent")), IPHONE_UA);
    cr_expect_str_eq(json_string_value(json_object_get(s, "ipAddress")), "127.0.0.1");
    cr_expect(tsupport_is_rfc3339_utc(json_string_value(json_object_get(s, "createdAt"))), "%s",
              res.body);
    cr_expect(tsupport_is_rfc3339_utc(json_string_value(json_object_get(s, "lastActivity"))), "%s",
              res.body);
    cr_expect(tsupport_is_rfc3339_utc(json_string_value(json_object_get(s, "expiresAt"))), "%s",
              res.body);
    s = session_in(&res, desktop.session_id);
    cr_assert_not_null(s, "the desktop session is not listed: %s", res.body);
    cr_expect(json_is_false(json_object_get(s, "current")), "%s", res.body);
    cr_expect_str_eq(json_string_value(json_object_get(s, "deviceType")), "desktop");
    cr_expect(session_in(&res, stranger.session_id) == NULL, "another user's session is listed");
    tsupport_response_cleanup(&res);

    /* Someone else's, unknown, or not an id at all: 404, and nothing ends. */
    snprintf(path, sizeof(path), "/api/sessions/%s", stranger.session_id);
    tsupport_json(server.port, "DELETE", path, phone.access, NULL, &res);
    tsupport_expect_error(&res, 404, "NotFound");
    tsupport_response_cleanup(&res);
    cr_expect_eq(profile_status(stranger.access), 200, "another user's session was ended");
    tsupport_json(server.port, "DELETE", "/api/sessions/6f1c1b8e-3d6c-4c55-9d55-2f1e0c7a9b10",
                  phone.access, NULL, &res);
    tsupport_expect_error(&res, 404, "NotFound");
    tsupport_response_cleanup(&res);
    tsupport_json(server.port, "DELETE", "/api/sessions/not-a-session", phone.access, NULL, &res);
    tsupport_expect_error(&res, 404, "NotFound");
    tsupport_response_cleanup(&res);
    tsupport_json(server.port, "DELETE", path, NULL, NULL, &res);
    tsupport_expect_error(&res, 401, "Unauthorized");
    tsupport_response_cleanup(&res);

    /* My other session: ended. */
    cr_assert_eq(profile_status(desktop.access), 200);
    snprintf(path, sizeof(path), "/api/sessions/%s", desktop.session_id);
    tsupport_json(server.port, "DELETE", path, phone.access, NULL, &res);
    cr_expect_eq(res.status, 200, "%s", res.body);
    cr_expect(json_is_true(tsupport_get(res.json, "success")), "%s", res.body);
    tsupport_response_cleanup(&res);
    expect_refused_soon(desktop.access, "a deleted session's access token");
    expect_refresh_refused(desktop.refresh, "a deleted session's refresh token");
    cr_expect_eq(profile_status(phone.access), 200);

    tsupport_json(server.port, "DELETE", path, phone.access, NULL, &res);
    tsupport_expect_error(&res, 404, "NotFound");
    tsupport_response_cleanup(&res);

    tsupport_json(server.port, "GET", "/api/sessions", phone.access, NULL, &res);
    cr_expect_eq(res.status, 200, "%s", res.body);
    cr_expect_eq(json_array_size(tsupport_get(res.json, "sessions")), 1, "%s", res.body);
    cr_expect(session_in(&res, phone.session_id) != NULL, "%s", res.body);
    tsupport_response_cleanup(&res);
    auth_stop();
}

/* ---- Attacker tokens ------------------------------------------------------------------- */

static void expect_header_refused(const char *authorization, const char *what)
{
    const char *headers[] = {authorization, NULL};
    struct tsupport_request req = {.method = "GET", .path = "/api/profile", .headers = headers};
    struct tsupport_response res;

    tsupport_send(server.port, &req, &res);
    tsupport_expect_error(&res, 401, "Unauthorized");
    expect_bearer_challenge(&res, what);
    tsupport_response_cleanup(&res);
}

Test(http_auth, attacker_tokens_are_refused)
{
    struct tsupport_user user;
    long long now = (long long)time(NULL);
    char *claims;
    char *token;

    tsupport_user_new(server.port, "target@example.com", PASSWORD, &user);

    /* Our forgeries are faithful: the right key and claims are accepted. */
    claims = claims_json(&user, "access", "manas360", now, now + 600);
    token = jwt_sign(JWT_ALG_HS256, TSUPPORT_JWT_SECRET, claims);
    cr_expect_eq(profile_status(token), 200, "a correctly signed token was refused");
    free(token);

    expect_refused(NULL, "Unauthorized", "no Authorization header");
    expect_header_refused("Authorization: Basic xyz", "Basic credentials");
    expect_header_refused("Authorization: Bearer", "Bearer without a token");
    expect_header_refused("Authorization: Bearer ", "Bearer and a space");
    expect_header_refused("Authorization: Token abc.def.ghi", "another scheme");
    expect_refused("garbage", "Unauthorized", "garbage");

    token = tamper(user.access, 1);
    expect_refused(token, "Unauthorized", "payload with one character flipped");
    free(token);
    token = tamper(user.access, 2);
    expect_refused(token, "Unauthorized", "signature with one character flipped");
    free(token);
    token = tamper(user.access, 0);
    expect_refused(token, "Unauthorized", "header with one character flipped");
    free(token);

    /* alg none, from libjwt and by hand. */
    token = jwt_sign(JWT_ALG_NONE, NULL, claims);
    expect_refused(token, "Unauthorized", "alg none (libjwt)");
    free(token);
    {
        char *header = b64url("{\"alg\":\"none\",\"typ\":\"JWT\"}");
        char *payload = b64url(claims);
        char handmade[2048];

        snprintf(handmade, sizeof(handmade), "%s.%s.", header, payload);
        expect_refused(handmade, "Unauthorized", "alg none (by hand)");
        /* The real signature under an alg none header. */
        snprintf(handmade, sizeof(handmade), "%s.%s.%s", header, payload,
                 strrchr(user.access, '.') + 1);
        expect_refused(handmade, "Unauthorized", "alg none with a signature");
        free(header);
        free(payload);
    }

    token = jwt_sign(JWT_ALG_HS512, TSUPPORT_JWT_SECRET, claims);
    expect_refused(token, "Unauthorized", "HS512 with the right secret");
    free(token);
    token = jwt_sign(JWT_ALG_HS384, TSUPPORT_JWT_SECRET, claims);
    expect_refused(token, "Unauthorized", "HS384 with the right secret");
    free(token);
    token = jwt_sign(JWT_ALG_HS256, TSUPPORT_JWT_REFRESH_SECRET, claims);
    expect_refused(token, "Unauthorized", "access claims signed with the refresh secret");
    free(token);
    token = jwt_sign(JWT_ALG_HS256, "an entirely different secret of 32+ bytes", claims);
    expect_refused(token, "Unauthorized", "a wrong secret");
    free(token);
    free(claims);

    expect_refused(user.refresh, "Unauthorized", "a refresh token as access token");

    claims = claims_json(&user, "refresh", "manas360", now, now + 600);
    token = jwt_sign(JWT_ALG_HS256, TSUPPORT_JWT_SECRET, claims);
    expect_refused(token, "Unauthorized", "typ refresh signed with JWT_SECRET");
    free(token);
    free(claims);

    claims = claims_json(&user, "access", "someone-else", now, now + 600);
    token = jwt_sign(JWT_ALG_HS256, TSUPPORT_JWT_SECRET, claims);
    expect_refused(token, "Unauthorized", "another issuer");
    free(token);
    free(claims);

    {
        struct tsupport_user ghost = user;

        snprintf(ghost.session_id, sizeof(ghost.session_id), "%s",
                 "6f1c1b8e-3d6c-4c55-9d55-2f1e0c7a9b10");
        claims = claims_json(&ghost, "access", "manas360", now, now + 600);
        token = jwt_sign(JWT_ALG_HS256, TSUPPORT_JWT_SECRET, claims);
        expect_refused(token, "Unauthorized", "a session that does not exist");
        free(token);
        free(claims);
    }

    claims = claims_json(&user, "access", "manas360", now - 7200, now - 3600);
    token = jwt_sign(JWT_ALG_HS256, TSUPPORT_JWT_SECRET, claims);
    expect_refused(token, "TokenExpired", "expired an hour ago");
    free(token);
    free(claims);

    {
        char *huge = repeat("A", 5000);

        memcpy(huge + 100, ".", 1);
        memcpy(huge + 4000, ".", 1);
        expect_refused(huge, "Unauthorized", "a 5,000-byte bearer");
        free(huge);
    }

    /* Still standing, and the real token still works. */
    cr_expect_eq(tsupport_http(server.port, "GET", "/healthz", NULL, NULL, NULL, NULL), 200);
    cr_expect_eq(profile_status(user.access), 200);
    auth_stop();
}
