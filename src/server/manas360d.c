/* SPDX-License-Identifier: MIT */
/* manas360d: the command line of the server binary. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "manas360/cfg.h"
#include "manas360/db.h"
#include "manas360/err.h"
#include "manas360/log.h"
#include "manas360/migrate.h"
#include "manas360/serve.h"

#define EXIT_USAGE 2
#define MAIN_LOG_MODULE "main"

static const char usage_line[] =
    "usage: manas360d [--help | --version | migrate [--status] | serve]\n";

static void main_help(void)
{
    printf("%s\n"
           "  migrate            apply pending schema migrations from MIGRATIONS_DIR\n"
           "  migrate --status   list each migration as applied, pending or changed\n"
           "  serve              run the front end on PORT and every worker pool\n"
           "  serve --front-end  run only the front end; pools at the *_POOL_ENDPOINT addresses\n"
           "  serve --pools=LIST run only these pools (auth, billing, audit, notifier)\n"
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

/* Reads serve's option into the parts to run; M360_EINVAL for anything unknown. */
static int main_serve_parts(int argc, char **argv, unsigned *parts)
{
    static const char pools_option[] = "--pools=";

    *parts = SERVE_ALL;
    if (argc == 2)
        return 0;
    if (argc != 3)
        return M360_EINVAL;
    if (strcmp(argv[2], "--front-end") == 0) {
        *parts = SERVE_FRONT_END;
        return 0;
    }
    if (strncmp(argv[2], pools_option, sizeof(pools_option) - 1) == 0)
        return serve_pools_parse(argv[2] + sizeof(pools_option) - 1, parts);
    return M360_EINVAL;
}

int main(int argc, char **argv)
{
    struct cfg cfg;
    unsigned parts = SERVE_ALL;
    bool migrate;
    int rc;

    if (argc == 2 && strcmp(argv[1], "--help") == 0) {
        main_help();
        return EXIT_SUCCESS;
    }
    if (argc == 2 && strcmp(argv[1], "--version") == 0) {
        printf("manas360d %s\n", MANAS360_VERSION);
        return EXIT_SUCCESS;
    }
    if (argc < 2)
        return main_usage_error();
    migrate = strcmp(argv[1], "migrate") == 0;
    if (migrate && (argc > 3 || (argc == 3 && strcmp(argv[2], "--status") != 0)))
        return main_usage_error();
    if (!migrate && (strcmp(argv[1], "serve") != 0 || main_serve_parts(argc, argv, &parts) != 0))
        return main_usage_error();

    rc = main_setup(&cfg);
    if (rc != 0)
        return rc;
    if (!migrate && serve_check_endpoints(&cfg, parts, stderr) != 0)
        rc = EXIT_USAGE;
    else if (migrate)
        rc = main_migrate(&cfg, argc == 3);
    else
        rc = serve_run(&cfg, parts) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
    cfg_cleanup(&cfg);
    log_shutdown();
    return rc;
}
