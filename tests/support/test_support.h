/* SPDX-License-Identifier: MIT */
/*
 * Test support: the throwaway PostgreSQL cluster that ctest starts once per run (see
 * tests/pg_fixture.sh), a fresh database for each test, and helpers to run the server binary.
 */
#ifndef MANAS360_TEST_SUPPORT_H
#define MANAS360_TEST_SUPPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <jansson.h>
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

/* Runs one statement on a fresh connection to `url`; aborts the test when it fails. */
void tsupport_db_run(const char *url, const char *sql, int nparams, const char *const *params);

/* Gives the account of `email` the role named `role`, directly in the database. */
void tsupport_user_role(const char *url, const char *email, const char *role);

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

/* ---- Server launcher ------------------------------------------------------------------- */

/* The secrets every launched server gets; tests sign their own tokens with them. */
#define TSUPPORT_JWT_SECRET "0123456789abcdef0123456789abcdef-a"
#define TSUPPORT_JWT_REFRESH_SECRET "0123456789abcdef0123456789abcdef-b"
#define TSUPPORT_WEBHOOK_SECRET "0123456789abcdef0123456789abcdef-c"

#define TSUPPORT_ENV_MAX 48
#define TSUPPORT_STOP_TIMEOUT_MS 30000 /* a sanitizer build checks for leaks on the way out */
#define TSUPPORT_START_TIMEOUT_MS 20000

/*
 * One test's server: its own database, var folder and port, and the environment that points
 * the binary at them. `pid` is the `serve` process started by tsupport_server_start(); other
 * processes of the same test (a separate pools process) are launched with
 * tsupport_server_launch() and share the database and folder.
 */
struct tsupport_server {
    struct tsupport_db db;
    char *var_dir;
    int port;
    pid_t pid;                       /* -1 while not running */
    char log_path[512];              /* stdout and stderr of `pid` */
    char *env[TSUPPORT_ENV_MAX + 1]; /* "K=V" strings, NULL-terminated, owned */
};

/*
 * Creates the database (copied from the migrated template), the var folder and a free port,
 * and the base environment: DATABASE_URL, MANAS360_VAR_DIR, MIGRATIONS_DIR, PORT and the
 * three secrets. Starts nothing.
 */
void tsupport_server_prepare(struct tsupport_server *srv);

/*
 * Writes the base environment followed by `extra` (NULL or NULL-terminated "K=V") into `out`
 * (`max` slots, NULL-terminated). A later entry overrides an earlier one of the same name.
 */
void tsupport_server_envp(const struct tsupport_server *srv, const char *const *extra, char **out,
                          size_t max);

/*
 * Starts the server binary with `args` (NULL-terminated, after the binary's name) and the
 * environment above; its output goes to var_dir/`log_name`.log, whose path is written to
 * `log_path` when not NULL. Returns the pid without waiting for anything.
 */
pid_t tsupport_server_launch(struct tsupport_server *srv, const char *const *args,
                             const char *const *extra, const char *log_name, char *log_path,
                             size_t log_path_size);

/* Prepares (unless done) and starts `manas360d serve`, then waits until /healthz answers. */
void tsupport_server_start(struct tsupport_server *srv, const char *const *extra);

/*
 * Sends SIGTERM to `pid` and waits for it; expects exit code 0 and reports anything else
 * with the log's sanitizer report or tail. Returns the exit code (-1 when it had to be
 * killed after TSUPPORT_STOP_TIMEOUT_MS).
 */
int tsupport_process_stop(pid_t pid, const char *log_path);

/* tsupport_process_stop() for the server's own process; pid is -1 afterwards. */
int tsupport_server_stop(struct tsupport_server *srv);

/* Kills whatever still runs (SIGKILL), drops the database and removes the var folder. */
void tsupport_server_destroy(struct tsupport_server *srv);

/* Reads a whole file into a malloc'd string ("" when missing). */
char *tsupport_file_read(const char *path);

/* ---- JSON over HTTP -------------------------------------------------------------------- */

/* One request. Only method and path are required. */
struct tsupport_request {
    const char *method;
    const char *path;
    const char *token;          /* sent as "Authorization: Bearer <token>" when not NULL */
    const char *body;           /* NULL: no body at all */
    size_t body_len;            /* 0: strlen(body) */
    bool chunked;               /* send the body with Transfer-Encoding: chunked */
    const char *const *headers; /* NULL or NULL-terminated "Name: value"; these win */
    long timeout_ms;            /* 0: 5000 */
    void *curl;                 /* a CURL handle to reuse (keep-alive), or NULL for a new one */
};

/* What came back. `status` is 0 when no answer arrived (see `curl_error`). */
struct tsupport_response {
    long status;
    char *body;     /* never NULL after a send */
    char *headers;  /* raw header lines of every response block */
    json_t *json;   /* the parsed body, or NULL */
    double seconds; /* total time of the exchange */
    long connects;  /* new connections this exchange opened */
    char curl_error[256];
};

/*
 * Sends `req` to 127.0.0.1:`port`. A body gets "Content-Type: application/json" unless the
 * request's headers name a Content-Type (an empty "Content-Type:" sends none). Never aborts
 * the test; release `res` with tsupport_response_cleanup().
 */
void tsupport_send(int port, const struct tsupport_request *req, struct tsupport_response *res);

/* The common case: a JSON body (or none) and an optional bearer token. */
void tsupport_json(int port, const char *method, const char *path, const char *token,
                   const char *body, struct tsupport_response *res);

void tsupport_response_cleanup(struct tsupport_response *res);

/*
 * The value of header `name` (case-insensitive) in the last response block, copied into
 * `out`; NULL when absent.
 */
const char *tsupport_header(const struct tsupport_response *res, const char *name, char *out,
                            size_t size);

/* The member at a dotted path ("user.subscription.plan") of `root`, or NULL. */
json_t *tsupport_get(const json_t *root, const char *path);

/* The string at a dotted path, or NULL when absent or not a string. */
const char *tsupport_str(const json_t *root, const char *path);

/*
 * Expects the contract's error answer: `status`, "success": false, "error": `error` and a
 * string "message". The macro reports the caller's line.
 */
#define tsupport_expect_error(res, status, error)                                                  \
    tsupport_expect_error_at((res), (status), (error), __FILE__, __LINE__)
void tsupport_expect_error_at(const struct tsupport_response *res, long status, const char *error,
                              const char *file, int line);

/* ---- Accounts -------------------------------------------------------------------------- */

/* A registered user and the tokens of one login. */
struct tsupport_user {
    char email[256];
    char password[256];
    char id[40];
    char session_id[40]; /* the `sid` claim of the access token */
    char access[2048];
    char refresh[2048];
};

/* Registers `email` with `password`; expects 201. */
void tsupport_register(int port, const char *email, const char *password);

/*
 * Logs in with an optional User-Agent; on 200 fills `user`'s email, password, id, session
 * and tokens. Returns the status.
 */
long tsupport_login(int port, const char *email, const char *password, const char *user_agent,
                    struct tsupport_user *user);

/* Registers and logs in; expects both to succeed. */
void tsupport_user_new(int port, const char *email, const char *password,
                       struct tsupport_user *user);

/* Copies string claim `name` of a JWT's payload into `out`; false when there is none. */
bool tsupport_token_claim(const char *token, const char *name, char *out, size_t size);

/* True for YYYY-MM-DDTHH:MM:SS, an optional fraction, then Z. */
bool tsupport_is_rfc3339_utc(const char *text);

/* True for a UUID in its 8-4-4-4-12 hex text form. */
bool tsupport_is_uuid(const char *text);

/* Milliseconds on a monotonic clock. */
long long tsupport_now_ms(void);

#endif
