/* SPDX-License-Identifier: MIT */
/*
 * The benchmark ceiling: civetweb answering every request with `{}`, configured like the
 * real front end (keep-alive, TCP_NODELAY, one buffer and one write per response).
 *
 *   bare_server PORT [THREADS]    listens on 127.0.0.1:PORT until SIGTERM or SIGINT
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <civetweb.h>

#define BARE_DEFAULT_THREADS 32
#define BARE_THREADS_MAX 1024
#define BARE_RESPONSE_MAX_BYTES 256
#define BARE_EXIT_USAGE 2
/* The same timeouts as the real front end, so both servers close idle peers alike. */
#define BARE_REQUEST_TIMEOUT_MS "30000"
#define BARE_KEEP_ALIVE_TIMEOUT_MS "15000"

static const char bare_usage_line[] = "usage: bare_server PORT [THREADS]\n";

/* Builds status line, headers and body in one buffer and sends them with one write. */
static int bare_handle(struct mg_connection *conn, void *data)
{
    static const char body[] = "{}";
    char response[BARE_RESPONSE_MAX_BYTES];
    int len = snprintf(response, sizeof(response),
                       "HTTP/1.1 200 OK\r\n"
                       "Content-Type: application/json\r\n"
                       "Content-Length: %zu\r\n"
                       "\r\n"
                       "%s",
                       strlen(body), body);

    (void)data;
    if (len < 0 || (size_t)len >= sizeof(response))
        return 500;
    mg_write(conn, response, (size_t)len);
    return 200;
}

/* Parses a decimal integer in [min, max]; returns 0 and writes *out, or -1. */
static int bare_parse_int(const char *text, long min, long max, long *out)
{
    char *end = NULL;
    long value = strtol(text, &end, 10);

    if (end == text || *end != '\0' || value < min || value > max)
        return -1;
    *out = value;
    return 0;
}

int main(int argc, char **argv)
{
    struct mg_callbacks callbacks = {0};
    struct mg_context *ctx;
    sigset_t stop_signals;
    int signal_number = 0;
    long port = 0;
    long threads = BARE_DEFAULT_THREADS;
    char listen_on[32];
    char thread_count[16];
    const char *options[] = {
        "listening_ports",
        listen_on,
        "num_threads",
        thread_count,
        "enable_keep_alive",
        "yes",
        "tcp_nodelay",
        "1",
        "request_timeout_ms",
        BARE_REQUEST_TIMEOUT_MS,
        "keep_alive_timeout_ms",
        BARE_KEEP_ALIVE_TIMEOUT_MS,
        NULL,
    };

    if (argc < 2 || argc > 3 || bare_parse_int(argv[1], 1, 65535, &port) != 0 ||
        (argc == 3 && bare_parse_int(argv[2], 1, BARE_THREADS_MAX, &threads) != 0)) {
        fputs(bare_usage_line, stderr);
        return BARE_EXIT_USAGE;
    }
    snprintf(listen_on, sizeof(listen_on), "127.0.0.1:%ld", port);
    snprintf(thread_count, sizeof(thread_count), "%ld", threads);

    /* Blocked before civetweb starts its threads, so only sigwait below receives them. */
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
    signal(SIGPIPE, SIG_IGN);

    mg_init_library(0);
    ctx = mg_start(&callbacks, NULL, options);
    if (ctx == NULL) {
        fprintf(stderr, "bare_server: cannot listen on %s\n", listen_on);
        mg_exit_library();
        return EXIT_FAILURE;
    }
    mg_set_request_handler(ctx, "/", bare_handle, NULL);

    sigwait(&stop_signals, &signal_number);
    mg_stop(ctx);
    mg_exit_library();
    return EXIT_SUCCESS;
}
