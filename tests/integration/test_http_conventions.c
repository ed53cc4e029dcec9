/* SPDX-License-Identifier: MIT */
/*
 * The front end's conventions over real HTTP: 404/405, body limits and types, request ids,
 * headers, the order of checks, health, metrics, shutdown and keep-alive.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <curl/curl.h>

#include "test_support.h"

#define BODY_MAX_BYTES 65536
#define JSON_UTF8 "application/json; charset=utf-8"
#define USER_PASSWORD "correct horse battery"

static struct tsupport_server server;

static void conventions_setup(void)
{
    tsupport_server_start(&server, NULL);
}

static void conventions_teardown(void)
{
    tsupport_server_destroy(&server);
}

TestSuite(http_conventions, .init = conventions_setup, .fini = conventions_teardown);

/* Every test ends here: SIGTERM, and a clean exit 0 (no leak, no sanitizer report). */
static void conventions_stop(void)
{
    cr_expect_eq(tsupport_server_stop(&server), 0, "the server did not stop cleanly");
}

/* A JSON object of exactly `size` bytes: {"a":"aaa...a"}. Caller frees. */
static char *padded_object(size_t size)
{
    static const char head[] = "{\"a\":\"";
    static const char tail[] = "\"}";
    size_t fill = size - (sizeof(head) - 1) - (sizeof(tail) - 1);
    char *text = malloc(size + 1);

    cr_assert_not_null(text);
    memcpy(text, head, sizeof(head) - 1);
    memset(text + sizeof(head) - 1, 'a', fill);
    memcpy(text + size - (sizeof(tail) - 1), tail, sizeof(tail));
    cr_assert_eq(strlen(text), size);
    return text;
}

static void expect_json_type(const struct tsupport_response *res, const char *what)
{
    char value[128];

    cr_expect(tsupport_header(res, "Content-Type", value, sizeof(value)) != NULL &&
                  strcmp(value, JSON_UTF8) == 0,
              "%s: Content-Type is not %s:\n%s", what, JSON_UTF8, res->headers);
}

Test(http_conventions, unknown_route_is_404_not_found)
{
    static const char *const cases[][2] = {
        {"GET", "/no/such/route"}, {"POST", "/api/auth/registerx"}, {"GET", "/api/profile/extra"},
        {"GET", "/api"},           {"DELETE", "/api/sessions/a/b"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct tsupport_response res;

        tsupport_json(server.port, cases[i][0], cases[i][1], NULL, NULL, &res);
        tsupport_expect_error(&res, 404, "NotFound");
        expect_json_type(&res, cases[i][1]);
        tsupport_response_cleanup(&res);
    }
    conventions_stop();
}

/* Splits an Allow value on commas and spaces; true when `method` is one of its items. */
static bool allow_has(const char *allow, const char *method)
{
    char copy[256];
    char *save = NULL;

    snprintf(copy, sizeof(copy), "%s", allow);
    for (char *item = strtok_r(copy, ", ", &save); item != NULL;
         item = strtok_r(NULL, ", ", &save)) {
        if (strcmp(item, method) == 0)
            return true;
    }
    return false;
}

Test(http_conventions, wrong_method_is_405_with_allow)
{
    static const struct {
        const char *method;
        const char *path;
        const char *allowed[3];
        const char *refused;
    } cases[] = {
        {"PUT", "/api/profile", {"GET", "PATCH", NULL}, "PUT"},
        {"DELETE", "/api/profile", {"GET", "PATCH", NULL}, "POST"},
        {"GET", "/api/auth/login", {"POST", NULL, NULL}, "GET"},
        {"POST", "/api/sessions", {"GET", NULL, NULL}, "DELETE"},
        {"GET",
         "/api/sessions/1d3f6a0e-0000-4000-8000-000000000000",
         {"DELETE", NULL, NULL},
         "GET"},
        {"POST", "/healthz", {"GET", NULL, NULL}, "POST"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct tsupport_response res;
        char allow[256];

        tsupport_json(server.port, cases[i].method, cases[i].path, NULL, NULL, &res);
        tsupport_expect_error(&res, 405, "MethodNotAllowed");
        cr_expect(tsupport_header(&res, "Allow", allow, sizeof(allow)) != NULL,
                  "%s %s: no Allow header:\n%s", cases[i].method, cases[i].path, res.headers);
        for (int m = 0; m < 3 && cases[i].allowed[m] != NULL; m++)
            cr_expect(allow_has(allow, cases[i].allowed[m]), "%s %s: Allow \"%s\" lacks %s",
                      cases[i].method, cases[i].path, allow, cases[i].allowed[m]);
        cr_expect(!allow_has(allow, cases[i].refused), "%s %s: Allow \"%s\" names %s",
                  cases[i].method, cases[i].path, allow, cases[i].refused);
        tsupport_response_cleanup(&res);
    }
    conventions_stop();
}

static void post_register(const char *body, size_t len, bool chunked, struct tsupport_response *res)
{
    struct tsupport_request req = {.method = "POST",
                                   .path = "/api/auth/register",
                                   .body = body,
                                   .body_len = len,
                                   .chunked = chunked};

    tsupport_send(server.port, &req, res);
}

Test(http_conventions, body_over_64_kib_is_413)
{
    char *over = padded_object(BODY_MAX_BYTES + 1);
    char *exact = padded_object(BODY_MAX_BYTES);
    char *large = padded_object(BODY_MAX_BYTES + 5000);
    struct tsupport_response res;

    /* Declared by Content-Length. */
    post_register(over, BODY_MAX_BYTES + 1, false, &res);
    tsupport_expect_error(&res, 413, "PayloadTooLarge");
    expect_json_type(&res, "413 by Content-Length");
    tsupport_response_cleanup(&res);

    /* Chunked, with no Content-Length: found while reading. */
    post_register(large, BODY_MAX_BYTES + 5000, true, &res);
    tsupport_expect_error(&res, 413, "PayloadTooLarge");
    tsupport_response_cleanup(&res);

    post_register(over, BODY_MAX_BYTES + 1, true, &res);
    tsupport_expect_error(&res, 413, "PayloadTooLarge");
    tsupport_response_cleanup(&res);

    /* Exactly 64 KiB is allowed, either way: the unknown field is what gets refused. */
    post_register(exact, BODY_MAX_BYTES, false, &res);
    tsupport_expect_error(&res, 400, "ValidationError");
    cr_expect_str_eq(tsupport_str(res.json, "fields.a") ? tsupport_str(res.json, "fields.a") : "",
                     "unknown field", "%.300s", res.body);
    tsupport_response_cleanup(&res);

    post_register(exact, BODY_MAX_BYTES, true, &res);
    tsupport_expect_error(&res, 400, "ValidationError");
    tsupport_response_cleanup(&res);

    /* The server is still fine after refusing. */
    cr_expect_eq(tsupport_http(server.port, "GET", "/healthz", NULL, NULL, NULL, NULL), 200);
    free(over);
    free(exact);
    free(large);
    conventions_stop();
}

Test(http_conventions, body_without_json_type_is_415)
{
    static const char body[] = "{\"email\":\"a@example.com\",\"password\":\"12345678\"}";
    static const char *const types[] = {"Content-Type: text/plain",
                                        "Content-Type: application/x-www-form-urlencoded",
                                        "Content-Type:", NULL};

    for (int i = 0; types[i] != NULL; i++) {
        const char *headers[] = {types[i], NULL};
        struct tsupport_request req = {
            .method = "POST", .path = "/api/auth/register", .body = body, .headers = headers};
        struct tsupport_response res;

        tsupport_send(server.port, &req, &res);
        tsupport_expect_error(&res, 415, "UnsupportedMediaType");
        cr_expect(!tsupport_get(res.json, "user"), "%s", types[i]);
        tsupport_response_cleanup(&res);
    }

    /* A charset parameter is still JSON: this gets past 415 to validation. */
    {
        const char *headers[] = {"Content-Type: application/json; charset=utf-8", NULL};
        struct tsupport_request req = {
            .method = "POST", .path = "/api/auth/register", .body = "{}", .headers = headers};
        struct tsupport_response res;

        tsupport_send(server.port, &req, &res);
        tsupport_expect_error(&res, 400, "ValidationError");
        tsupport_response_cleanup(&res);
    }
    conventions_stop();
}

Test(http_conventions, post_without_body_is_an_empty_object)
{
    const char *form[] = {"Content-Type: application/x-www-form-urlencoded", NULL};
    struct tsupport_request empty = {
        .method = "POST", .path = "/api/auth/register", .body = "", .body_len = 0, .headers = form};
    struct tsupport_response res;

    /* No body and no Content-Length at all. */
    tsupport_json(server.port, "POST", "/api/auth/register", NULL, NULL, &res);
    tsupport_expect_error(&res, 400, "ValidationError");
    cr_expect_str_eq(tsupport_str(res.json, "fields.email") ? tsupport_str(res.json, "fields.email")
                                                            : "",
                     "is required", "%s", res.body);
    cr_expect(tsupport_str(res.json, "fields.password") != NULL, "%s", res.body);
    tsupport_response_cleanup(&res);

    /* Content-Length: 0 with a non-JSON type: there is no body, so no 415. */
    tsupport_send(server.port, &empty, &res);
    tsupport_expect_error(&res, 400, "ValidationError");
    cr_expect(tsupport_str(res.json, "fields.email") != NULL, "%s", res.body);
    tsupport_response_cleanup(&res);

    /* Login likewise names its missing fields. */
    tsupport_json(server.port, "POST", "/api/auth/login", NULL, NULL, &res);
    tsupport_expect_error(&res, 400, "ValidationError");
    cr_expect(tsupport_str(res.json, "fields.email") != NULL, "%s", res.body);
    tsupport_response_cleanup(&res);
    conventions_stop();
}

/* {"a":{"a":...{}...}} nested `depth` objects deep. Caller frees. */
static char *nested_object(int depth)
{
    char *text = malloc((size_t)depth * 6 + 8);
    size_t n = 0;

    cr_assert_not_null(text);
    for (int i = 0; i < depth - 1; i++) {
        memcpy(text + n, "{\"a\":", 5);
        n += 5;
    }
    text[n++] = '{';
    for (int i = 0; i < depth; i++)
        text[n++] = '}';
    text[n] = '\0';
    return text;
}

Test(http_conventions, malformed_json_is_400_invalid_json)
{
    char *deep = nested_object(100);
    const char *const bodies[] = {
        "{\"email\":",
        "{\"email\" \"a@example.com\"}",
        "[1,2,3]",
        "[]",
        "\"just a string\"",
        "42",
        "null",
        "true",
        "{}}",
        "\xff\xfe{\"a\":1}",
        deep,
        NULL,
    };

    for (int i = 0; bodies[i] != NULL; i++) {
        struct tsupport_response res;

        tsupport_json(server.port, "POST", "/api/auth/register", NULL, bodies[i], &res);
        tsupport_expect_error(&res, 400, "InvalidJson");
        cr_expect(tsupport_get(res.json, "fields") == NULL, "case %d: %s", i, res.body);
        tsupport_response_cleanup(&res);
    }

    /* 20 levels is within reason: it parses, and validation names the unknown field. */
    {
        char *shallow = nested_object(20);
        struct tsupport_response res;

        tsupport_json(server.port, "POST", "/api/auth/register", NULL, shallow, &res);
        tsupport_expect_error(&res, 400, "ValidationError");
        tsupport_response_cleanup(&res);
        free(shallow);
    }
    free(deep);
    conventions_stop();
}

/* True when `id` is 1 to 128 characters of A-Z a-z 0-9 . _ - */
static bool request_id_valid(const char *id)
{
    size_t len = strlen(id);

    return len >= 1 && len <= 128 &&
           strspn(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == len;
}

struct kind_of_response {
    const char *method;
    const char *path;
    const char *body;
    long status;
};

static const struct kind_of_response response_kinds[] = {
    {"GET", "/healthz", NULL, 200},
    {"GET", "/metrics", NULL, 200},
    {"GET", "/no/such/route", NULL, 404},
    {"GET", "/api/profile", NULL, 401},
    {"POST", "/api/auth/register", "[]", 400},
    {"POST", "/api/auth/register", "{\"email\":\"x\"}", 400},
    {"PUT", "/api/profile", NULL, 405},
};

static void request_id_case(const struct kind_of_response *kind, const char *sent, bool echoed)
{
    char header[700];
    const char *headers[] = {header, NULL};
    struct tsupport_request req = {
        .method = kind->method, .path = kind->path, .body = kind->body, .headers = headers};
    struct tsupport_response res;
    char got[700];

    snprintf(header, sizeof(header), "X-Request-Id: %s", sent);
    tsupport_send(server.port, &req, &res);
    cr_expect_eq(res.status, kind->status, "%s %s: %ld %s", kind->method, kind->path, res.status,
                 res.body);
    if (tsupport_header(&res, "X-Request-Id", got, sizeof(got)) == NULL) {
        cr_expect_fail("%s %s (%ld): no X-Request-Id:\n%s", kind->method, kind->path, res.status,
                       res.headers);
    } else if (echoed) {
        cr_expect_str_eq(got, sent, "%s %s (%ld)", kind->method, kind->path, res.status);
    } else {
        cr_expect_str_neq(got, sent, "%s %s (%ld) echoed an invalid id", kind->method, kind->path,
                          res.status);
        cr_expect(request_id_valid(got), "%s %s (%ld): replacement \"%s\" is not a valid id",
                  kind->method, kind->path, res.status, got);
    }
    tsupport_response_cleanup(&res);
}

Test(http_conventions, request_id_is_echoed_when_valid_else_replaced)
{
    char longest[129];
    char too_long[130];
    const char *const valid[] = {"a", "abc.DEF_123-x", "0", "...", "-_-", longest, NULL};
    const char *const invalid[] = {too_long,    "has space",  "caf\xc3\xa9", "id\xe2\x9c\x93",
                                   "a/b",       "semi;colon", "quote\"d",    "percent%",
                                   "plus+sign", NULL};

    memset(longest, 'x', 128);
    longest[128] = '\0';
    memset(too_long, 'y', 129);
    too_long[129] = '\0';

    for (size_t k = 0; k < sizeof(response_kinds) / sizeof(response_kinds[0]); k++) {
        for (int i = 0; valid[i] != NULL; i++)
            request_id_case(&response_kinds[k], valid[i], true);
        for (int i = 0; invalid[i] != NULL; i++)
            request_id_case(&response_kinds[k], invalid[i], false);
    }

    /* With none sent, each answer still carries a fresh one. */
    {
        struct tsupport_response a;
        struct tsupport_response b;
        char id_a[200];
        char id_b[200];

        tsupport_json(server.port, "GET", "/healthz", NULL, NULL, &a);
        tsupport_json(server.port, "GET", "/no/such/route", NULL, NULL, &b);
        cr_assert(tsupport_header(&a, "X-Request-Id", id_a, sizeof(id_a)) != NULL, "%s", a.headers);
        cr_assert(tsupport_header(&b, "X-Request-Id", id_b, sizeof(id_b)) != NULL, "%s", b.headers);
        cr_expect(request_id_valid(id_a) && request_id_valid(id_b), "%s %s", id_a, id_b);
        cr_expect_str_neq(id_a, id_b, "two requests got the same id");
        tsupport_response_cleanup(&a);
        tsupport_response_cleanup(&b);
    }
    conventions_stop();
}

/*
 * civetweb's parser refuses a control character inside a header value, even a tab, before
 * any route runs. That refusal still speaks the contract: JSON, and a fresh request id.
 */
Test(http_conventions, request_refused_by_the_parser_still_gets_json_and_an_id)
{
    const char *headers[] = {"X-Request-Id: tab\tin", NULL};
    struct tsupport_request req = {.method = "GET", .path = "/healthz", .headers = headers};
    struct tsupport_response res;
    char got[200];

    tsupport_send(server.port, &req, &res);
    cr_expect_eq(res.status, 400, "%ld %s", res.status, res.body);
    cr_expect(strstr(res.body, "\"success\":false") != NULL, "%s", res.body);
    cr_expect(strstr(res.body, "\"error\":\"ValidationError\"") != NULL, "%s", res.body);
    cr_assert(tsupport_header(&res, "X-Request-Id", got, sizeof(got)) != NULL, "%s", res.headers);
    cr_expect(request_id_valid(got) && strcmp(got, "tab\tin") != 0, "%s", got);
    tsupport_response_cleanup(&res);
    conventions_stop();
}

Test(http_conventions, json_content_type_and_no_store)
{
    struct tsupport_response res;
    struct tsupport_user user;
    char value[128];
    char body[4096];

    tsupport_json(server.port, "POST", "/api/auth/register", NULL,
                  "{\"email\":\"store@example.com\",\"password\":\"" USER_PASSWORD "\"}", &res);
    cr_expect_eq(res.status, 201, "%s", res.body);
    expect_json_type(&res, "register 201");
    tsupport_response_cleanup(&res);

    /* Login: success and refusal both carry no-store. */
    tsupport_json(server.port, "POST", "/api/auth/login", NULL,
                  "{\"email\":\"store@example.com\",\"password\":\"" USER_PASSWORD "\"}", &res);
    cr_assert_eq(res.status, 200, "%s", res.body);
    expect_json_type(&res, "login 200");
    cr_expect(tsupport_header(&res, "Cache-Control", value, sizeof(value)) != NULL &&
                  strcmp(value, "no-store") == 0,
              "login 200 without Cache-Control: no-store:\n%s", res.headers);
    snprintf(user.refresh, sizeof(user.refresh), "%s", tsupport_str(res.json, "refreshToken"));
    snprintf(user.access, sizeof(user.access), "%s", tsupport_str(res.json, "accessToken"));
    tsupport_response_cleanup(&res);

    tsupport_json(server.port, "POST", "/api/auth/login", NULL,
                  "{\"email\":\"store@example.com\",\"password\":\"wrong password\"}", &res);
    tsupport_expect_error(&res, 401, "InvalidCredentials");
    cr_expect(tsupport_header(&res, "Cache-Control", value, sizeof(value)) != NULL &&
                  strcmp(value, "no-store") == 0,
              "login 401 without Cache-Control: no-store:\n%s", res.headers);
    tsupport_response_cleanup(&res);

    /* Refresh. */
    snprintf(body, sizeof(body), "{\"refreshToken\":\"%s\"}", user.refresh);
    tsupport_json(server.port, "POST", "/api/auth/refresh", NULL, body, &res);
    cr_expect_eq(res.status, 200, "%s", res.body);
    expect_json_type(&res, "refresh 200");
    cr_expect(tsupport_header(&res, "Cache-Control", value, sizeof(value)) != NULL &&
                  strcmp(value, "no-store") == 0,
              "refresh 200 without Cache-Control: no-store:\n%s", res.headers);
    tsupport_response_cleanup(&res);

    /* Every other kind of answer is JSON too. */
    for (size_t k = 0; k < sizeof(response_kinds) / sizeof(response_kinds[0]); k++) {
        if (strcmp(response_kinds[k].path, "/metrics") == 0)
            continue;
        tsupport_json(server.port, response_kinds[k].method, response_kinds[k].path, NULL,
                      response_kinds[k].body, &res);
        cr_expect_eq(res.status, response_kinds[k].status);
        expect_json_type(&res, response_kinds[k].path);
        cr_expect(json_is_boolean(tsupport_get(res.json, "success")), "%s: %s",
                  response_kinds[k].path, res.body);
        tsupport_response_cleanup(&res);
    }
    tsupport_json(server.port, "GET", "/api/profile", user.access, NULL, &res);
    cr_expect_eq(res.status, 200, "%s", res.body);
    expect_json_type(&res, "profile 200");
    tsupport_response_cleanup(&res);
    conventions_stop();
}

Test(http_conventions, ten_kilobyte_header_is_served)
{
    char *padding = malloc(10000 + 16);
    const char *headers[] = {padding, NULL};
    struct tsupport_request healthz = {.method = "GET", .path = "/healthz", .headers = headers};
    struct tsupport_request reg = {.method = "POST",
                                   .path = "/api/auth/register",
                                   .body = "{\"email\":\"pad@example.com\"}",
                                   .headers = headers};
    struct tsupport_response res;

    cr_assert_not_null(padding);
    memcpy(padding, "X-Padding: ", 11);
    memset(padding + 11, 'a', 10000);
    padding[11 + 10000] = '\0';

    tsupport_send(server.port, &healthz, &res);
    cr_expect_eq(res.status, 200, "%ld %s", res.status, res.curl_error);
    cr_expect_str_eq(res.body, "{\"success\":true}");
    tsupport_response_cleanup(&res);

    tsupport_send(server.port, &reg, &res);
    tsupport_expect_error(&res, 400, "ValidationError");
    cr_expect(tsupport_str(res.json, "fields.password") != NULL, "%s", res.body);
    tsupport_response_cleanup(&res);
    free(padding);
    conventions_stop();
}

static void patch_profile(const char *token, const char *content_type, const char *body,
                          struct tsupport_response *res)
{
    char type[128];
    const char *headers[] = {type, NULL};
    struct tsupport_request req = {.method = "PATCH",
                                   .path = "/api/profile",
                                   .token = token,
                                   .body = body,
                                   .headers = headers};

    snprintf(type, sizeof(type), "Content-Type: %s", content_type);
    tsupport_send(server.port, &req, res);
}

static void expect_bearer_challenge(const struct tsupport_response *res, const char *what)
{
    char value[128];

    cr_expect(tsupport_header(res, "WWW-Authenticate", value, sizeof(value)) != NULL &&
                  strncmp(value, "Bearer", 6) == 0,
              "%s: no WWW-Authenticate: Bearer:\n%s", what, res->headers);
}

Test(http_conventions, access_decision_comes_before_body_checks)
{
    struct tsupport_user user;
    struct tsupport_response res;

    /* No token: 401 whatever the body, never 415 or 400. */
    patch_profile(NULL, "text/plain", "{\"firstName\":\"A\"}", &res);
    tsupport_expect_error(&res, 401, "Unauthorized");
    expect_bearer_challenge(&res, "text/plain without token");
    tsupport_response_cleanup(&res);

    patch_profile(NULL, "application/json", "{\"firstName\":", &res);
    tsupport_expect_error(&res, 401, "Unauthorized");
    expect_bearer_challenge(&res, "malformed JSON without token");
    tsupport_response_cleanup(&res);

    patch_profile("not.a.token", "application/json", "[1]", &res);
    tsupport_expect_error(&res, 401, "Unauthorized");
    tsupport_response_cleanup(&res);

    tsupport_json(server.port, "POST", "/api/profile/password", NULL, "{\"x\":", &res);
    tsupport_expect_error(&res, 401, "Unauthorized");
    tsupport_response_cleanup(&res);

    /* 404 and 405 come before the token. */
    tsupport_json(server.port, "GET", "/api/profile/nope", NULL, NULL, &res);
    tsupport_expect_error(&res, 404, "NotFound");
    tsupport_response_cleanup(&res);
    tsupport_json(server.port, "PUT", "/api/profile", NULL, "{\"x\":", &res);
    tsupport_expect_error(&res, 405, "MethodNotAllowed");
    tsupport_response_cleanup(&res);

    /* With a good token the body is checked: 415, then InvalidJson, then validation. */
    tsupport_user_new(server.port, "order@example.com", USER_PASSWORD, &user);
    patch_profile(user.access, "text/plain", "{\"firstName\":\"A\"}", &res);
    tsupport_expect_error(&res, 415, "UnsupportedMediaType");
    tsupport_response_cleanup(&res);
    patch_profile(user.access, "application/json", "{\"firstName\":", &res);
    tsupport_expect_error(&res, 400, "InvalidJson");
    tsupport_response_cleanup(&res);
    patch_profile(user.access, "application/json", "{\"email\":\"x@example.com\"}", &res);
    tsupport_expect_error(&res, 400, "ValidationError");
    tsupport_response_cleanup(&res);
    conventions_stop();
}

Test(http_conventions, healthz_and_readyz)
{
    static const char *const pools[] = {"auth", "billing", "audit", "notifier"};
    struct tsupport_response res;

    tsupport_json(server.port, "GET", "/healthz", NULL, NULL, &res);
    cr_expect_eq(res.status, 200);
    cr_expect(json_is_true(tsupport_get(res.json, "success")), "%s", res.body);
    cr_expect_eq(json_object_size(res.json), 1, "%s", res.body);
    tsupport_response_cleanup(&res);

    tsupport_json(server.port, "GET", "/readyz", NULL, NULL, &res);
    cr_expect_eq(res.status, 200, "%s", res.body);
    cr_expect(json_is_true(tsupport_get(res.json, "success")), "%s", res.body);
    expect_json_type(&res, "readyz");
    for (int i = 0; i < 4; i++) {
        char path[64];
        const char *state;

        snprintf(path, sizeof(path), "pools.%s", pools[i]);
        state = tsupport_str(res.json, path);
        cr_expect(state != NULL && strcmp(state, "ok") == 0, "%s is not ok: %s", pools[i],
                  res.body);
    }
    tsupport_response_cleanup(&res);
    conventions_stop();
}

/* The value of the sample line that starts with `series` ("name{labels}"), or -1. */
static double metric_value(const char *text, const char *series)
{
    size_t len = strlen(series);

    for (const char *line = text; line != NULL && *line != '\0'; line = strchr(line, '\n')) {
        if (*line == '\n')
            line++;
        if (strncmp(line, series, len) == 0 && line[len] == ' ')
            return strtod(line + len + 1, NULL);
    }
    return -1;
}

static char *metrics_text(void)
{
    struct tsupport_response res;
    char type[128];
    char *text;

    tsupport_json(server.port, "GET", "/metrics", NULL, NULL, &res);
    cr_assert_eq(res.status, 200, "%s", res.body);
    cr_expect(tsupport_header(&res, "Content-Type", type, sizeof(type)) != NULL &&
                  strncmp(type, "text/plain", 10) == 0,
              "metrics Content-Type:\n%s", res.headers);
    text = strdup(res.body);
    tsupport_response_cleanup(&res);
    return text;
}

Test(http_conventions, metrics_in_prometheus_text_format)
{
    char *before;
    char *after;
    double success;
    double failure;

    cr_assert_eq(tsupport_http(server.port, "GET", "/healthz", NULL, NULL, NULL, NULL), 200);
    tsupport_register(server.port, "metrics@example.com", USER_PASSWORD);
    before = metrics_text();

    cr_expect(strstr(before, "# TYPE manas360_http_requests_total counter\n") != NULL, "%s",
              before);
    cr_expect(strstr(before, "manas360_http_requests_total{") != NULL, "%s", before);
    cr_expect(metric_value(before, "manas360_http_requests_total{method=\"GET\","
                                   "route=\"/healthz\",status=\"200\"}") >= 1,
              "no route-labelled count for /healthz:\n%s", before);
    cr_expect(metric_value(before, "manas360_http_requests_total{method=\"POST\","
                                   "route=\"/api/auth/register\",status=\"201\"}") == 1,
              "%s", before);
    cr_expect(strstr(before, "manas360_http_request_duration_seconds_bucket{le=") != NULL, "%s",
              before);
    cr_expect(metric_value(before, "manas360_http_request_duration_seconds_bucket{le=\"+Inf\"}") >=
                  2,
              "%s", before);
    cr_expect(metric_value(before, "manas360_pool_queue_depth{pool=\"auth\"}") >= 0, "%s", before);
    cr_expect(metric_value(before, "manas360_active_sessions") >= 0, "%s", before);
    success = metric_value(before, "manas360_logins_total{result=\"success\"}");
    failure = metric_value(before, "manas360_logins_total{result=\"failure\"}");
    cr_expect(success >= 0 && failure >= 0, "logins_total missing:\n%s", before);

    /* A login counts as a success and opens a session. */
    cr_assert_eq(tsupport_login(server.port, "metrics@example.com", USER_PASSWORD, NULL, NULL),
                 200);
    after = metrics_text();
    cr_expect_eq(metric_value(after, "manas360_logins_total{result=\"success\"}"), success + 1,
                 "%s", after);
    cr_expect_eq(metric_value(after, "manas360_logins_total{result=\"failure\"}"), failure, "%s",
                 after);
    cr_expect(metric_value(after, "manas360_active_sessions") >= 1, "%s", after);
    free(after);

    /* A refused one counts as a failure. */
    cr_assert_eq(tsupport_login(server.port, "metrics@example.com", "not the password", NULL, NULL),
                 401);
    after = metrics_text();
    cr_expect_eq(metric_value(after, "manas360_logins_total{result=\"success\"}"), success + 1,
                 "%s", after);
    cr_expect_eq(metric_value(after, "manas360_logins_total{result=\"failure\"}"), failure + 1,
                 "%s", after);
    free(after);
    free(before);
    conventions_stop();
}

/* A login sent from another thread, which says when its body has left. */
struct slow_login {
    int port;
    atomic_bool sent;
    long status;
    char *body;
};

static int slow_login_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                               curl_off_t ulnow)
{
    struct slow_login *login = arg;

    (void)dltotal;
    (void)dlnow;
    if (ultotal > 0 && ulnow == ultotal)
        atomic_store(&login->sent, true);
    return 0;
}

static size_t slow_login_write(char *ptr, size_t size, size_t nmemb, void *arg)
{
    struct slow_login *login = arg;
    size_t old = login->body != NULL ? strlen(login->body) : 0;
    char *grown = realloc(login->body, old + size * nmemb + 1);

    if (grown == NULL)
        return 0;
    memcpy(grown + old, ptr, size * nmemb);
    grown[old + size * nmemb] = '\0';
    login->body = grown;
    return size * nmemb;
}

static void *slow_login_main(void *arg)
{
    static const char body[] =
        "{\"email\":\"slow@example.com\",\"password\":\"" USER_PASSWORD "\"}";
    struct slow_login *login = arg;
    struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
    CURL *curl = curl_easy_init();
    char url[128];

    snprintf(url, sizeof(url), "http://127.0.0.1:%d/api/auth/login", login->port);
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, slow_login_progress);
    curl_easy_setopt(curl, CURLOPT_XFERINFODATA, login);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, slow_login_write);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, login);
    if (curl_easy_perform(curl) == CURLE_OK)
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &login->status);
    atomic_store(&login->sent, true);
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
    return NULL;
}

Test(http_conventions, sigterm_lets_an_in_flight_request_finish)
{
    struct slow_login login = {.port = server.port, .status = 0, .body = NULL};
    pthread_t thread;
    json_t *reply;
    int code;

    tsupport_register(server.port, "slow@example.com", USER_PASSWORD);
    atomic_init(&login.sent, false);
    cr_assert_eq(pthread_create(&thread, NULL, slow_login_main, &login), 0);

    /* The body has left and the server is hashing (about 100 ms): stop it now. */
    for (int waited = 0; !atomic_load(&login.sent) && waited < 5000; waited++)
        usleep(1000);
    usleep(30000);
    cr_assert_eq(kill(server.pid, SIGTERM), 0);

    pthread_join(thread, NULL);
    cr_expect_eq(login.status, 200, "the in-flight login got %ld: %s", login.status,
                 login.body != NULL ? login.body : "(no answer)");
    reply = json_loads(login.body != NULL ? login.body : "", 0, NULL);
    cr_expect(tsupport_str(reply, "accessToken") != NULL, "%s", login.body);
    json_decref(reply);
    free(login.body);

    code = tsupport_wait(server.pid, TSUPPORT_STOP_TIMEOUT_MS);
    if (code != 0) {
        char *log = tsupport_file_read(server.log_path);
        size_t len = strlen(log);

        cr_expect_eq(code, 0, "exit %d after SIGTERM:\n%s", code,
                     len > 3000 ? log + len - 3000 : log);
        free(log);
        if (code == -1)
            return; /* still running: the fixture kills it */
    }
    server.pid = -1;
}

Test(http_conventions, keep_alive_reuses_the_connection)
{
    CURL *curl = curl_easy_init();
    struct tsupport_request healthz = {.method = "GET", .path = "/healthz", .curl = curl};
    struct tsupport_request missing = {.method = "GET", .path = "/no/such/route", .curl = curl};
    struct tsupport_request reg = {
        .method = "POST", .path = "/api/auth/register", .body = "{}", .curl = curl};
    struct tsupport_response res;

    cr_assert_not_null(curl);
    tsupport_send(server.port, &healthz, &res);
    cr_expect_eq(res.status, 200);
    cr_expect_eq(res.connects, 1, "the first request opened %ld connections", res.connects);
    tsupport_response_cleanup(&res);

    tsupport_send(server.port, &healthz, &res);
    cr_expect_eq(res.status, 200);
    cr_expect_eq(res.connects, 0, "the second request opened a new connection");
    tsupport_response_cleanup(&res);

    tsupport_send(server.port, &missing, &res);
    cr_expect_eq(res.status, 404);
    cr_expect_eq(res.connects, 0, "a 404 was not answered on the same connection");
    tsupport_response_cleanup(&res);

    tsupport_send(server.port, &reg, &res);
    cr_expect_eq(res.status, 400);
    cr_expect_eq(res.connects, 0, "a POST was not answered on the same connection");
    tsupport_response_cleanup(&res);

    curl_easy_cleanup(curl);
    conventions_stop();
}
