/* SPDX-License-Identifier: MIT */
/*
 * PostgreSQL access: one connection per thread, named prepared statements, reconnection
 * after the server restarts, a transaction helper, and errors mapped to status codes.
 * SQL text and server messages go to the log, never to a caller's response.
 */
#ifndef MANAS360_DB_H
#define MANAS360_DB_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

/* One named statement. A module keeps its statements in one static table. */
struct db_stmt {
    const char *name;
    const char *sql;
    int nparams;
};

struct db;

/*
 * Connects to `conninfo`. Returns NULL when the server cannot be reached (the reason is
 * logged, without any password). A connection belongs to one thread at a time.
 */
struct db *db_new(const char *conninfo);

/*
 * Prepares every statement of `stmts` (an array of `nstmts`) on the connection and keeps
 * the table, borrowed, to prepare it again after a reconnect: it must outlive the
 * connection. Several modules may each add their table. Returns 0, M360_ENOMEM when too many
 * tables were added, or M360_EDB when a statement does not prepare (logged by name).
 */
int db_prepare(struct db *db, const struct db_stmt *stmts, int nstmts);

/* Closes the connection, frees it and sets *db to NULL. Safe on NULL. */
void db_destroy(struct db **db);

/*
 * Runs the prepared statement `name` with text parameters (NULL is SQL NULL). On success
 * *out (when not NULL) owns the result, which the caller PQclear()s. Outside a transaction,
 * a connection lost before the statement ran is re-opened, re-prepared and the statement
 * retried once. Returns 0, M360_EINVAL (a constraint or type refused the data),
 * M360_ECONFLICT (unique violation), M360_EUNAVAILABLE (no server), M360_ETIMEDOUT
 * (statement timeout) or M360_EDB.
 */
int db_exec(struct db *db, const char *name, int nparams, const char *const *params,
            PGresult **out);

/*
 * Runs SQL text with no parameters (schema files, BEGIN, LISTEN). Same codes as db_exec.
 * Never pass text built from input: everything with a value in it goes through a prepared
 * statement.
 */
int db_exec_script(struct db *db, const char *sql, PGresult **out);

/*
 * Runs `sql`, a constant `COPY ... FROM STDIN` statement, and sends `len` bytes of `data` in
 * the COPY text format as its rows, all or nothing. Same codes as db_exec; a connection lost
 * before the COPY began is re-opened first.
 */
int db_copy_in(struct db *db, const char *sql, const char *data, size_t len);

/*
 * Runs `body` inside BEGIN ... COMMIT. A non-zero return from body rolls back and is
 * returned. A serialization failure or deadlock retries the whole body, a few times.
 */
typedef int (*db_tx_fn)(struct db *db, void *arg);
int db_tx(struct db *db, db_tx_fn body, void *arg);

/*
 * Sets the moment (Unix milliseconds; 0 for none) after which nobody waits for this
 * connection's work any more. Each db_tx() then caps its statements at the time left, and
 * rolls back rather than commit once the moment has passed, returning M360_ETIMEDOUT: a
 * caller that was told "unavailable" must not find its change made after all.
 */
void db_deadline_set(struct db *db, int64_t deadline_ms);

/* The SQLSTATE of the last failed statement ("" when none). Valid until the next call. */
const char *db_last_sqlstate(const struct db *db);

/* The constraint named by the last failed statement ("" when none). */
const char *db_last_constraint(const struct db *db);

/* True while the connection is usable. */
bool db_ok(const struct db *db);

/* Maps a SQLSTATE to a status code (M360_ECONFLICT for 23505, ...). */
int db_sqlstate_to_err(const char *sqlstate);

#endif
