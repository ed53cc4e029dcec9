/* SPDX-License-Identifier: MIT */
/*
 * Mail for tests: an SMTP sink on 127.0.0.1 (tests/support/smtp_sink.py) that stores every
 * message it accepts as a file, and readers for a folder of messages, the sink's or MAIL_DIR.
 */
#ifndef MANAS360_TEST_MAIL_H
#define MANAS360_TEST_MAIL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct tmail_sink {
    int port;
    char *dir; /* the messages, one <n>.eml file each, in order of arrival; owned */
    pid_t pid; /* -1 while stopped */
    char log_path[600];
};

/* Makes the sink's folder and picks a free port; starts nothing. */
void tmail_sink_prepare(struct tmail_sink *sink);

/* Starts the sink on its port and waits until it accepts connections. */
void tmail_sink_start(struct tmail_sink *sink);

/* Stops the sink (its stored messages stay). Safe when it is not running. */
void tmail_sink_stop(struct tmail_sink *sink);

/* Stops the sink and removes its folder. */
void tmail_sink_destroy(struct tmail_sink *sink);

/* The number of complete messages in `dir` addressed to `address` (NULL: all of them). */
int tmail_count(const char *dir, const char *address);

/*
 * Waits up to `timeout_ms` for the `nth` (from 1, in file-name order) message to `address`
 * in `dir`, and returns its text (malloc'd), or NULL when it did not come.
 */
char *tmail_wait(const char *dir, const char *address, int nth, int timeout_ms);

/*
 * Copies the token of the first link "<base><page>?token=" in `message` into `out`; false
 * when there is none or it does not fit.
 */
bool tmail_token(const char *message, const char *link_prefix, char *out, size_t size);

#endif
