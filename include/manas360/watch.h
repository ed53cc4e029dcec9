/* SPDX-License-Identifier: MIT */
/*
 * A thread that LISTENs on PostgreSQL channels with its own connection and hands each
 * notification to its channel's callback. Notifications arrive only after the announcing
 * transaction commits, so a callback never hears of data it could not yet read. After a lost
 * connection nobody knows what was missed: on every (re)connect `on_reconnect` runs, and the
 * caches it serves forget what they hold.
 */
#ifndef MANAS360_WATCH_H
#define MANAS360_WATCH_H

#include <stdbool.h>

#include "manas360/cfg.h"

#define WATCH_CHANNELS_MAX 4

typedef void (*watch_notify_fn)(void *arg, const char *payload);
typedef void (*watch_reconnect_fn)(void *arg);

struct watch_channel {
    const char *name; /* a constant identifier: it is written into LISTEN as it is */
    watch_notify_fn on_notify;
    void *arg;
};

struct watch;

/*
 * Starts watching `channels` (an array of `count`, copied) on cfg->database_url. Callbacks run
 * on the watch thread. Returns NULL when the thread cannot start.
 */
struct watch *watch_new(const struct cfg *cfg, const struct watch_channel *channels, int count,
                        watch_reconnect_fn on_reconnect, void *reconnect_arg);

/* Stops the thread, closes its connection, frees it and sets *watch to NULL. */
void watch_destroy(struct watch **watch);

/* True while the LISTEN connection is up. Thread-safe. */
bool watch_connected(struct watch *watch);

#endif
