/* SPDX-License-Identifier: MIT */
/*
 * The audit writer over real ZeroMQ and a real PostgreSQL: events pushed to the server are
 * written in batches, drained on SIGTERM, kept through a database restart and through a
 * stop while the database is down (the spool), and old partitions are dropped. Also: after
 * a run of every account flow, email flows included, no audit row holds a password, token,
 * one-time token or secret.
 */
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <zmq.h>

#include "manas360/audit_row.h"
#include "test_mail.h"
#include "test_support.h"

#define PASSWORD "correct horse battery"
#define NEW_PASSWORD "battery staple horse"
#define RESET_PASSWORD "horse staple battery reset"
#define USER_EMAIL "secrets@example.com"
#define ADMIN_EMAIL "admin-secrets@example.com"
#define BOOT_EMAIL "first-admin@example.com"
#define BOOT_PASSWORD "the very first administrator"
#define SMTP_PASSWORD "relay password never in the trail"
#define EVENTS_PER_MESSAGE 100
#define WRITE_WAIT_MS 10000

static struct tsupport_server server;
static char ingest_env[96];
static char ingest_endpoint[48];

static void writer_setup(void)
{
    snprintf(ingest_endpoint, sizeof(ingest_endpoint), "tcp://127.0.0.1:%d", tsupport_free_port());
    snprintf(ingest_env, sizeof(ingest_env), "AUDIT_INGEST_ENDPOINT=%s", ingest_endpoint);
}

static void writer_teardown(void)
{
    tsupport_server_destroy(&server);
}

TestSuite(audit_writer, .init = writer_setup, .fini = writer_teardown, .timeout = 180);

/* ---- Helpers --------------------------------------------------------------------------- */

/* Pushes each of `messages` (whole rows) as one message, the way a front end does, and waits
 * until they have left this process. */
static void messages_push(const struct audit_rows *messages, int count)
{
    void *ctx = zmq_ctx_new();
    void *push = zmq_socket(ctx, ZMQ_PUSH);
    int linger = 5000;

    zmq_setsockopt(push, ZMQ_LINGER, &linger, sizeof(linger));
    cr_assert_eq(zmq_connect(push, ingest_endpoint), 0);
    for (int m = 0; m < count; m++)
        cr_assert_eq(zmq_send(push, messages[m].data, messages[m].len, 0), (int)messages[m].len);
    zmq_close(push);
    zmq_ctx_term(ctx); /* returns once everything was sent, or the linger passed */
}

/* Adds event `n` of `batch` to `rows`, from the address `ip`. */
static void event_add(struct audit_rows *rows, const char *batch, int n, const char *ip)
{
    json_t *event = json_pack("{s:s, s:s, s:s, s:{s:s, s:i}, s:s, s:s}", "event_type",
                              "permission_denied", "status", "failure", "resource_type", "route",
                              "details", "batch", batch, "n", n, "ip_address", ip, "action", "GET");

    cr_assert(audit_rows_add(rows, event));
    json_decref(event);
}

/* Pushes `count` messages of EVENTS_PER_MESSAGE events tagged with `batch`. */
static void events_push(const char *batch, int count)
{
    struct audit_rows *messages = calloc((size_t)count, sizeof(*messages));

    cr_assert_not_null(messages);
    for (int m = 0; m < count; m++) {
        for (int i = 0; i < EVENTS_PER_MESSAGE; i++)
            event_add(&messages[m], batch, m * EVENTS_PER_MESSAGE + i, "127.0.0.1");
    }
    messages_push(messages, count);
    for (int m = 0; m < count; m++)
        audit_rows_release(&messages[m]);
    free(messages);
}

static long rows_of(const char *url, const char *batch)
{
    PGconn *conn = tsupport_connect(url);
    const char *params[] = {batch};
    /* One statement, so that rows landing meanwhile cannot look like duplicates. */
    PGresult *res = tsupport_query(conn,
                                   "SELECT count(*), count(DISTINCT details->>'n') FROM audit_logs"
                                   " WHERE details->>'batch' = $1",
                                   1, params);
    long all = strtol(PQgetvalue(res, 0, 0), NULL, 10);
    long n = strtol(PQgetvalue(res, 0, 1), NULL, 10);

    PQclear(res);
    PQfinish(conn);
    cr_expect_eq(n, all, "batch %s: %ld rows for %ld events: some were written twice", batch, all,
                 n);
    return all;
}

/* Waits until `batch` has `want` rows; returns how many it has then. */
static long rows_wait(const char *url, const char *batch, long want)
{
    long long until = tsupport_now_ms() + WRITE_WAIT_MS;
    long rows;

    while ((rows = rows_of(url, batch)) < want && tsupport_now_ms() < until)
        usleep(100 * 1000);
    return rows;
}

/* The files of the spool whose names end with `suffix`. */
static int spool_files_named(const char *suffix)
{
    char path[600];
    DIR *dir;
    struct dirent *entry;
    int count = 0;

    snprintf(path, sizeof(path), "%s/audit-spool", server.var_dir);
    dir = opendir(path);
    while (dir != NULL && (entry = readdir(dir)) != NULL)
        count += strlen(entry->d_name) > strlen(suffix) &&
                 strcmp(entry->d_name + strlen(entry->d_name) - strlen(suffix), suffix) == 0;
    if (dir != NULL)
        closedir(dir);
    return count;
}

static int spool_files(void)
{
    return spool_files_named(".rows");
}

/* ---- Batches and the drain -------------------------------------------------------------- */

Test(audit_writer, events_are_written_in_batches_and_drained_on_sigterm)
{
    const char *extra[] = {ingest_env, NULL};
    char *log;
    const char *line;
    long largest = 0;

    long long pushed;

    tsupport_server_start(&server, extra);
    events_push("first", 30);
    pushed = tsupport_now_ms();
    cr_expect_eq(rows_wait(server.db.url, "first", 3000), 3000);
    cr_expect_leq(tsupport_now_ms() - pushed, 2000, "rows took %lld ms to appear",
                  tsupport_now_ms() - pushed);

    /* Pushed and at once stopped, more than a few batches' worth: what was received is
     * written before the exit. */
    events_push("second", 500);
    cr_expect_eq(tsupport_server_stop(&server), 0);
    cr_expect_eq(rows_of(server.db.url, "second"), 50000);

    log = tsupport_file_read(server.log_path);
    for (line = strstr(log, "event=batch_written events="); line != NULL;
         line = strstr(line + 1, "event=batch_written events=")) {
        long n = strtol(line + strlen("event=batch_written events="), NULL, 10);

        largest = n > largest ? n : largest;
    }
    cr_expect_gt(largest, EVENTS_PER_MESSAGE, "no batch held more than one message");
    free(log);
}

Test(audit_writer, a_row_the_database_refuses_costs_only_itself)
{
    const char *extra[] = {ingest_env, NULL};
    struct audit_rows rows = {0};
    char *log;

    tsupport_server_start(&server, extra);
    event_add(&rows, "sifted", 0, "127.0.0.1");
    event_add(&rows, "sifted", 1, "not an address");
    event_add(&rows, "sifted", 2, "127.0.0.1");
    messages_push(&rows, 1);
    audit_rows_release(&rows);
    events_push("behind", 5);

    cr_expect_eq(rows_wait(server.db.url, "behind", 500), 500, "a refused row held up the rest");
    cr_expect_eq(rows_wait(server.db.url, "sifted", 2), 2, "the good rows of its batch are lost");
    /* The refused rows are set aside once their whole batch has been gone through. */
    for (long long until = tsupport_now_ms() + WRITE_WAIT_MS;
         spool_files_named(".refused") == 0 && tsupport_now_ms() < until;)
        usleep(50 * 1000);
    cr_expect_eq(spool_files_named(".refused"), 1, "the refused row was not set aside");
    cr_expect_eq(spool_files(), 0, "the refused row waits to be written again");
    log = tsupport_file_read(server.log_path);
    cr_expect_not_null(strstr(log, "event=rows_refused events=1 kept=yes"), "%s", log);
    free(log);
}

/* ---- The database going away ------------------------------------------------------------ */

/* Runs tools/pg.sh with `action` on the private cluster folder. */
static void cluster(const char *action, const char *dir)
{
    char script[600];
    char *out = NULL;
    char *err = NULL;
    char *argv[] = {script, (char *)action, (char *)dir, "--fast", NULL};
    int rc;

    snprintf(script, sizeof(script), "%s/../tools/pg.sh", tsupport_migrations_dir());
    if (strcmp(action, "start") != 0)
        argv[3] = NULL;
    rc = tsupport_run(argv, NULL, &out, &err);
    cr_assert_eq(rc, 0, "pg.sh %s: %s%s", action, out, err);
    free(out);
    free(err);
}

/* A private cluster, so stopping it disturbs no other test; returns its database URL. */
static void cluster_new(char *dir, size_t dir_size, char *url, size_t url_size)
{
    char script[600];
    char *out = NULL;
    char *err = NULL;
    char *created = tsupport_tempdir();
    char *argv_db[] = {script, "createdb", dir, "manas360", NULL};
    char *argv_url[] = {script, "url", dir, "manas360", NULL};
    char migrate_env[3][700];
    char *migrate_envp[] = {migrate_env[0], migrate_env[1], migrate_env[2], NULL};
    char *migrate_argv[] = {(char *)tsupport_server_bin(), "migrate", NULL};

    snprintf(dir, dir_size, "%s", created);
    free(created);
    snprintf(script, sizeof(script), "%s/../tools/pg.sh", tsupport_migrations_dir());
    cluster("start", dir);
    cr_assert_eq(tsupport_run(argv_db, NULL, &out, &err), 0, "%s%s", out, err);
    free(out);
    free(err);
    cr_assert_eq(tsupport_run(argv_url, NULL, &out, &err), 0, "%s%s", out, err);
    out[strcspn(out, "\n")] = '\0';
    snprintf(url, url_size, "%s", out);
    free(out);
    free(err);

    snprintf(migrate_env[0], sizeof(migrate_env[0]), "DATABASE_URL=%s", url);
    snprintf(migrate_env[1], sizeof(migrate_env[1]), "MIGRATIONS_DIR=%s",
             tsupport_migrations_dir());
    snprintf(migrate_env[2], sizeof(migrate_env[2]), "MANAS360_ENV=development");
    cr_assert_eq(tsupport_run(migrate_argv, migrate_envp, &out, &err), 0, "%s%s", out, err);
    free(out);
    free(err);
}

Test(audit_writer, nothing_is_lost_when_the_database_goes_away)
{
    char dir[512];
    char url[700];
    char url_env[720];
    const char *extra[] = {ingest_env, url_env, NULL};

    cluster_new(dir, sizeof(dir), url, sizeof(url));
    snprintf(url_env, sizeof(url_env), "DATABASE_URL=%s", url);
    tsupport_server_start(&server, extra);

    /* A restart in the middle of a burst: held in memory, written when it is back. */
    events_push("before", 10);
    cr_expect_eq(rows_wait(url, "before", 1000), 1000);
    cluster("stop", dir);
    events_push("during", 20);
    usleep(500 * 1000);
    cluster("start", dir);
    events_push("after", 10);
    cr_expect_eq(rows_wait(url, "during", 2000), 2000);
    cr_expect_eq(rows_wait(url, "after", 1000), 1000);

    /* A stop while the database is down: the events go to the spool and in at the next start. */
    cluster("stop", dir);
    events_push("spooled", 20);
    usleep(500 * 1000);
    cr_expect_eq(tsupport_server_stop(&server), 0);
    cr_expect_gt(spool_files(), 0, "nothing was spooled");
    {
        char *log = tsupport_file_read(server.log_path);

        cr_expect_not_null(strstr(log, "event=write_failed"), "no write ever failed");
        cr_expect_not_null(strstr(log, "event=spooled"));
        free(log);
    }
    cluster("start", dir);
    tsupport_server_start(&server, extra);
    cr_expect_eq(rows_wait(url, "spooled", 2000), 2000);
    cr_expect_eq(spool_files(), 0, "the spool was not emptied");

    /* A kill -9 while the database is down: what waited a second was already on disk. */
    cluster("stop", dir);
    events_push("killed", 20);
    usleep(1000 * 1000);
    kill(server.pid, SIGKILL);
    waitpid(server.pid, NULL, 0);
    server.pid = -1;
    cluster("start", dir);
    tsupport_server_start(&server, extra);
    cr_expect_eq(rows_wait(url, "killed", 2000), 2000, "a kill -9 lost events held a second");
    cr_expect_eq(tsupport_server_stop(&server), 0);
    cluster("stop", dir);
}

/* ---- Retention --------------------------------------------------------------------------- */

Test(audit_writer, partitions_past_the_retention_are_dropped)
{
    const char *extra[] = {ingest_env, "AUDIT_RETENTION_DAYS=90", NULL};
    PGconn *conn;

    tsupport_server_prepare(&server);
    conn = tsupport_connect(server.db.url);
    PQclear(tsupport_query(conn, "SELECT audit_logs_ensure_partition('2024-01-01')", 0, NULL));
    PQclear(tsupport_query(conn,
                           "INSERT INTO audit_logs (event_type, created_at)"
                           " VALUES ('login', '2024-01-15T10:00:00Z'),"
                           "        ('login', now() - interval '91 days' - interval '40 days')",
                           0, NULL));
    cr_assert_eq(tsupport_scalar(conn,
                                 "SELECT count(*) FROM audit_logs WHERE created_at < '2024-02-01'",
                                 0, NULL),
                 1);
    PQfinish(conn);

    tsupport_server_start(&server, extra);
    conn = tsupport_connect(server.db.url);
    cr_expect_eq(tsupport_scalar(conn,
                                 "SELECT count(*) FROM pg_class"
                                 " WHERE relname = 'audit_logs_y2024m01'",
                                 0, NULL),
                 0, "the old month's partition is still there");
    cr_expect_eq(tsupport_scalar(conn,
                                 "SELECT count(*) FROM pg_class WHERE relname = 'audit_logs_y'"
                                 " || to_char(now() AT TIME ZONE 'UTC' + interval '2 months',"
                                 "            'YYYY\"m\"MM')",
                                 0, NULL),
                 1, "the partition two months ahead was not created");
    cr_expect_eq(tsupport_scalar(conn,
                                 "SELECT count(*) FROM audit_logs"
                                 " WHERE created_at < now() - interval '90 days'",
                                 0, NULL),
                 0, "rows past the retention remain");
    PQfinish(conn);
    cr_expect_eq(tsupport_server_stop(&server), 0);
}

/* ---- No secrets ------------------------------------------------------------------------- */

Test(audit_writer, no_row_holds_a_password_token_or_secret)
{
    const char *extra[] = {ingest_env,
                           "MANAS360_BOOTSTRAP_EMAIL=" BOOT_EMAIL,
                           "MANAS360_BOOTSTRAP_PASSWORD=" BOOT_PASSWORD,
                           "SMTP_USER=relay-user",
                           "SMTP_PASSWORD=" SMTP_PASSWORD,
                           NULL};
    struct tsupport_user boot;
    struct tsupport_user user;
    struct tsupport_user admin;
    struct tsupport_response res;
    char body[4200];
    char path[128];
    const char *secrets[24];
    int nsecrets = 0;
    char *refreshed = NULL;
    char mail_dir[600];
    char verify_token[128];
    char reset_token[128];
    char *mail;
    PGconn *conn;

    tsupport_server_start(&server, extra);
    tsupport_user_new(server.port, USER_EMAIL, PASSWORD, &user);
    tsupport_user_new(server.port, ADMIN_EMAIL, PASSWORD, &admin);
    tsupport_user_role(server.db.url, ADMIN_EMAIL, "superadmin");
    cr_assert_eq(tsupport_login(server.port, ADMIN_EMAIL, PASSWORD, NULL, &admin), 200);
    cr_expect_eq(tsupport_login(server.port, USER_EMAIL, "wrong password 1", NULL, NULL), 401);
    cr_expect_eq(tsupport_login(server.port, BOOT_EMAIL, BOOT_PASSWORD, NULL, &boot), 200);

    snprintf(body, sizeof(body), "{\"refreshToken\":\"%s\"}", user.refresh);
    tsupport_json(server.port, "POST", "/api/auth/refresh", NULL, body, &res);
    cr_expect_eq(res.status, 200, "%s", res.body);
    refreshed = strdup(tsupport_str(res.json, "refreshToken"));
    tsupport_response_cleanup(&res);
    tsupport_json(server.port, "POST", "/api/auth/refresh", NULL, body, &res);
    cr_expect_eq(res.status, 401, "a reused refresh token");
    tsupport_response_cleanup(&res);

    cr_assert_eq(tsupport_login(server.port, USER_EMAIL, PASSWORD, NULL, &user), 200);
    snprintf(body, sizeof(body), "{\"currentPassword\":\"%s\",\"newPassword\":\"%s\"}", PASSWORD,
             NEW_PASSWORD);
    tsupport_json(server.port, "POST", "/api/profile/password", user.access, body, &res);
    cr_expect_eq(res.status, 200, "%s", res.body);
    tsupport_response_cleanup(&res);
    tsupport_json(server.port, "GET", "/api/admin/users", user.access, NULL, &res);
    cr_expect_eq(res.status, 403);
    tsupport_response_cleanup(&res);
    tsupport_json(server.port, "PATCH", "/api/admin/settings", admin.access,
                  "{\"support_email\":\"help@example.com\"}", &res);
    cr_expect_eq(res.status, 200, "%s", res.body);
    tsupport_response_cleanup(&res);
    snprintf(path, sizeof(path), "/api/admin/users/%s/role", user.id);
    tsupport_json(server.port, "PATCH", path, admin.access, "{\"role\":\"subscriber\"}", &res);
    cr_expect_eq(res.status, 200, "%s", res.body);
    tsupport_response_cleanup(&res);
    tsupport_json(server.port, "POST", "/api/auth/logout", admin.access, NULL, &res);
    cr_expect_eq(res.status, 200, "%s", res.body);
    tsupport_response_cleanup(&res);

    /* The email flows: a verification token and a reset token, each used. */
    snprintf(mail_dir, sizeof(mail_dir), "%s/mail", server.var_dir);
    mail = tmail_wait(mail_dir, USER_EMAIL, 1, WRITE_WAIT_MS);
    cr_assert(mail != NULL && tmail_token(mail, "http://localhost:5001/verify-email?token=",
                                          verify_token, sizeof(verify_token)),
              "no verification message");
    free(mail);
    snprintf(body, sizeof(body), "{\"token\":\"%s\"}", verify_token);
    tsupport_json(server.port, "POST", "/api/auth/verify-email", NULL, body, &res);
    cr_expect_eq(res.status, 200, "%s", res.body);
    tsupport_response_cleanup(&res);
    snprintf(body, sizeof(body), "{\"email\":\"%s\"}", USER_EMAIL);
    tsupport_json(server.port, "POST", "/api/auth/password/forgot", NULL, body, &res);
    cr_expect_eq(res.status, 202, "%s", res.body);
    tsupport_response_cleanup(&res);
    /* Files are named by message, not by arrival: wait until both are there, then look at
     * each for the reset link. */
    free(tmail_wait(mail_dir, USER_EMAIL, 2, WRITE_WAIT_MS));
    reset_token[0] = '\0';
    for (int nth = 1; nth <= 2 && reset_token[0] == '\0'; nth++) {
        mail = tmail_wait(mail_dir, USER_EMAIL, nth, WRITE_WAIT_MS);
        if (mail == NULL || !tmail_token(mail, "http://localhost:5001/reset-password?token=",
                                         reset_token, sizeof(reset_token)))
            reset_token[0] = '\0';
        free(mail);
    }
    cr_assert(reset_token[0] != '\0', "no reset message");
    snprintf(body, sizeof(body), "{\"token\":\"%s\",\"newPassword\":\"%s\"}", reset_token,
             RESET_PASSWORD);
    tsupport_json(server.port, "POST", "/api/auth/password/reset", NULL, body, &res);
    cr_expect_eq(res.status, 200, "%s", res.body);
    tsupport_response_cleanup(&res);
    cr_expect_eq(tsupport_server_stop(&server), 0);

    secrets[nsecrets++] = PASSWORD;
    secrets[nsecrets++] = NEW_PASSWORD;
    secrets[nsecrets++] = "wrong password 1";
    secrets[nsecrets++] = user.access;
    secrets[nsecrets++] = user.refresh;
    secrets[nsecrets++] = admin.access;
    secrets[nsecrets++] = admin.refresh;
    secrets[nsecrets++] = refreshed != NULL ? refreshed : "-";
    secrets[nsecrets++] = TSUPPORT_JWT_SECRET;
    secrets[nsecrets++] = TSUPPORT_JWT_REFRESH_SECRET;
    secrets[nsecrets++] = TSUPPORT_WEBHOOK_SECRET;
    secrets[nsecrets++] = RESET_PASSWORD;
    secrets[nsecrets++] = BOOT_PASSWORD;
    secrets[nsecrets++] = SMTP_PASSWORD;
    secrets[nsecrets++] = boot.access;
    secrets[nsecrets++] = boot.refresh;
    secrets[nsecrets++] = verify_token;
    secrets[nsecrets++] = reset_token;

    conn = tsupport_connect(server.db.url);
    cr_expect_gt(tsupport_scalar(conn, "SELECT count(*) FROM audit_logs", 0, NULL), 8,
                 "the flows left too few rows to prove anything");
    for (int i = 0; i < nsecrets; i++) {
        /* The signature alone is enough to find a token cut or re-encoded. */
        const char *needle =
            strrchr(secrets[i], '.') != NULL ? strrchr(secrets[i], '.') + 1 : secrets[i];
        const char *params[] = {needle};

        cr_expect_eq(tsupport_scalar(conn,
                                     "SELECT count(*) FROM audit_logs a"
                                     " WHERE strpos(a::text, $1) > 0",
                                     1, params),
                     0, "an audit row holds secret %d", i);
    }
    PQfinish(conn);
    free(refreshed);
}
