/* SPDX-License-Identifier: MIT */
/*
 * Test support: the throwaway PostgreSQL cluster that ctest starts once per run (see
 * tests/pg_fixture.sh), a fresh database for each test, and helpers to run the server binary.
 */
#ifndef MANAS360_TEST_SUPPORT_H
#define MANAS360_TEST_SUPPORT_H

#include <stdbool.h>
#include <sys/types.h>

#include <libpq-fe.h>

/* A database made for one test; dropped by tsupport_db_destroy(). */
struct tsupport_db {
    char name[64];
    char url[512];
};

/*
 * Creates a database copied from the migrated and seeded template, so each test starts from
 * the same clean state whatever ran before it. Aborts the test when the cluster is missing.
 */
void tsupport_db_migrated(struct tsupport_db *db);

/* Creates an empty database, for tests of the migrator itself. */
void tsupport_db_empty(struct tsupport_db *db);

/* Drops the database; safe to call twice. */
void tsupport_db_destroy(struct tsupport_db *db);

/* Connects to `url` or aborts the test. */
PGconn *tsupport_connect(const char *url);

/*
 * Runs `sql` with text parameters and returns the result, whatever its status; the caller
 * PQclear()s it. Tests use it to check the schema as a client would.
 */
PGresult *tsupport_query(PGconn *conn, const char *sql, int nparams, const char *const *params);

/* Runs `sql` and returns its SQLSTATE ("" on success). Result freed. */
const char *tsupport_sqlstate(PGconn *conn, const char *sql, int nparams, const char *const *params,
                              char out[6]);

/* Runs `sql` and returns the first column of the first row as a long (aborts on error). */
long tsupport_scalar(PGconn *conn, const char *sql, int nparams, const char *const *params);

/* The source tree's migrations folder. */
const char *tsupport_migrations_dir(void);

/* The server binary. */
const char *tsupport_server_bin(void);

/* Makes a fresh temporary folder and returns its path (malloc'd). */
char *tsupport_tempdir(void);

/* A TCP port on 127.0.0.1 that was free a moment ago. */
int tsupport_free_port(void);

/*
 * Runs `argv` with the environment `envp` (NULL-terminated "K=V" strings added to a clean
 * environment holding only PATH), capturing stdout and stderr into malloc'd strings.
 * Returns the exit code, or 128 + signal.
 */
int tsupport_run(char *const argv[], char *const envp[], char **out, char **err);

/* Starts `argv` in the background with `envp`; stderr goes to `log_path`. Returns the pid. */
pid_t tsupport_spawn(char *const argv[], char *const envp[], const char *log_path);

/* Waits up to `timeout_ms` for `pid`; returns its exit code, 128 + signal, or -1 on timeout. */
int tsupport_wait(pid_t pid, int timeout_ms);

/*
 * Sends one HTTP request to 127.0.0.1:`port` with libcurl. `headers` is NULL or a
 * NULL-terminated list of "Name: value". Returns the status (0 when no answer); `body` and
 * `response_headers` (when not NULL) receive malloc'd copies.
 */
long tsupport_http(int port, const char *method, const char *path, const char *const *headers,
                   const char *request_body, char **body, char **response_headers);

/* Polls GET /healthz until it answers 200 or `timeout_ms` passes. */
bool tsupport_wait_healthy(int port, int timeout_ms);

#endif
