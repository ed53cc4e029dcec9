/* SPDX-License-Identifier: MIT */
/* The migrator: apply, re-apply, edited and missing files, bad names, failures, races. */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <sodium.h>

#include "manas360/db.h"
#include "manas360/err.h"
#include "manas360/log.h"
#include "manas360/migrate.h"
#include "test_support.h"

#define MIGRATE_RACERS 4

static struct tsupport_db test_db;
static struct db *db;
static char *dir;

static void migrate_test_setup(void)
{
    cr_assert_geq(sodium_init(), 0);
    log_init(LOG_LEVEL_ERR, NULL);
    tsupport_db_empty(&test_db);
    db = db_new(test_db.url);
    cr_assert_not_null(db);
    dir = tsupport_tempdir();
}

static void migrate_test_teardown(void)
{
    char command[512];

    db_destroy(&db);
    tsupport_db_destroy(&test_db);
    snprintf(command, sizeof(command), "rm -rf '%s'", dir);
    cr_expect_eq(system(command), 0);
    free(dir);
}

TestSuite(migrate, .init = migrate_test_setup, .fini = migrate_test_teardown);

static void write_file(const char *name, const char *text, const char *mode)
{
    char path[512];
    FILE *fp;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    fp = fopen(path, mode);
    cr_assert_not_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static int count_sql_files(const char *folder)
{
    DIR *d = opendir(folder);
    struct dirent *entry;
    int n = 0;

    cr_assert_not_null(d);
    while ((entry = readdir(d)) != NULL)
        n += strstr(entry->d_name, ".sql") != NULL;
    closedir(d);
    return n;
}

static long recorded(void)
{
    PGconn *conn = tsupport_connect(test_db.url);
    long n = tsupport_scalar(conn, "SELECT count(*) FROM schema_migrations", 0, NULL);

    PQfinish(conn);
    return n;
}

static bool table_exists(const char *name)
{
    PGconn *conn = tsupport_connect(test_db.url);
    const char *params[] = {name};
    long n = tsupport_scalar(conn, "SELECT count(*) FROM pg_class WHERE relname = $1", 1, params);

    PQfinish(conn);
    return n > 0;
}

Test(migrate, applies_the_real_migrations_then_is_a_no_op)
{
    int files = count_sql_files(tsupport_migrations_dir());
    int applied = -1;

    cr_assert_geq(files, 3);
    cr_assert_eq(migrate_apply(db, tsupport_migrations_dir(), &applied), 0);
    cr_expect_eq(applied, files);
    cr_expect_eq(recorded(), files);
    cr_expect(table_exists("user_accounts"));
    cr_expect(table_exists("payment_transactions"));

    cr_assert_eq(migrate_apply(db, tsupport_migrations_dir(), &applied), 0);
    cr_expect_eq(applied, 0);
    cr_expect_eq(recorded(), files);
}

Test(migrate, applies_in_name_order_and_reports_status)
{
    struct migrate_status status;
    int applied = -1;

    /* 002 depends on 001; readdir order is arbitrary, name order is not. */
    write_file("002_add_column.sql", "ALTER TABLE widgets ADD COLUMN size int;", "w");
    write_file("001_create_widgets.sql", "CREATE TABLE widgets (id int);", "w");

    cr_assert_eq(migrate_status_read(db, dir, &status), 0);
    cr_expect_eq(status.pending, 2);
    cr_expect_str_eq(status.entries[0].name, "001_create_widgets.sql");
    migrate_status_cleanup(&status);

    cr_assert_eq(migrate_apply(db, dir, &applied), 0);
    cr_expect_eq(applied, 2);
    cr_assert_eq(migrate_status_read(db, dir, &status), 0);
    cr_expect_eq(status.count, 2);
    cr_expect_eq(status.pending, 0);
    cr_expect_eq(status.entries[1].state, MIGRATE_APPLIED);
    migrate_status_cleanup(&status);
}

Test(migrate, edited_file_is_refused_and_nothing_else_applies)
{
    struct migrate_status status;
    int applied = -1;

    write_file("001_create_widgets.sql", "CREATE TABLE widgets (id int);", "w");
    cr_assert_eq(migrate_apply(db, dir, &applied), 0);

    write_file("001_create_widgets.sql", "\n-- an innocent comment\n", "a");
    write_file("002_create_gizmos.sql", "CREATE TABLE gizmos (id int);", "w");
    cr_expect_eq(migrate_apply(db, dir, &applied), M360_ECHANGED);
    cr_expect_not(table_exists("gizmos"));

    cr_assert_eq(migrate_status_read(db, dir, &status), 0);
    cr_expect_eq(status.entries[0].state, MIGRATE_CHANGED);
    cr_expect_eq(status.entries[1].state, MIGRATE_PENDING);
    migrate_status_cleanup(&status);
}

Test(migrate, removed_file_is_refused)
{
    char path[512];
    int applied = -1;

    write_file("001_create_widgets.sql", "CREATE TABLE widgets (id int);", "w");
    cr_assert_eq(migrate_apply(db, dir, &applied), 0);
    snprintf(path, sizeof(path), "%s/001_create_widgets.sql", dir);
    cr_assert_eq(unlink(path), 0);
    write_file("002_create_gizmos.sql", "CREATE TABLE gizmos (id int);", "w");

    cr_expect_eq(migrate_apply(db, dir, &applied), M360_ECHANGED);
    cr_expect_not(table_exists("gizmos"));
}

Test(migrate, badly_named_file_is_refused)
{
    int applied = -1;

    write_file("1_Create-Widgets.sql", "CREATE TABLE widgets (id int);", "w");
    cr_expect_eq(migrate_apply(db, dir, &applied), M360_EINVAL);
    cr_expect_not(table_exists("widgets"));
}

Test(migrate, failing_file_rolls_back_alone)
{
    int applied = -1;

    write_file("001_create_widgets.sql", "CREATE TABLE widgets (id int);", "w");
    write_file("002_half_done.sql", "CREATE TABLE gizmos (id int);\nSELECT 1 / 0;", "w");
    write_file("003_after.sql", "CREATE TABLE sprockets (id int);", "w");

    cr_expect_eq(migrate_apply(db, dir, &applied), M360_EINVAL);
    cr_expect(table_exists("widgets"));
    cr_expect_not(table_exists("gizmos"));
    cr_expect_not(table_exists("sprockets"));
    cr_expect_eq(recorded(), 1);
}

Test(migrate, concurrent_migrators_apply_each_file_once)
{
    int files = count_sql_files(tsupport_migrations_dir());
    int total = 0;
    int reports = 0;
    int rc = 1;
    int applied = 0;
    pid_t pids[MIGRATE_RACERS];
    FILE *fp;
    int fds[2];

    cr_assert_eq(pipe(fds), 0);
    for (int i = 0; i < MIGRATE_RACERS; i++) {
        pids[i] = fork();
        if (pids[i] == 0) {
            struct db *own = db_new(test_db.url);
            char line[32];

            applied = -1;
            rc = own != NULL ? migrate_apply(own, tsupport_migrations_dir(), &applied) : -99;
            snprintf(line, sizeof(line), "%d %d\n", rc, applied);
            cr_assert_eq(write(fds[1], line, strlen(line)), (ssize_t)strlen(line));
            db_destroy(&own);
            _exit(0);
        }
    }
    close(fds[1]);

    for (int i = 0; i < MIGRATE_RACERS; i++)
        cr_assert_eq(tsupport_wait(pids[i], 60000), 0);

    fp = fdopen(fds[0], "r");
    while (fscanf(fp, "%d %d", &rc, &applied) == 2) {
        cr_expect_eq(rc, 0);
        total += applied;
        reports++;
    }
    fclose(fp);
    cr_expect_eq(reports, MIGRATE_RACERS);
    cr_expect_eq(total, files);
    cr_expect_eq(recorded(), files);
}
