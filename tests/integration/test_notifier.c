/* SPDX-License-Identifier: MIT */
/*
 * The notifier on its own (`manas360d serve --pools=notifier`), fed by rows written straight
 * into the outbox: two processes share one outbox and send each row exactly once, a claim
 * left by a dead sender is taken over, a row that can never be sent goes dead at once, and
 * what a message looks like (encoded names, escaped HTML, quoted-printable).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <sodium.h>

#include "test_mail.h"
#include "test_support.h"

#define DELIVERY_MS 15000
#define BULK_ROWS 150
#define BULK_TIMEOUT_MS 60000
#define APP_URL "http://app.example.test"

static struct tsupport_server server;
static struct tmail_sink sink;
static pid_t senders[2] = {-1, -1};
static char sender_logs[2][600];
static char smtp_port_env[32];
static char endpoint_env[2][96];

static void notifier_setup(void)
{
    tsupport_server_prepare(&server);
    tmail_sink_prepare(&sink);
    snprintf(smtp_port_env, sizeof(smtp_port_env), "SMTP_PORT=%d", sink.port);
    for (int i = 0; i < 2; i++)
        snprintf(endpoint_env[i], sizeof(endpoint_env[i]),
                 "NOTIFIER_POOL_ENDPOINT=tcp://127.0.0.1:%d", tsupport_free_port());
}

static void notifier_teardown(void)
{
    for (int i = 0; i < 2; i++) {
        if (senders[i] > 0) {
            kill(senders[i], SIGKILL);
            waitpid(senders[i], NULL, 0);
            senders[i] = -1;
        }
    }
    tsupport_server_destroy(&server);
    tmail_sink_destroy(&sink);
}

TestSuite(notifier, .init = notifier_setup, .fini = notifier_teardown);

/* ---- Helpers --------------------------------------------------------------------------- */

/* Starts notifier process `i`, sending to the sink. */
static void sender_start(int i)
{
    static const char *const args[] = {"serve", "--pools=notifier", NULL};
    const char *extra[] = {
        "SMTP_HOST=127.0.0.1",  smtp_port_env,    endpoint_env[i],  "APP_BASE_URL=" APP_URL,
        "NOTIFY_RETRY_BASE=1s", "LOG_LEVEL=info", "POOL_THREADS=1", NULL};
    char name[16];

    snprintf(name, sizeof(name), "notifier%d", i);
    senders[i] =
        tsupport_server_launch(&server, args, extra, name, sender_logs[i], sizeof(sender_logs[i]));
    cr_assert_gt(senders[i], 0);
}

static void sender_stop(int i)
{
    cr_expect_eq(tsupport_process_stop(senders[i], sender_logs[i]), 0,
                 "notifier %d did not stop cleanly", i);
    senders[i] = -1;
}

/* Occurrences of `needle` in notifier `i`'s log. */
static int log_count(int i, const char *needle)
{
    char *log = tsupport_file_read(sender_logs[i]);
    int n = 0;

    for (const char *p = strstr(log, needle); p != NULL; p = strstr(p + 1, needle))
        n++;
    free(log);
    return n;
}

static bool log_wait(int i, const char *needle, int timeout_ms)
{
    long long until = tsupport_now_ms() + timeout_ms;

    while (log_count(i, needle) == 0) {
        if (tsupport_now_ms() >= until)
            return false;
        usleep(50000);
    }
    return true;
}

static long scalar(const char *sql)
{
    PGconn *conn = tsupport_connect(server.db.url);
    long value = tsupport_scalar(conn, sql, 0, NULL);

    PQfinish(conn);
    return value;
}

static bool scalar_wait(const char *sql, long want, int timeout_ms)
{
    long long until = tsupport_now_ms() + timeout_ms;

    while (scalar(sql) != want) {
        if (tsupport_now_ms() >= until)
            return false;
        usleep(100000);
    }
    return true;
}

static void settle(int ms)
{
    long long until = tsupport_now_ms() + ms;

    while (tsupport_now_ms() < until)
        usleep(50000);
}

/* ---- Tests ----------------------------------------------------------------------------- */

Test(notifier, two_processes_send_each_row_once)
{
    char address[64];
    int per_sender[2];
    int wrong = 0;

    tmail_sink_start(&sink);
    sender_start(0);
    sender_start(1);
    cr_assert(log_wait(0, "event=listening", DELIVERY_MS), "notifier 0 never listened");
    cr_assert(log_wait(1, "event=listening", DELIVERY_MS), "notifier 1 never listened");

    /* A claim whose sender died a minute ago, and a batch both processes hear about. */
    tsupport_db_run(server.db.url,
                    "INSERT INTO email_outbox (to_address, template, payload, status, attempts,"
                    " next_attempt_at)"
                    " VALUES ('stale@example.com', 'verify_email', '{\"token\": \"stale\"}',"
                    " 'sending', 1, now() - interval '1 minute')",
                    0, NULL);
    tsupport_db_run(server.db.url,
                    "INSERT INTO email_outbox (to_address, template, payload)"
                    " SELECT 'bulk' || g || '@example.com', 'password_reset',"
                    "        jsonb_build_object('token', 'tok' || g)"
                    "   FROM generate_series(1, 150) g",
                    0, NULL);

    cr_assert(scalar_wait("SELECT count(*) FROM email_outbox WHERE status = 'sent'", BULK_ROWS + 1,
                          BULK_TIMEOUT_MS),
              "only %ld of %d rows were sent",
              scalar("SELECT count(*) FROM email_outbox WHERE status = 'sent'"), BULK_ROWS + 1);
    settle(1500);

    /* Exactly one message per row, whoever sent it. */
    cr_expect_eq(tmail_count(sink.dir, NULL), BULK_ROWS + 1);
    cr_expect_eq(tmail_count(sink.dir, "stale@example.com"), 1);
    for (int g = 1; g <= BULK_ROWS; g++) {
        snprintf(address, sizeof(address), "bulk%d@example.com", g);
        if (tmail_count(sink.dir, address) != 1)
            wrong++;
    }
    cr_expect_eq(wrong, 0, "%d addresses did not get exactly one message", wrong);
    cr_expect_eq(scalar("SELECT count(*) FROM email_outbox WHERE payload ? 'token'"), 0);
    cr_expect_eq(scalar("SELECT count(*) FROM email_outbox WHERE to_address = 'stale@example.com'"
                        " AND attempts = 2"),
                 1);

    per_sender[0] = log_count(0, "event=mail_sent");
    per_sender[1] = log_count(1, "event=mail_sent");
    cr_expect_eq(per_sender[0] + per_sender[1], BULK_ROWS + 1);
    cr_log_info("sent by notifier 0: %d, by notifier 1: %d", per_sender[0], per_sender[1]);
    cr_expect_eq(log_count(0, "tok1") + log_count(1, "tok1"), 0, "a token reached a log");

    sender_stop(0);
    sender_stop(1);
}

Test(notifier, rendering_and_hopeless_rows)
{
    static const char name[] = "<b>Zo\xc3\xab & \"co\"</b>";
    char word[96] = "To: =?UTF-8?B?";
    char *msg;

    tmail_sink_start(&sink);
    tsupport_db_run(
        server.db.url,
        "INSERT INTO email_outbox (to_address, to_name, template, payload) VALUES"
        " ('html@example.com', '<b>Zo\xc3\xab & \"co\"</b>', 'verify_email',"
        "  '{\"token\": \"abcDEF_-123\"}'),"
        " ('plan@example.com', 'Plain Name', 'subscription_expiring',"
        "  '{\"planName\": \"Pr\xc3\xa9mium\", \"endsAt\": \"2026-12-03T15:56:38Z\"}'),"
        " ('gone@example.com', NULL, 'subscription_expired', '{}'),"
        " ('notoken@example.com', NULL, 'password_reset', '{}'),"
        " ('badtoken@example.com', NULL, 'password_reset', '{\"token\": \"a b\\r\\nBcc: x\"}')",
        0, NULL);
    sender_start(0);

    /* The name as an encoded word, and escaped in the HTML; the link as it is. */
    msg = tmail_wait(sink.dir, "html@example.com", 1, DELIVERY_MS);
    cr_assert_not_null(msg);
    sodium_bin2base64(word + strlen(word), sizeof(word) - strlen(word), (const unsigned char *)name,
                      strlen(name), sodium_base64_VARIANT_ORIGINAL);
    cr_expect_not_null(strstr(msg, word), "no %s in:\n%s", word, msg);
    cr_expect_not_null(strstr(msg, "<p>Hello &lt;b&gt;Zo&#235; &amp; &quot;co&quot;&lt;/b&gt;,"),
                       "%s", msg);
    cr_expect_null(strstr(msg, "<b>Zo"), "%s", msg);
    cr_expect_not_null(strstr(msg, "\r\n" APP_URL "/verify-email?token=abcDEF_-123\r\n"), "%s",
                       msg);
    cr_expect_not_null(strstr(msg, "href=\"" APP_URL "/verify-email?token=abcDEF_-123\""), "%s",
                       msg);
    free(msg);

    /* Non-ASCII text in the text part goes quoted-printable; the HTML stays ASCII. */
    msg = tmail_wait(sink.dir, "plan@example.com", 1, DELIVERY_MS);
    cr_assert_not_null(msg);
    cr_expect_not_null(strstr(msg, "To: \"Plain Name\" <plan@example.com>\r\n"), "%s", msg);
    cr_expect_not_null(strstr(msg, "Subject: Your MANAS360 subscription ends soon\r\n"), "%s", msg);
    cr_expect_not_null(strstr(msg, "Content-Transfer-Encoding: quoted-printable"), "%s", msg);
    cr_expect_not_null(strstr(msg, "Pr=C3=A9mium"), "%s", msg);
    cr_expect_not_null(strstr(msg, "Pr&#233;mium plan ends soon, on 2026-12-03 UTC."), "%s", msg);
    free(msg);

    msg = tmail_wait(sink.dir, "gone@example.com", 1, DELIVERY_MS);
    cr_assert_not_null(msg);
    cr_expect_not_null(strstr(msg, "Subject: Your MANAS360 subscription has ended\r\n"), "%s", msg);
    cr_expect_not_null(strstr(msg, "To: <gone@example.com>\r\n"), "%s", msg);
    free(msg);

    /* A reset message without a usable token can never be sent: dead after one try. */
    cr_expect(scalar_wait("SELECT count(*) FROM email_outbox WHERE status = 'dead'"
                          " AND attempts = 1 AND last_error = 'payload has no usable token'",
                          2, DELIVERY_MS));
    settle(500);
    cr_expect_eq(tmail_count(sink.dir, "notoken@example.com"), 0);
    cr_expect_eq(tmail_count(sink.dir, "badtoken@example.com"), 0);
    cr_expect_eq(tmail_count(sink.dir, NULL), 3);
    sender_stop(0);
}
