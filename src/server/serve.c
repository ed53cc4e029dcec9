/* SPDX-License-Identifier: MIT */
/* Starting and stopping the parts of the server in the right order. */
#include "manas360/serve.h"

#include <signal.h>
#include <string.h>

#include <zmq.h>

#include "manas360/audit.h"
#include "manas360/auth.h"
#include "manas360/billing.h"
#include "manas360/db.h"
#include "manas360/err.h"
#include "manas360/http.h"
#include "manas360/log.h"
#include "manas360/migrate.h"
#include "manas360/notify.h"

#define SERVE_LOG_MODULE "serve"

/* The pools in start order; each with its part bit and endpoint variable. */
struct serve_pool {
    unsigned part;
    const char *name;
    const char *variable;
    const struct pool_def *def;
    size_t endpoint_offset;
};

static const struct serve_pool serve_pools[] = {
    {SERVE_POOL_AUTH, "auth", "AUTH_POOL_ENDPOINT", &auth_pool_def,
     offsetof(struct cfg, auth_endpoint)},
    {SERVE_POOL_BILLING, "billing", "BILLING_POOL_ENDPOINT", &billing_pool_def,
     offsetof(struct cfg, billing_endpoint)},
    {SERVE_POOL_AUDIT, "audit", "AUDIT_POOL_ENDPOINT", &audit_pool_def,
     offsetof(struct cfg, audit_endpoint)},
    {SERVE_POOL_NOTIFIER, "notifier", "NOTIFIER_POOL_ENDPOINT", &notify_pool_def,
     offsetof(struct cfg, notifier_endpoint)},
};

#define SERVE_POOL_COUNT ((int)(sizeof(serve_pools) / sizeof(serve_pools[0])))

static const char *serve_endpoint(const struct cfg *cfg, const struct serve_pool *pool)
{
    return *(char *const *)((const char *)cfg + pool->endpoint_offset);
}

int serve_pools_parse(const char *list, unsigned *parts)
{
    unsigned found = 0;
    const char *p = list;

    while (*p != '\0') {
        size_t len = strcspn(p, ",");
        bool known = false;

        for (int i = 0; i < SERVE_POOL_COUNT; i++) {
            if (strlen(serve_pools[i].name) == len && strncmp(p, serve_pools[i].name, len) == 0) {
                found |= serve_pools[i].part;
                known = true;
            }
        }
        if (!known)
            return M360_EINVAL;
        p += len;
        if (*p == ',' && *++p == '\0')
            return M360_EINVAL;
    }
    if (found == 0)
        return M360_EINVAL;
    *parts = found;
    return 0;
}

int serve_check_endpoints(const struct cfg *cfg, unsigned parts, FILE *problems)
{
    int count = 0;

    if (parts == SERVE_ALL)
        return 0;
    for (int i = 0; i < SERVE_POOL_COUNT; i++) {
        bool used = (parts & SERVE_FRONT_END) || (parts & serve_pools[i].part);

        if (used && strncmp(serve_endpoint(cfg, &serve_pools[i]), "inproc://", 9) == 0) {
            fprintf(problems,
                    "config: %s: must be a tcp:// or ipc:// endpoint when parts of the server "
                    "run in separate processes\n",
                    serve_pools[i].variable);
            count++;
        }
    }
    /* Audit events travel on an endpoint of their own, from front ends to the audit part. */
    if ((parts & (SERVE_FRONT_END | SERVE_POOL_AUDIT)) &&
        strncmp(cfg->audit_ingest_endpoint, "inproc://", 9) == 0) {
        fprintf(problems, "config: AUDIT_INGEST_ENDPOINT: must be a tcp:// or ipc:// endpoint "
                          "when parts of the server run in separate processes\n");
        count++;
    }
    return count == 0 ? 0 : M360_EINVAL;
}

/* Refuses a schema that is behind or edited; creates the first superadmin when asked to. */
static int serve_prepare_database(const struct cfg *cfg, bool bootstrap)
{
    struct migrate_status status = {0};
    struct db *db = db_new(cfg->database_url);
    int rc = M360_EUNAVAILABLE;

    if (db != NULL)
        rc = migrate_status_read(db, cfg->migrations_dir, &status);
    if (rc == 0 && (status.pending > 0 || status.changed > 0)) {
        log_err(SERVE_LOG_MODULE, "event=schema_not_current pending=%d changed=%d hint=%s",
                status.pending, status.changed, "\"run manas360d migrate\"");
        rc = M360_ECHANGED;
    } else if (rc != 0) {
        log_err(SERVE_LOG_MODULE, "event=schema_check_failed code=%s", err_str(rc));
    }
    if (rc == 0 && bootstrap)
        rc = auth_bootstrap_admin(db, cfg);
    migrate_status_cleanup(&status);
    db_destroy(&db);
    return rc;
}

/* Blocks until SIGTERM or SIGINT; the signals were blocked before any thread started. */
static void serve_wait(const sigset_t *stop_signals)
{
    int signal_number = 0;

    sigwait(stop_signals, &signal_number);
    log_notice(SERVE_LOG_MODULE, "event=stopping signal=%s",
               signal_number == SIGINT ? "SIGINT" : "SIGTERM");
}

int serve_run(const struct cfg *cfg, unsigned parts)
{
    struct pool *pools[SERVE_POOL_COUNT] = {NULL};
    struct http_server *server = NULL;
    struct notify_sender *sender = NULL;
    struct billing_sweep *sweep = NULL;
    struct audit_writer *audit_writer = NULL;
    sigset_t stop_signals;
    void *zmq_ctx = NULL;
    int rc;

    rc = serve_prepare_database(cfg, (parts & SERVE_POOL_AUTH) != 0);
    if (rc != 0)
        return rc;

    /* Blocked before any thread starts, so every thread inherits the mask and only
     * serve_wait receives them. */
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
    signal(SIGPIPE, SIG_IGN);

    zmq_ctx = zmq_ctx_new();
    rc = zmq_ctx != NULL ? 0 : M360_ENOMEM;
    for (int i = 0; rc == 0 && i < SERVE_POOL_COUNT; i++) {
        if (!(parts & serve_pools[i].part))
            continue;
        pools[i] = pool_new(zmq_ctx, serve_pools[i].def, cfg, serve_endpoint(cfg, &serve_pools[i]),
                            cfg->pool_threads);
        if (pools[i] == NULL)
            rc = M360_EUNAVAILABLE;
    }
    /* The outbox is drained wherever the notifier pool runs. */
    if (rc == 0 && (parts & SERVE_POOL_NOTIFIER)) {
        sender = notify_sender_new(cfg);
        if (sender == NULL)
            rc = M360_EINTERNAL;
    }
    if (rc == 0 && (parts & SERVE_POOL_BILLING)) {
        sweep = billing_sweep_new(cfg);
        if (sweep == NULL)
            rc = M360_EINTERNAL;
    }
    if (rc == 0 && (parts & SERVE_POOL_AUDIT)) {
        audit_writer = audit_writer_new(zmq_ctx, cfg);
        if (audit_writer == NULL)
            rc = M360_EUNAVAILABLE;
    }
    if (rc == 0 && (parts & SERVE_FRONT_END)) {
        server = http_server_new(cfg, zmq_ctx);
        if (server == NULL)
            rc = M360_EIO;
    }

    if (rc == 0) {
        log_notice(SERVE_LOG_MODULE, "event=started version=%s env=%s front_end=%s",
                   MANAS360_VERSION, cfg_env_name(cfg->env),
                   (parts & SERVE_FRONT_END) ? "yes" : "no");
        serve_wait(&stop_signals);
    }

    /* Front end first: its in-flight requests still need the pools to answer them, and the
     * audit events it pushes on the way out still need the writer. */
    http_server_destroy(&server);
    billing_sweep_destroy(&sweep);
    notify_sender_destroy(&sender);
    audit_writer_destroy(&audit_writer);
    for (int i = SERVE_POOL_COUNT - 1; i >= 0; i--)
        pool_destroy(&pools[i]);
    if (zmq_ctx != NULL)
        zmq_ctx_term(zmq_ctx);
    log_notice(SERVE_LOG_MODULE, "event=stopped");
    return rc;
}
