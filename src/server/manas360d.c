/* SPDX-License-Identifier: MIT */
/* manas360d: the command line of the server binary. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "manas360/cfg.h"
#include "manas360/db.h"
#include "manas360/err.h"
#include "manas360/http.h"
#include "manas360/log.h"
#include "manas360/migrate.h"

#define EXIT_USAGE 2
#define MAIN_LOG_MODULE "main"

static const char usage_line[] =
    "usage: manas360d [--help | --version | migrate [--status] | serve]\n";

static void main_help(void)
{
    printf("%s\n"
           "  migrate            apply pending schema migrations from MIGRATIONS_DIR\n"
           "  migrate --status   list each migration as applied, pending or changed\n"
           "  serve              run the HTTP front end on PORT\n"
           "  --version          print the version\n"
           "  --help             print this help\n"
           "\n"
           "All settings come from the environment; see the README.\n",
           usage_line);
}

static int main_usage_error(void)
{
    fputs(usage_line, stderr);
    return EXIT_USAGE;
}

/* Loads and validates the configuration, then starts the logger. Exits 2 on a problem. */
static int main_setup(struct cfg *cfg)
{
    if (sodium_init() < 0) {
        fputs("manas360d: libsodium failed to initialise\n", stderr);
        return EXIT_FAILURE;
    }
    if (cfg_load(cfg, stderr) != 0)
        return EXIT_USAGE;
    log_init(cfg->log_level, stderr);
    return 0;
}

static int main_migrate(const struct cfg *cfg, int status_only)
{
    struct migrate_status status = {0};
    struct db *db = db_new(cfg->database_url);
    int applied = 0;
    int rc;

    if (db == NULL) {
        fputs("manas360d: cannot connect to DATABASE_URL\n", stderr);
        return EXIT_FAILURE;
    }
    if (status_only) {
        rc = migrate_status_read(db, cfg->migrations_dir, &status);
        if (rc == 0)
            migrate_status_print(&status, stdout);
        if (rc == 0 && (status.pending > 0 || status.changed > 0))
            rc = M360_ECHANGED;
        migrate_status_cleanup(&status);
    } else {
        rc = migrate_apply(db, cfg->migrations_dir, &applied);
        if (rc == 0)
            printf("applied %d migration%s\n", applied, applied == 1 ? "" : "s");
        else if (rc == M360_ECHANGED)
            fputs("manas360d: an applied migration file was changed or removed; "
                  "migrations are never edited once applied\n",
                  stderr);
    }
    db_destroy(&db);
    return rc == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/* Refuses to serve a database whose schema is behind or was edited. */
static int main_schema_check(const struct cfg *cfg)
{
    struct migrate_status status = {0};
    struct db *db = db_new(cfg->database_url);
    int rc = M360_EUNAVAILABLE;

    if (db != NULL)
        rc = migrate_status_read(db, cfg->migrations_dir, &status);
    if (rc == 0 && (status.pending > 0 || status.changed > 0)) {
        log_err(MAIN_LOG_MODULE, "event=schema_not_current pending=%d changed=%d hint=%s",
                status.pending, status.changed, "\"run manas360d migrate\"");
        rc = M360_ECHANGED;
    } else if (rc != 0) {
        log_err(MAIN_LOG_MODULE, "event=schema_check_failed code=%s", err_str(rc));
    }
    migrate_status_cleanup(&status);
    db_destroy(&db);
    return rc;
}

/* Runs until SIGTERM or SIGINT, then stops accepting and lets in-flight requests finish. */
static int main_serve(const struct cfg *cfg)
{
    struct http_server *server;
    sigset_t stop_signals;
    int signal_number = 0;

    if (main_schema_check(cfg) != 0)
        return EXIT_FAILURE;

    /* Blocked before any thread starts, so every thread inherits the mask and only
     * sigwait below receives them. */
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
    signal(SIGPIPE, SIG_IGN);

    server = http_server_new(cfg);
    if (server == NULL)
        return EXIT_FAILURE;
    log_notice(MAIN_LOG_MODULE, "event=started version=%s env=%s", MANAS360_VERSION,
               cfg_env_name(cfg->env));

    sigwait(&stop_signals, &signal_number);
    log_notice(MAIN_LOG_MODULE, "event=stopping signal=%s",
               signal_number == SIGINT ? "SIGINT" : "SIGTERM");
    http_server_destroy(&server);
    log_notice(MAIN_LOG_MODULE, "event=stopped");
    return EXIT_SUCCESS;
}

int main(int argc, char **argv)
{
    struct cfg cfg;
    int rc;

    if (argc == 2 && strcmp(argv[1], "--help") == 0) {
        main_help();
        return EXIT_SUCCESS;
    }
    if (argc == 2 && strcmp(argv[1], "--version") == 0) {
        printf("manas360d %s\n", MANAS360_VERSION);
        return EXIT_SUCCESS;
    }
    if (argc < 2 || (strcmp(argv[1], "migrate") != 0 && strcmp(argv[1], "serve") != 0))
        return main_usage_error();
    if (strcmp(argv[1], "migrate") == 0 && argc == 3 && strcmp(argv[2], "--status") != 0)
        return main_usage_error();
    if ((strcmp(argv[1], "migrate") == 0 && argc > 3) ||
        (strcmp(argv[1], "serve") == 0 && argc > 2))
        return main_usage_error();

    rc = main_setup(&cfg);
    if (rc != 0)
        return rc;
    if (strcmp(argv[1], "migrate") == 0)
        rc = main_migrate(&cfg, argc == 3);
    else
        rc = main_serve(&cfg);
    cfg_cleanup(&cfg);
    log_shutdown();
    return rc;
}
