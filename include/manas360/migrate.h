/* SPDX-License-Identifier: MIT */
/*
 * Schema migrations: the `*.sql` files of a folder, applied in name order, each in its own
 * transaction, under a PostgreSQL advisory lock so concurrent migrators are safe. Each
 * applied file's name and SHA-256 are recorded; an applied file that changed since is
 * refused.
 */
#ifndef MANAS360_MIGRATE_H
#define MANAS360_MIGRATE_H

#include <stdio.h>

#include "manas360/db.h"

#define MIGRATE_NAME_MAX 128

enum migrate_state {
    MIGRATE_PENDING,
    MIGRATE_APPLIED,
    MIGRATE_CHANGED, /* applied, but the file's checksum differs from the recorded one */
    MIGRATE_MISSING, /* recorded as applied, but the file is gone */
};

struct migrate_entry {
    char name[MIGRATE_NAME_MAX];
    enum migrate_state state;
};

struct migrate_status {
    struct migrate_entry *entries; /* sorted by name */
    int count;
    int pending;
    int changed; /* changed or missing */
};

/*
 * Applies every pending file of `dir` to the database of `db`. Returns 0 and writes the
 * number applied to *applied (when not NULL); M360_ECHANGED when an applied file changed
 * or vanished (nothing is applied then); M360_EIO when the folder or a file cannot be read;
 * M360_EINVAL for a file name that is not `NNN_name.sql`; a db_exec code when a file fails
 * (that file's transaction is rolled back, earlier files stay applied).
 */
int migrate_apply(struct db *db, const char *dir, int *applied);

/*
 * Compares `dir` with what the database recorded. On success *status owns its entries;
 * release them with migrate_status_cleanup(). Returns 0, M360_EIO or a db code.
 */
int migrate_status_read(struct db *db, const char *dir, struct migrate_status *status);

void migrate_status_cleanup(struct migrate_status *status);

/* Writes one line per file ("applied  001_x.sql") and a summary to `out`. */
void migrate_status_print(const struct migrate_status *status, FILE *out);

const char *migrate_state_name(enum migrate_state state);

#endif
