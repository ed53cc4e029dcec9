/* SPDX-License-Identifier: MIT */
/* Mail for tests: the SMTP sink's process and the folders of stored messages. */
#include "test_mail.h"

#include <dirent.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <criterion/criterion.h>

#include "test_support.h"

#define TMAIL_START_TIMEOUT_MS 10000
#define TMAIL_MAX_FILES 4096
#define TMAIL_PATH_BYTES 1024

void tmail_sink_prepare(struct tmail_sink *sink)
{
    memset(sink, 0, sizeof(*sink));
    sink->pid = -1;
    sink->dir = tsupport_tempdir();
    sink->port = tsupport_free_port();
    snprintf(sink->log_path, sizeof(sink->log_path), "%s.log", sink->dir);
}

static bool tmail_accepts(int port)
{
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    bool ok;

    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ok = fd >= 0 && connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

void tmail_sink_start(struct tmail_sink *sink)
{
    char script[TMAIL_PATH_BYTES];
    char port[16];
    char *argv[] = {"/usr/bin/python3", script, port, sink->dir, NULL};
    long long until = tsupport_now_ms() + TMAIL_START_TIMEOUT_MS;

    snprintf(script, sizeof(script), "%s/tests/support/smtp_sink.py", MANAS360_SOURCE_DIR);
    snprintf(port, sizeof(port), "%d", sink->port);
    sink->pid = tsupport_spawn(argv, NULL, sink->log_path);
    cr_assert_gt(sink->pid, 0);
    while (!tmail_accepts(sink->port)) {
        cr_assert_lt(tsupport_now_ms(), until, "the SMTP sink did not start: %s",
                     tsupport_file_read(sink->log_path));
        poll(NULL, 0, 20);
    }
}

void tmail_sink_stop(struct tmail_sink *sink)
{
    if (sink->pid <= 0)
        return;
    kill(sink->pid, SIGTERM);
    waitpid(sink->pid, NULL, 0);
    sink->pid = -1;
}

void tmail_sink_destroy(struct tmail_sink *sink)
{
    char command[TMAIL_PATH_BYTES];

    tmail_sink_stop(sink);
    if (sink->dir != NULL) {
        snprintf(command, sizeof(command), "rm -rf '%s' '%s'", sink->dir, sink->log_path);
        if (system(command) != 0)
            cr_log_warn("could not remove %s", sink->dir);
    }
    free(sink->dir);
    sink->dir = NULL;
}

static int tmail_name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The complete messages of `dir` in name order; the caller frees each and the array. */
static int tmail_list(const char *dir, char ***out)
{
    char **names = calloc(TMAIL_MAX_FILES, sizeof(*names));
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;

    cr_assert_not_null(names);
    while (d != NULL && (e = readdir(d)) != NULL && n < TMAIL_MAX_FILES) {
        size_t len = strlen(e->d_name);

        if (e->d_name[0] != '.' && len > 4 && strcmp(e->d_name + len - 4, ".eml") == 0)
            names[n++] = strdup(e->d_name);
    }
    if (d != NULL)
        closedir(d);
    qsort(names, (size_t)n, sizeof(*names), tmail_name_cmp);
    *out = names;
    return n;
}

/* The text of the nth message to `address` now in `dir`, or NULL; also counts them. */
static char *tmail_find(const char *dir, const char *address, int nth, int *count)
{
    char **names = NULL;
    int n = tmail_list(dir, &names);
    char needle[300];
    char *found = NULL;

    snprintf(needle, sizeof(needle), "<%s>", address != NULL ? address : "");
    *count = 0;
    for (int i = 0; i < n; i++) {
        char path[TMAIL_PATH_BYTES];
        char *text;

        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        text = tsupport_file_read(path);
        if (address == NULL || strstr(text, needle) != NULL) {
            if (++*count == nth && found == NULL) {
                found = text;
                text = NULL;
            }
        }
        free(text);
        free(names[i]);
    }
    free(names);
    return found;
}

int tmail_count(const char *dir, const char *address)
{
    int count = 0;

    free(tmail_find(dir, address, 0, &count));
    return count;
}

char *tmail_wait(const char *dir, const char *address, int nth, int timeout_ms)
{
    long long until = tsupport_now_ms() + timeout_ms;
    int count = 0;
    char *text;

    while ((text = tmail_find(dir, address, nth, &count)) == NULL) {
        if (tsupport_now_ms() >= until)
            return NULL;
        poll(NULL, 0, 50);
    }
    return text;
}

bool tmail_token(const char *message, const char *link_prefix, char *out, size_t size)
{
    const char *p = strstr(message, link_prefix);
    size_t len;

    if (p == NULL)
        return false;
    p += strlen(link_prefix);
    len = strspn(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_");
    if (len == 0 || len >= size)
        return false;
    memcpy(out, p, len);
    out[len] = '\0';
    return true;
}
