/* SPDX-License-Identifier: MIT */
/* Applies the numbered SQL files of a folder, once each, in order, one migrator at a time. */
#include "manas360/migrate.h"

#include <dirent.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "manas360/err.h"
#include "manas360/log.h"

#define MIGRATE_CHECKSUM_HEX (2 * crypto_hash_sha256_BYTES + 1)
#define MIGRATE_FILE_MAX_BYTES (16L * 1024 * 1024)
#define MIGRATE_PATH_MAX 4096
#define MIGRATE_LOG_MODULE "migrate"

/*
 * Every migrator takes this transaction-level advisory lock first, so concurrent runs
 * apply each file once and in order. The number is arbitrary but fixed forever.
 */
#define MIGRATE_LOCK_KEY "360360360"

static const char migrate_table_sql[] =
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " name text PRIMARY KEY,"
    " checksum text NOT NULL CHECK (checksum ~ '^[0-9a-f]{64}$'),"
    " applied_at timestamptz NOT NULL DEFAULT now())";

static const struct db_stmt migrate_lock_stmts[] = {
    {"migrate_lock", "SELECT pg_advisory_xact_lock($1::bigint)", 1},
};

/* Prepared only once the table exists. */
static const struct db_stmt migrate_stmts[] = {
    {"migrate_applied_list", "SELECT name, checksum FROM schema_migrations ORDER BY name", 0},
    {"migrate_applied_one", "SELECT checksum FROM schema_migrations WHERE name = $1", 1},
    {"migrate_record", "INSERT INTO schema_migrations (name, checksum) VALUES ($1, $2)", 2},
};

/* One file of the folder. */
struct migrate_file {
    char name[MIGRATE_NAME_MAX];
    char checksum[MIGRATE_CHECKSUM_HEX];
    char *sql;
};

struct migrate_files {
    struct migrate_file *items;
    int count;
};

static void migrate_files_cleanup(struct migrate_files *files)
{
    for (int i = 0; i < files->count; i++)
        free(files->items[i].sql);
    free(files->items);
    files->items = NULL;
    files->count = 0;
}

/* `NNN_lower_snake.sql`: the number fixes the order, the name says what it does. */
static bool migrate_name_valid(const char *name)
{
    size_t len = strlen(name);

    if (len < 9 || len >= MIGRATE_NAME_MAX || strcmp(name + len - 4, ".sql") != 0)
        return false;
    for (size_t i = 0; i < 3; i++) {
        if (name[i] < '0' || name[i] > '9')
            return false;
    }
    if (name[3] != '_')
        return false;
    for (size_t i = 4; i < len - 4; i++) {
        if (strchr("abcdefghijklmnopqrstuvwxyz0123456789_", name[i]) == NULL)
            return false;
    }
    return true;
}

static int migrate_file_read(const char *dir, struct migrate_file *file)
{
    unsigned char digest[crypto_hash_sha256_BYTES];
    char path[MIGRATE_PATH_MAX];
    FILE *fp = NULL;
    long size;
    int rc = M360_EIO;

    snprintf(path, sizeof(path), "%s/%s", dir, file->name);
    fp = fopen(path, "rb");
    if (fp == NULL || fseek(fp, 0, SEEK_END) != 0 || (size = ftell(fp)) < 0 ||
        size > MIGRATE_FILE_MAX_BYTES || fseek(fp, 0, SEEK_SET) != 0)
        goto done;
    file->sql = malloc((size_t)size + 1);
    if (file->sql == NULL) {
        rc = M360_ENOMEM;
        goto done;
    }
    if (fread(file->sql, 1, (size_t)size, fp) != (size_t)size)
        goto done;
    file->sql[size] = '\0';

    crypto_hash_sha256(digest, (const unsigned char *)file->sql, (unsigned long long)size);
    sodium_bin2hex(file->checksum, sizeof(file->checksum), digest, sizeof(digest));
    rc = 0;

done:
    if (fp != NULL)
        fclose(fp);
    return rc;
}

static int migrate_file_compare(const void *a, const void *b)
{
    return strcmp(((const struct migrate_file *)a)->name, ((const struct migrate_file *)b)->name);
}

/* Reads every `*.sql` file of `dir`, sorted by name. */
static int migrate_files_load(const char *dir, struct migrate_files *files)
{
    DIR *d = opendir(dir);
    struct dirent *entry;
    int rc = 0;

    files->items = NULL;
    files->count = 0;
    if (d == NULL) {
        log_err(MIGRATE_LOG_MODULE, "event=folder_unreadable dir=%s", dir);
        return M360_EIO;
    }

    while (rc == 0 && (entry = readdir(d)) != NULL) {
        size_t len = strlen(entry->d_name);
        struct migrate_file *grown;

        if (len < 4 || strcmp(entry->d_name + len - 4, ".sql") != 0)
            continue;
        if (!migrate_name_valid(entry->d_name)) {
            log_err(MIGRATE_LOG_MODULE, "event=bad_file_name file=%s want=NNN_name.sql",
                    entry->d_name);
            rc = M360_EINVAL;
            break;
        }
        grown = realloc(files->items, sizeof(*grown) * (size_t)(files->count + 1));
        if (grown == NULL) {
            rc = M360_ENOMEM;
            break;
        }
        files->items = grown;
        memset(&files->items[files->count], 0, sizeof(files->items[0]));
        /* migrate_name_valid() bounded the length below MIGRATE_NAME_MAX. */
        memcpy(files->items[files->count].name, entry->d_name, len + 1);
        files->count++;
        rc = migrate_file_read(dir, &files->items[files->count - 1]);
    }
    closedir(d);

    if (rc != 0) {
        migrate_files_cleanup(files);
        return rc;
    }
    if (files->count > 1)
        qsort(files->items, (size_t)files->count, sizeof(files->items[0]), migrate_file_compare);
    return 0;
}

static int migrate_lock(struct db *db)
{
    const char *params[] = {MIGRATE_LOCK_KEY};

    return db_exec(db, "migrate_lock", 1, params, NULL);
}

static int migrate_table_create(struct db *db, void *arg)
{
    int rc;

    (void)arg;
    rc = migrate_lock(db);
    if (rc == 0)
        rc = db_exec_script(db, migrate_table_sql, NULL);
    return rc;
}

/* Makes sure the bookkeeping table exists, then prepares the statements that use it. */
static int migrate_open(struct db *db)
{
    int rc = db_prepare(db, migrate_lock_stmts, 1);

    if (rc == 0)
        rc = db_tx(db, migrate_table_create, NULL);
    if (rc == 0)
        rc = db_prepare(db, migrate_stmts, (int)(sizeof(migrate_stmts) / sizeof(migrate_stmts[0])));
    return rc;
}

static int migrate_status_add(struct migrate_status *status, const char *name,
                              enum migrate_state state)
{
    struct migrate_entry *grown =
        realloc(status->entries, sizeof(*grown) * (size_t)(status->count + 1));

    if (grown == NULL)
        return M360_ENOMEM;
    status->entries = grown;
    snprintf(grown[status->count].name, MIGRATE_NAME_MAX, "%s", name);
    grown[status->count].state = state;
    status->count++;
    if (state == MIGRATE_PENDING)
        status->pending++;
    if (state == MIGRATE_CHANGED || state == MIGRATE_MISSING)
        status->changed++;
    return 0;
}

static int migrate_entry_compare(const void *a, const void *b)
{
    return strcmp(((const struct migrate_entry *)a)->name, ((const struct migrate_entry *)b)->name);
}

static const struct migrate_file *migrate_files_find(const struct migrate_files *files,
                                                     const char *name)
{
    for (int i = 0; i < files->count; i++) {
        if (strcmp(files->items[i].name, name) == 0)
            return &files->items[i];
    }
    return NULL;
}

/* Compares the folder with the recorded rows. */
static int migrate_compare(struct db *db, const struct migrate_files *files,
                           struct migrate_status *status)
{
    PGresult *res = NULL;
    int rc;

    memset(status, 0, sizeof(*status));
    rc = db_exec(db, "migrate_applied_list", 0, NULL, &res);
    if (rc != 0)
        return rc;

    for (int row = 0; rc == 0 && row < PQntuples(res); row++) {
        const char *name = PQgetvalue(res, row, 0);
        const struct migrate_file *file = migrate_files_find(files, name);
        enum migrate_state state = MIGRATE_APPLIED;

        if (file == NULL)
            state = MIGRATE_MISSING;
        else if (strcmp(file->checksum, PQgetvalue(res, row, 1)) != 0)
            state = MIGRATE_CHANGED;
        rc = migrate_status_add(status, name, state);
    }
    for (int i = 0; rc == 0 && i < files->count; i++) {
        bool recorded = false;
        for (int row = 0; row < PQntuples(res) && !recorded; row++)
            recorded = strcmp(PQgetvalue(res, row, 0), files->items[i].name) == 0;
        if (!recorded)
            rc = migrate_status_add(status, files->items[i].name, MIGRATE_PENDING);
    }
    PQclear(res);

    if (rc != 0) {
        migrate_status_cleanup(status);
        return rc;
    }
    if (status->count > 1)
        qsort(status->entries, (size_t)status->count, sizeof(status->entries[0]),
              migrate_entry_compare);
    return 0;
}

int migrate_status_read(struct db *db, const char *dir, struct migrate_status *status)
{
    struct migrate_files files;
    int rc = migrate_files_load(dir, &files);

    if (rc != 0)
        return rc;
    rc = migrate_open(db);
    if (rc == 0)
        rc = migrate_compare(db, &files, status);
    migrate_files_cleanup(&files);
    return rc;
}

struct migrate_step {
    const struct migrate_file *file;
    bool applied; /* false when a concurrent migrator got there first */
};

/* Applies one file under the lock, unless a concurrent migrator already did. */
static int migrate_file_apply(struct db *db, void *arg)
{
    struct migrate_step *step = arg;
    const struct migrate_file *file = step->file;
    const char *params[] = {file->name, file->checksum};
    PGresult *res = NULL;
    int recorded;
    int rc;

    rc = migrate_lock(db);
    if (rc == 0)
        rc = db_exec(db, "migrate_applied_one", 1, params, &res);
    if (rc != 0)
        return rc;
    recorded = PQntuples(res);
    PQclear(res);
    if (recorded > 0)
        return 0;

    rc = db_exec_script(db, file->sql, NULL);
    if (rc != 0) {
        log_err(MIGRATE_LOG_MODULE, "event=file_failed file=%s sqlstate=%s", file->name,
                db_last_sqlstate(db));
        return rc;
    }
    rc = db_exec(db, "migrate_record", 2, params, NULL);
    step->applied = rc == 0;
    if (rc == 0)
        log_notice(MIGRATE_LOG_MODULE, "event=file_applied file=%s checksum=%.12s", file->name,
                   file->checksum);
    return rc;
}

int migrate_apply(struct db *db, const char *dir, int *applied)
{
    struct migrate_files files;
    struct migrate_status status = {0};
    int count = 0;
    int rc;

    rc = migrate_files_load(dir, &files);
    if (rc != 0)
        return rc;
    rc = migrate_open(db);
    if (rc == 0)
        rc = migrate_compare(db, &files, &status);
    if (rc != 0)
        goto done;

    for (int i = 0; i < status.count; i++) {
        if (status.entries[i].state == MIGRATE_CHANGED ||
            status.entries[i].state == MIGRATE_MISSING)
            log_err(MIGRATE_LOG_MODULE, "event=applied_file_changed file=%s state=%s",
                    status.entries[i].name, migrate_state_name(status.entries[i].state));
    }
    if (status.changed > 0) {
        rc = M360_ECHANGED;
        goto done;
    }

    for (int i = 0; i < files.count && rc == 0; i++) {
        struct migrate_step step = {&files.items[i], false};
        bool pending = false;

        for (int j = 0; j < status.count && !pending; j++)
            pending = status.entries[j].state == MIGRATE_PENDING &&
                      strcmp(status.entries[j].name, files.items[i].name) == 0;
        if (!pending)
            continue;
        rc = db_tx(db, migrate_file_apply, &step);
        if (rc == 0 && step.applied)
            count++;
    }

done:
    migrate_status_cleanup(&status);
    migrate_files_cleanup(&files);
    if (rc == 0 && applied != NULL)
        *applied = count;
    return rc;
}

void migrate_status_cleanup(struct migrate_status *status)
{
    free(status->entries);
    memset(status, 0, sizeof(*status));
}

const char *migrate_state_name(enum migrate_state state)
{
    switch (state) {
    case MIGRATE_PENDING:
        return "pending";
    case MIGRATE_APPLIED:
        return "applied";
    case MIGRATE_CHANGED:
        return "changed";
    case MIGRATE_MISSING:
        return "missing";
    }
    return "unknown";
}

void migrate_status_print(const struct migrate_status *status, FILE *out)
{
    for (int i = 0; i < status->count; i++)
        fprintf(out, "%-8s %s\n", migrate_state_name(status->entries[i].state),
                status->entries[i].name);
    fprintf(out, "%d files: %d applied, %d pending, %d changed or missing\n", status->count,
            status->count - status->pending - status->changed, status->pending, status->changed);
}
