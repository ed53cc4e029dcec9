/* SPDX-License-Identifier: MIT */
/* One PostgreSQL connection per thread, with its statements prepared by name. */
#include "manas360/db.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "manas360/err.h"
#include "manas360/log.h"

#define DB_TX_ATTEMPTS 3
#define DB_SQLSTATE_BYTES 6
#define DB_CONSTRAINT_BYTES 64
#define DB_STMT_TABLES_MAX 16
#define DB_LOG_MODULE "db"

/* Prepared on every connection: caps a transaction's statements at the time its caller has. */
static const struct db_stmt db_own_stmts[] = {
    {"db_statement_timeout", "SELECT set_config('statement_timeout', $1, true)", 1},
};

struct db_stmt_table {
    const struct db_stmt *stmts; /* borrowed from the owning module */
    int count;
};

struct db {
    PGconn *conn;
    char *conninfo;
    struct db_stmt_table tables[DB_STMT_TABLES_MAX];
    int ntables;
    bool in_tx;
    int64_t deadline_ms; /* 0: none */
    char sqlstate[DB_SQLSTATE_BYTES];
    char constraint[DB_CONSTRAINT_BYTES];
};

int db_sqlstate_to_err(const char *sqlstate)
{
    if (sqlstate == NULL || sqlstate[0] == '\0')
        return M360_EUNAVAILABLE;
    if (strcmp(sqlstate, "23505") == 0 || strcmp(sqlstate, "23P01") == 0)
        return M360_ECONFLICT;
    if (strncmp(sqlstate, "23", 2) == 0 || strncmp(sqlstate, "22", 2) == 0)
        return M360_EINVAL;
    if (strcmp(sqlstate, "57014") == 0 || strcmp(sqlstate, "55P03") == 0)
        return M360_ETIMEDOUT;
    if (strncmp(sqlstate, "08", 2) == 0 || strncmp(sqlstate, "57P", 3) == 0 ||
        strcmp(sqlstate, "53300") == 0)
        return M360_EUNAVAILABLE;
    return M360_EDB;
}

static int db_prepare_table(struct db *db, const struct db_stmt_table *table)
{
    for (int i = 0; i < table->count; i++) {
        const struct db_stmt *stmt = &table->stmts[i];
        PGresult *res = PQprepare(db->conn, stmt->name, stmt->sql, stmt->nparams, NULL);
        const char *sqlstate = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        int ok = PQresultStatus(res) == PGRES_COMMAND_OK;

        if (!ok)
            log_err(DB_LOG_MODULE, "event=prepare_failed stmt=%s sqlstate=%s", stmt->name,
                    sqlstate != NULL ? sqlstate : "none");
        PQclear(res);
        if (!ok)
            return M360_EDB;
    }
    return 0;
}

int db_prepare(struct db *db, const struct db_stmt *stmts, int nstmts)
{
    for (int i = 0; i < db->ntables; i++) {
        if (db->tables[i].stmts == stmts)
            return 0;
    }
    if (db->ntables == DB_STMT_TABLES_MAX)
        return M360_ENOMEM;
    db->tables[db->ntables] = (struct db_stmt_table){stmts, nstmts};
    db->ntables++;
    return db_prepare_table(db, &db->tables[db->ntables - 1]);
}

/* Server notices ("relation already exists, skipping") are chatter, not events. */
static void db_notice(void *arg, const char *message)
{
    char quoted[256];

    (void)arg;
    log_debug(DB_LOG_MODULE, "event=server_notice text=%s",
              log_quote(quoted, sizeof(quoted), message));
}

/* (Re)opens the connection and prepares the statements on it. */
static int db_connect(struct db *db)
{
    if (db->conn != NULL)
        PQfinish(db->conn);
    db->in_tx = false;
    db->conn = PQconnectdb(db->conninfo);
    if (PQstatus(db->conn) != CONNECTION_OK) {
        char reason[256];
        log_warn(DB_LOG_MODULE, "event=connect_failed reason=%s",
                 log_quote(reason, sizeof(reason), PQerrorMessage(db->conn)));
        return M360_EUNAVAILABLE;
    }
    PQsetNoticeProcessor(db->conn, db_notice, NULL);
    if (db_prepare_table(db, &(struct db_stmt_table){db_own_stmts, 1}) != 0)
        return M360_EDB;
    for (int i = 0; i < db->ntables; i++) {
        if (db_prepare_table(db, &db->tables[i]) != 0)
            return M360_EDB;
    }
    return 0;
}

struct db *db_new(const char *conninfo)
{
    struct db *db = calloc(1, sizeof(*db));

    if (db == NULL)
        return NULL;
    db->conninfo = strdup(conninfo);
    if (db->conninfo == NULL || db_connect(db) != 0)
        db_destroy(&db);
    return db;
}

void db_destroy(struct db **db)
{
    if (db == NULL || *db == NULL)
        return;
    PQfinish((*db)->conn);
    free((*db)->conninfo);
    free(*db);
    *db = NULL;
}

/* Records the failure of `res` and maps it to a status code; logs without SQL or data. */
static int db_fail(struct db *db, const char *what, PGresult *res)
{
    const char *sqlstate = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *constraint = res != NULL ? PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME) : NULL;
    const char *primary = res != NULL ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    char quoted[256];
    int rc;

    snprintf(db->sqlstate, sizeof(db->sqlstate), "%s", sqlstate != NULL ? sqlstate : "");
    snprintf(db->constraint, sizeof(db->constraint), "%s", constraint != NULL ? constraint : "");
    if (PQstatus(db->conn) != CONNECTION_OK)
        db->sqlstate[0] = '\0';
    rc = db_sqlstate_to_err(db->sqlstate);

    /* Constraint refusals are the caller's business; only real failures are logged here. */
    if (rc != M360_EINVAL && rc != M360_ECONFLICT)
        log_warn(DB_LOG_MODULE, "event=statement_failed stmt=%s sqlstate=%s code=%s reason=%s",
                 what, db->sqlstate[0] != '\0' ? db->sqlstate : "none", err_str(rc),
                 log_quote(quoted, sizeof(quoted),
                           primary != NULL ? primary : PQerrorMessage(db->conn)));
    PQclear(res);
    return rc;
}

static bool db_result_ok(const PGresult *res)
{
    ExecStatusType status = PQresultStatus(res);

    return status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK || status == PGRES_COPY_IN ||
           status == PGRES_COPY_OUT;
}

/* Runs one statement; `name` NULL means `sql` is plain text without parameters. */
static PGresult *db_run(struct db *db, const char *name, const char *sql, int nparams,
                        const char *const *params)
{
    if (name != NULL)
        return PQexecPrepared(db->conn, name, nparams, params, NULL, NULL, 0);
    return PQexec(db->conn, sql);
}

static int db_exec_any(struct db *db, const char *name, const char *sql, int nparams,
                       const char *const *params, PGresult **out)
{
    PGresult *res;

    db->sqlstate[0] = '\0';
    db->constraint[0] = '\0';
    if (PQstatus(db->conn) != CONNECTION_OK && !db->in_tx && db_connect(db) != 0)
        return M360_EUNAVAILABLE;

    res = db_run(db, name, sql, nparams, params);

    /*
     * After a server restart the first statement finds a dead socket; the server that would
     * have run it is gone, so it did not run, and outside a transaction it is safe to retry
     * once on a new connection.
     */
    if (!db_result_ok(res) && PQstatus(db->conn) != CONNECTION_OK && !db->in_tx) {
        PQclear(res);
        if (db_connect(db) != 0)
            return M360_EUNAVAILABLE;
        res = db_run(db, name, sql, nparams, params);
    }

    if (!db_result_ok(res))
        return db_fail(db, name != NULL ? name : "script", res);
    if (out != NULL)
        *out = res;
    else
        PQclear(res);
    return 0;
}

int db_exec(struct db *db, const char *name, int nparams, const char *const *params, PGresult **out)
{
    return db_exec_any(db, name, NULL, nparams, params, out);
}

int db_exec_script(struct db *db, const char *sql, PGresult **out)
{
    return db_exec_any(db, NULL, sql, 0, NULL, out);
}

int db_copy_in(struct db *db, const char *sql, const char *data, size_t len)
{
    PGresult *res = NULL;
    int rc = db_exec_script(db, sql, &res);

    if (rc != 0)
        return rc;
    if (PQresultStatus(res) != PGRES_COPY_IN) {
        PQclear(res);
        return M360_EINTERNAL;
    }
    PQclear(res);

    /* Blocking connection: each call sends all it is given, or fails. */
    if (PQputCopyData(db->conn, data, (int)len) != 1 || PQputCopyEnd(db->conn, NULL) != 1)
        return db_fail(db, "copy", NULL);
    res = PQgetResult(db->conn);
    rc = PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : db_fail(db, "copy", res);
    if (rc == 0)
        PQclear(res);
    /* Drain what is left of the exchange, so the connection is ready for the next. */
    while ((res = PQgetResult(db->conn)) != NULL)
        PQclear(res);
    return rc;
}

static bool db_retryable(const struct db *db)
{
    return strcmp(db->sqlstate, "40001") == 0 || strcmp(db->sqlstate, "40P01") == 0;
}

void db_deadline_set(struct db *db, int64_t deadline_ms)
{
    db->deadline_ms = deadline_ms;
}

static int64_t db_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Milliseconds the caller still waits, at least 1; 0 when there is no deadline. */
static int64_t db_time_left_ms(const struct db *db)
{
    int64_t left;

    if (db->deadline_ms == 0)
        return 0;
    left = db->deadline_ms - db_now_ms();
    return left > 0 ? left : 1;
}

/* Opens a transaction whose statements end, at the latest, when the caller stops waiting. */
static int db_begin(struct db *db)
{
    int64_t left = db_time_left_ms(db);
    char timeout[24];
    const char *params[] = {timeout};
    int rc = db_exec_script(db, "BEGIN", NULL);

    if (rc != 0 || left == 0)
        return rc;
    db->in_tx = true;
    snprintf(timeout, sizeof(timeout), "%lld", (long long)left);
    return db_exec(db, "db_statement_timeout", 1, params, NULL);
}

int db_tx(struct db *db, db_tx_fn body, void *arg)
{
    int rc = M360_EDB;

    for (int attempt = 0; attempt < DB_TX_ATTEMPTS; attempt++) {
        rc = db_begin(db);
        if (rc != 0 && PQtransactionStatus(db->conn) == PQTRANS_IDLE)
            return rc;
        db->in_tx = true;

        if (rc == 0)
            rc = body(db, arg);
        if (rc == 0 && db->deadline_ms != 0 && db_now_ms() > db->deadline_ms)
            rc = M360_ETIMEDOUT;
        if (rc == 0)
            rc = db_exec_script(db, "COMMIT", NULL);
        if (rc != 0 && PQstatus(db->conn) == CONNECTION_OK &&
            PQtransactionStatus(db->conn) != PQTRANS_IDLE) {
            char sqlstate[DB_SQLSTATE_BYTES];
            char constraint[DB_CONSTRAINT_BYTES];

            memcpy(sqlstate, db->sqlstate, sizeof(sqlstate));
            memcpy(constraint, db->constraint, sizeof(constraint));
            db_exec_script(db, "ROLLBACK", NULL);
            memcpy(db->sqlstate, sqlstate, sizeof(sqlstate));
            memcpy(db->constraint, constraint, sizeof(constraint));
        }
        db->in_tx = false;

        if (rc == 0 || !db_retryable(db))
            return rc;
    }
    return rc;
}

const char *db_last_sqlstate(const struct db *db)
{
    return db->sqlstate;
}

const char *db_last_constraint(const struct db *db)
{
    return db->constraint;
}

bool db_ok(const struct db *db)
{
    return db->conn != NULL && PQstatus(db->conn) == CONNECTION_OK;
}
