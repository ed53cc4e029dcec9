/* SPDX-License-Identifier: MIT */
/*
 * The email flows over real HTTP and a real SMTP sink: the verification message queued at
 * registration, confirming the address, forgetting and resetting a password, the reset
 * throttle, expired tokens, an SMTP server that is down then up, and MAIL_DIR files.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <dirent.h>
#include <sodium.h>

#include "test_mail.h"
#include "test_support.h"

#define PASSWORD "correct horse battery"
#define NEW_PASSWORD "staple battery horse"
#define APP_URL "http://app.example.test"
#define VERIFY_LINK APP_URL "/verify-email?token="
#define RESET_LINK APP_URL "/reset-password?token="
#define FROM_DOMAIN "mail.example.test"
#define TOKEN_CHARS 43    /* 32 random bytes in base64url, unpadded */
#define DELIVERY_MS 15000 /* a sanitizer build on a busy host */
#define ENDED_WITHIN_MS 1000

static struct tsupport_server server;
static struct tmail_sink sink;
static char smtp_port_env[32];

static void email_setup(void)
{
    tmail_sink_prepare(&sink);
    snprintf(smtp_port_env, sizeof(smtp_port_env), "SMTP_PORT=%d", sink.port);
}

static void email_teardown(void)
{
    tsupport_server_destroy(&server);
    tmail_sink_destroy(&sink);
}

TestSuite(http_email, .init = email_setup, .fini = email_teardown);

/* Starts the server sending to the sink (which may not be listening yet). */
static void start_with_smtp(void)
{
    const char *extra[] = {"SMTP_HOST=127.0.0.1",
                           smtp_port_env,
                           "SMTP_FROM=MANAS360 <no-reply@" FROM_DOMAIN ">",
                           "APP_BASE_URL=" APP_URL,
                           "NOTIFY_RETRY_BASE=1s",
                           NULL};

    tsupport_server_start(&server, extra);
}

static void email_stop(void)
{
    cr_expect_eq(tsupport_server_stop(&server), 0, "the server did not stop cleanly");
}

/* ---- Helpers --------------------------------------------------------------------------- */

static long post(const char *path, const char *token, const char *body,
                 struct tsupport_response *res)
{
    tsupport_json(server.port, "POST", path, token, body, res);
    return res->status;
}

/* POSTs `body` and expects `status`; returns nothing, frees everything. */
static void post_expect(const char *path, const char *body, long status)
{
    struct tsupport_response res;

    cr_expect_eq(post(path, NULL, body, &res), status, "%s %s: %ld %s", path, body, res.status,
                 res.body);
    if (status < 300)
        cr_expect(json_is_true(json_object_get(res.json, "success")), "%s", res.body);
    tsupport_response_cleanup(&res);
}

/* POSTs `body` and expects 400 ValidationError naming `field`. */
static void post_invalid(const char *path, const char *body, const char *field)
{
    struct tsupport_response res;

    post(path, NULL, body, &res);
    tsupport_expect_error(&res, 400, "ValidationError");
    cr_expect_not_null(tsupport_get(res.json, "fields") != NULL
                           ? json_object_get(tsupport_get(res.json, "fields"), field)
                           : NULL,
                       "%s %s: fields.%s missing in %s", path, body, field, res.body);
    tsupport_response_cleanup(&res);
}

static void register_user(const char *email, const char *extra_json)
{
    char body[512];
    struct tsupport_response res;

    snprintf(body, sizeof(body), "{\"email\": \"%s\", \"password\": \"%s\"%s}", email, PASSWORD,
             extra_json);
    cr_assert_eq(post("/api/auth/register", NULL, body, &res), 201, "%s", res.body);
    tsupport_response_cleanup(&res);
}

static char *mail_wait(const char *dir, const char *address, int nth)
{
    char *text = tmail_wait(dir, address, nth, DELIVERY_MS);

    cr_assert_not_null(text, "message %d to %s did not arrive", nth, address);
    return text;
}

static void mail_token(const char *message, const char *link, char token[64])
{
    cr_assert(tmail_token(message, link, token, 64), "no link %s in:\n%s", link, message);
    cr_expect_eq(strlen(token), TOKEN_CHARS, "token %s", token);
}

static long scalar(const char *sql, const char *param)
{
    PGconn *conn = tsupport_connect(server.db.url);
    const char *params[] = {param};
    long value = tsupport_scalar(conn, sql, param != NULL ? 1 : 0, params);

    PQfinish(conn);
    return value;
}

/* Polls `sql` (one parameter) until it answers a non-zero count; false after `timeout_ms`. */
static bool sql_wait(const char *sql, const char *param, int timeout_ms)
{
    long long until = tsupport_now_ms() + timeout_ms;

    while (tsupport_now_ms() < until) {
        if (scalar(sql, param) > 0)
            return true;
        usleep(100000);
    }
    return false;
}

static bool profile_verified(const char *access)
{
    struct tsupport_response res;
    bool verified;

    tsupport_json(server.port, "GET", "/api/profile", access, NULL, &res);
    verified = res.status == 200 && json_is_true(tsupport_get(res.json, "user.isVerified"));
    tsupport_response_cleanup(&res);
    return verified;
}

/* Every line of `text` ends in CRLF. */
static bool crlf_only(const char *text)
{
    for (const char *p = strchr(text, '\n'); p != NULL; p = strchr(p + 1, '\n')) {
        if (p == text || p[-1] != '\r')
            return false;
    }
    return true;
}

/* ---- Verification ---------------------------------------------------------------------- */

Test(http_email, register_verify_single_use)
{
    static const char name[] = "Zo\xc3\xab \xc3\x85ngstr\xc3\xb6m";
    char word[64] = "To: =?UTF-8?B?";
    struct tsupport_user user;
    struct tsupport_response res;
    char token[64];
    char *msg;

    tmail_sink_start(&sink);
    start_with_smtp();
    register_user("zoe@example.com",
                  ", \"firstName\": \"Zo\\u00eb\", \"lastName\": \"\\u00c5ngstr\\u00f6m\"");
    cr_assert_eq(tsupport_login(server.port, "zoe@example.com", PASSWORD, NULL, &user), 200);
    cr_expect(!profile_verified(user.access));

    /* The message: headers, both parts, the name encoded, the link. */
    msg = mail_wait(sink.dir, "zoe@example.com", 1);
    sodium_bin2base64(word + strlen(word), sizeof(word) - strlen(word), (const unsigned char *)name,
                      strlen(name), sodium_base64_VARIANT_ORIGINAL);
    cr_expect_not_null(strstr(msg, word), "no encoded name %s in:\n%s", word, msg);
    cr_expect_not_null(strstr(msg, "?= <zoe@example.com>\r\n"), "%s", msg);
    cr_expect_not_null(strstr(msg, "X-Envelope-From: <no-reply@" FROM_DOMAIN ">"), "%s", msg);
    cr_expect_not_null(strstr(msg, "From: \"MANAS360\" <no-reply@" FROM_DOMAIN ">"), "%s", msg);
    cr_expect_not_null(strstr(msg, "Subject: Confirm your email address\r\n"), "%s", msg);
    cr_expect_not_null(strstr(msg, "@" FROM_DOMAIN ">\r\n"), "no Message-ID: %s", msg);
    cr_expect_not_null(strstr(msg, "Message-ID: <"), "%s", msg);
    cr_expect_not_null(strstr(msg, "Date: "), "%s", msg);
    cr_expect_not_null(strstr(msg, " +0000\r\n"), "%s", msg);
    cr_expect_not_null(strstr(msg, "MIME-Version: 1.0\r\n"), "%s", msg);
    cr_expect_not_null(strstr(msg, "Content-Type: multipart/alternative; boundary="), "%s", msg);
    cr_expect_not_null(strstr(msg, "Content-Type: text/plain; charset=UTF-8"), "%s", msg);
    cr_expect_not_null(strstr(msg, "Content-Type: text/html; charset=UTF-8"), "%s", msg);
    cr_expect_not_null(strstr(msg, "Zo&#235; &#197;ngstr&#246;m"), "%s", msg);
    cr_expect(crlf_only(msg), "a bare LF in:\n%s", msg);
    mail_token(msg, VERIFY_LINK, token);
    free(msg);

    /* Only the hash is kept; the sent message's payload lost its token. */
    cr_expect_eq(scalar("SELECT count(*) FROM one_time_tokens WHERE purpose = 'verify_email'"
                        " AND token_hash = sha256(convert_to($1, 'UTF8'))"
                        " AND expires_at BETWEEN now() + interval '23 hours 59 minutes'"
                        "                    AND now() + interval '24 hours'",
                        token),
                 1);
    cr_expect(sql_wait("SELECT count(*) FROM email_outbox WHERE to_address = $1"
                       " AND status = 'sent' AND sent_at IS NOT NULL AND NOT payload ? 'token'",
                       "zoe@example.com", 5000));

    /* Bad requests and unknown tokens name the token. */
    post_invalid("/api/auth/verify-email", "{}", "token");
    post_invalid("/api/auth/verify-email", "{\"token\": 42}", "token");
    post_invalid("/api/auth/verify-email", "{\"token\": \"\"}", "token");
    post_invalid("/api/auth/verify-email", "{\"token\": \"not-a-token\"}", "token");
    post_invalid("/api/auth/verify-email", "{\"token\": \"a\\u0000b\"}", "token");
    post_expect("/api/auth/verify-email", "{\"token\": \"x\", \"other\": 1}", 400);
    cr_expect(!profile_verified(user.access));

    /* The real token works once. */
    {
        char body[128];

        snprintf(body, sizeof(body), "{\"token\": \"%s\"}", token);
        post_expect("/api/auth/verify-email", body, 200);
        for (long long until = tsupport_now_ms() + 2000;
             !profile_verified(user.access) && tsupport_now_ms() < until;)
            usleep(50000);
        cr_expect(profile_verified(user.access));
        post_invalid("/api/auth/verify-email", body, "token");
    }
    cr_expect_eq(scalar("SELECT count(*) FROM audit_logs WHERE event_type = 'email_verified'"
                        " AND user_id = $1::uuid",
                        user.id),
                 1);
    cr_expect_eq(
        scalar("SELECT count(*) FROM audit_logs WHERE details::text LIKE '%' || $1 || '%'", token),
        0, "an audit row holds the token");

    tsupport_json(server.port, "GET", "/api/auth/verify-email", NULL, NULL, &res);
    tsupport_expect_error(&res, 405, "MethodNotAllowed");
    tsupport_response_cleanup(&res);
    email_stop();
}

/* ---- Reset ----------------------------------------------------------------------------- */

Test(http_email, forgot_and_reset_end_every_session)
{
    struct tsupport_user user;
    struct tsupport_user second;
    struct tsupport_response res;
    char token[64];
    char body[2200];
    char *msg;

    tmail_sink_start(&sink);
    start_with_smtp();
    tsupport_user_new(server.port, "rita@example.com", PASSWORD, &user);
    cr_assert_eq(tsupport_login(server.port, "rita@example.com", PASSWORD, NULL, &second), 200);
    free(mail_wait(sink.dir, "rita@example.com", 1));

    /* The address as typed: blanks and capitals do not matter. */
    post_expect("/api/auth/password/forgot", "{\"email\": \"  Rita@Example.COM \"}", 202);
    msg = mail_wait(sink.dir, "rita@example.com", 2);
    cr_expect_not_null(strstr(msg, "Subject: Reset your MANAS360 password\r\n"), "%s", msg);
    mail_token(msg, RESET_LINK, token);
    free(msg);
    cr_expect_eq(scalar("SELECT count(*) FROM one_time_tokens WHERE purpose = 'password_reset'"
                        " AND token_hash = sha256(convert_to($1, 'UTF8'))"
                        " AND expires_at BETWEEN now() + interval '59 minutes'"
                        "                    AND now() + interval '1 hour'",
                        token),
                 1);

    /* The new password follows the registration rules. */
    snprintf(body, sizeof(body), "{\"token\": \"%s\", \"newPassword\": \"short\"}", token);
    post_invalid("/api/auth/password/reset", body, "newPassword");
    post_invalid("/api/auth/password/reset", "{\"newPassword\": \"" NEW_PASSWORD "\"}", "token");
    post_invalid("/api/auth/password/reset",
                 "{\"token\": \"nope\", \"newPassword\": \"" NEW_PASSWORD "\"}", "token");

    snprintf(body, sizeof(body), "{\"token\": \"%s\", \"newPassword\": \"%s\"}", token,
             NEW_PASSWORD);
    post_expect("/api/auth/password/reset", body, 200);

    /* Every session ended: both logins' tokens are refused. */
    usleep(ENDED_WITHIN_MS * 1000);
    tsupport_json(server.port, "GET", "/api/profile", user.access, NULL, &res);
    tsupport_expect_error(&res, 401, "Unauthorized");
    tsupport_response_cleanup(&res);
    tsupport_json(server.port, "GET", "/api/profile", second.access, NULL, &res);
    tsupport_expect_error(&res, 401, "Unauthorized");
    tsupport_response_cleanup(&res);
    snprintf(body, sizeof(body), "{\"refreshToken\": \"%s\"}", user.refresh);
    post("/api/auth/refresh", NULL, body, &res);
    tsupport_expect_error(&res, 401, "InvalidRefreshToken");
    tsupport_response_cleanup(&res);
    cr_expect_eq(scalar("SELECT count(*) FROM sessions WHERE user_id = $1::uuid"
                        " AND end_reason = 'password_reset'",
                        user.id),
                 2);

    /* The new password works, the old one does not, and the token is spent. */
    cr_expect_eq(tsupport_login(server.port, "rita@example.com", PASSWORD, NULL, &second), 401);
    cr_expect_eq(tsupport_login(server.port, "rita@example.com", NEW_PASSWORD, NULL, &second), 200);
    snprintf(body, sizeof(body), "{\"token\": \"%s\", \"newPassword\": \"another password\"}",
             token);
    post_invalid("/api/auth/password/reset", body, "token");

    cr_expect_eq(scalar("SELECT count(*) FROM audit_logs WHERE event_type ="
                        " 'password_reset_requested' AND user_id = $1::uuid",
                        user.id),
                 1);
    cr_expect_eq(scalar("SELECT count(*) FROM audit_logs WHERE event_type = 'password_reset'"
                        " AND user_id = $1::uuid",
                        user.id),
                 1);
    email_stop();
}

Test(http_email, forgot_unknown_malformed_and_throttled)
{
    long long settle;

    tmail_sink_start(&sink);
    start_with_smtp();

    post_expect("/api/auth/password/forgot", "{\"email\": \"nobody@example.com\"}", 202);
    post_invalid("/api/auth/password/forgot", "{\"email\": \"not-an-email\"}", "email");
    post_invalid("/api/auth/password/forgot", "{\"email\": \"a..b@example.com\"}", "email");
    post_invalid("/api/auth/password/forgot", "{}", "email");
    post_invalid("/api/auth/password/forgot", "{\"email\": 7}", "email");
    post_expect("/api/auth/password/forgot", "{\"email\": \"a@example.com\", \"x\": 1}", 400);

    register_user("tess@example.com", "");
    for (int i = 0; i < 6; i++)
        post_expect("/api/auth/password/forgot", "{\"email\": \"tess@example.com\"}", 202);

    /* One verification and five reset messages, and never a sixth. */
    free(mail_wait(sink.dir, "tess@example.com", 6));
    settle = tsupport_now_ms() + 2000;
    while (tsupport_now_ms() < settle)
        usleep(100000);
    cr_expect_eq(tmail_count(sink.dir, "tess@example.com"), 6);
    cr_expect_eq(scalar("SELECT count(*) FROM email_outbox WHERE template = 'password_reset'"
                        " AND to_address = $1",
                        "tess@example.com"),
                 5);
    cr_expect_eq(scalar("SELECT count(*) FROM audit_logs WHERE event_type ="
                        " 'password_reset_requested' AND details->>'queued' = 'false'"
                        " AND resource_id = (SELECT id::text FROM user_accounts WHERE email = $1)",
                        "tess@example.com"),
                 1);

    /* Nothing at all for an address without an account. */
    cr_expect_eq(tmail_count(sink.dir, "nobody@example.com"), 0);
    cr_expect_eq(
        scalar("SELECT count(*) FROM email_outbox WHERE to_address = $1", "nobody@example.com"), 0);
    cr_expect_eq(scalar("SELECT count(*) FROM audit_logs WHERE event_type ="
                        " 'password_reset_requested' AND details::text LIKE '%' || $1 || '%'",
                        "nobody"),
                 0);
    email_stop();
}

Test(http_email, expired_tokens_are_refused)
{
    char token[64];
    char body[256];
    char *msg;

    tmail_sink_start(&sink);
    start_with_smtp();
    register_user("eve@example.com", "");
    msg = mail_wait(sink.dir, "eve@example.com", 1);
    mail_token(msg, VERIFY_LINK, token);
    free(msg);

    tsupport_db_run(server.db.url,
                    "UPDATE one_time_tokens SET created_at = now() - interval '25 hours',"
                    " expires_at = now() - interval '1 hour' WHERE purpose = 'verify_email'",
                    0, NULL);
    snprintf(body, sizeof(body), "{\"token\": \"%s\"}", token);
    post_invalid("/api/auth/verify-email", body, "token");

    post_expect("/api/auth/password/forgot", "{\"email\": \"eve@example.com\"}", 202);
    msg = mail_wait(sink.dir, "eve@example.com", 2);
    mail_token(msg, RESET_LINK, token);
    free(msg);
    tsupport_db_run(server.db.url,
                    "UPDATE one_time_tokens SET created_at = now() - interval '2 hours',"
                    " expires_at = now() - interval '1 second' WHERE purpose = 'password_reset'",
                    0, NULL);
    snprintf(body, sizeof(body), "{\"token\": \"%s\", \"newPassword\": \"%s\"}", token,
             NEW_PASSWORD);
    post_invalid("/api/auth/password/reset", body, "token");
    cr_expect_eq(
        tsupport_login(server.port, "eve@example.com", PASSWORD, NULL, &(struct tsupport_user){0}),
        200);
    email_stop();
}

/* ---- Delivery -------------------------------------------------------------------------- */

Test(http_email, smtp_down_then_up_delivers_once)
{
    long long settle;

    start_with_smtp(); /* the sink is not listening yet */
    register_user("dora@example.com", "");
    cr_assert(sql_wait("SELECT count(*) FROM email_outbox WHERE to_address = $1"
                       " AND status = 'pending' AND attempts >= 1 AND last_error LIKE 'smtp:%'",
                       "dora@example.com", DELIVERY_MS),
              "the first attempt did not fail and get rescheduled");

    /* A message out of attempts is dead, keeps its error and loses its token. */
    tsupport_db_run(server.db.url,
                    "INSERT INTO email_outbox (to_address, template, payload, attempts)"
                    " VALUES ('last@example.com', 'verify_email', '{\"token\": \"abc\"}', 35)",
                    0, NULL);
    cr_expect(sql_wait("SELECT count(*) FROM email_outbox WHERE to_address = $1"
                       " AND status = 'dead' AND attempts = 36 AND last_error IS NOT NULL"
                       " AND NOT payload ? 'token'",
                       "last@example.com", DELIVERY_MS));

    tmail_sink_start(&sink);
    free(mail_wait(sink.dir, "dora@example.com", 1));
    settle = tsupport_now_ms() + 3000;
    while (tsupport_now_ms() < settle)
        usleep(100000);
    cr_expect_eq(tmail_count(sink.dir, "dora@example.com"), 1);
    cr_expect_eq(tmail_count(sink.dir, "last@example.com"), 0);
    cr_expect_eq(scalar("SELECT count(*) FROM email_outbox WHERE to_address = $1"
                        " AND status = 'sent' AND attempts >= 2 AND last_error IS NULL",
                        "dora@example.com"),
                 1);
    email_stop();
}

Test(http_email, mail_dir_without_smtp_host)
{
    char mail_dir[600];
    char mail_env[640];
    const char *extra[] = {mail_env, "APP_BASE_URL=" APP_URL, NULL};
    struct stat st;
    struct dirent *e;
    DIR *d;
    char token[64];
    char *msg;

    tsupport_server_prepare(&server);
    snprintf(mail_dir, sizeof(mail_dir), "%s/spool/mail", server.var_dir);
    snprintf(mail_env, sizeof(mail_env), "MAIL_DIR=%s", mail_dir);
    tsupport_server_start(&server, extra);

    register_user("fay@example.com", ", \"firstName\": \"Fay\", \"lastName\": \"O'Brien\"");
    msg = mail_wait(mail_dir, "fay@example.com", 1);
    cr_expect_not_null(strstr(msg, "To: \"Fay O'Brien\" <fay@example.com>\r\n"), "%s", msg);
    cr_expect_not_null(strstr(msg, "Fay O&#39;Brien"), "%s", msg);
    mail_token(msg, VERIFY_LINK, token);
    cr_expect(crlf_only(msg));
    free(msg);

    cr_assert_eq(stat(mail_dir, &st), 0);
    cr_expect_eq(st.st_mode & 0777, 0700, "mode %o", st.st_mode & 0777);
    d = opendir(mail_dir);
    cr_assert_not_null(d);
    while ((e = readdir(d)) != NULL)
        cr_expect(strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 ||
                      strstr(e->d_name, ".eml") != NULL,
                  "left behind: %s", e->d_name);
    closedir(d);
    email_stop();
}

Test(http_email, a_login_never_crosses_in_clear)
{
    const char *extra[] = {
        "SMTP_HOST=127.0.0.1",  smtp_port_env,
        "SMTP_USER=mailer",     "SMTP_PASSWORD=relay password kept from the wire",
        "NOTIFY_RETRY_BASE=1s", NULL};

    tmail_sink_start(&sink); /* it offers no STARTTLS */
    tsupport_server_start(&server, extra);
    register_user("tls@example.com", "");
    cr_expect(sql_wait("SELECT count(*) FROM email_outbox WHERE to_address = $1"
                       " AND status = 'pending' AND attempts >= 1 AND last_error IS NOT NULL",
                       "tls@example.com", DELIVERY_MS),
              "a relay without STARTTLS was given the login");
    cr_expect_eq(tmail_count(sink.dir, "tls@example.com"), 0);
    email_stop();
}
