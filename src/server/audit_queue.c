/* SPDX-License-Identifier: MIT */
/* A bounded queue of audit events, shared by every request thread. */
#include "manas360/audit_queue.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "manas360/log.h"

#define AUDIT_QUEUE_LOG_MODULE "audit_queue"

struct audit_queue {
    pthread_mutex_t lock;
    json_t *events; /* an array, oldest first */
    atomic_uint_fast64_t dropped;
};

struct audit_queue *audit_queue_new(void)
{
    struct audit_queue *queue = calloc(1, sizeof(*queue));

    if (queue == NULL)
        return NULL;
    queue->events = json_array();
    if (queue->events == NULL) {
        free(queue);
        return NULL;
    }
    pthread_mutex_init(&queue->lock, NULL);
    atomic_init(&queue->dropped, 0);
    return queue;
}

void audit_queue_destroy(struct audit_queue **queue)
{
    if (queue == NULL || *queue == NULL)
        return;
    if (json_array_size((*queue)->events) > 0)
        log_warn(AUDIT_QUEUE_LOG_MODULE, "event=unsent_at_exit events=%zu",
                 json_array_size((*queue)->events));
    json_decref((*queue)->events);
    pthread_mutex_destroy(&(*queue)->lock);
    free(*queue);
    *queue = NULL;
}

static void audit_queue_drop(struct audit_queue *queue, size_t count)
{
    atomic_fetch_add(&queue->dropped, count);
    log_warn(AUDIT_QUEUE_LOG_MODULE, "event=dropped events=%zu", count);
}

void audit_queue_push(struct audit_queue *queue, json_t *event)
{
    int rc = -1;

    pthread_mutex_lock(&queue->lock);
    if (event != NULL && json_array_size(queue->events) < AUDIT_QUEUE_MAX)
        rc = json_array_append_new(queue->events, event);
    else
        json_decref(event);
    pthread_mutex_unlock(&queue->lock);
    if (rc != 0)
        audit_queue_drop(queue, 1);
}

/* Appends the items of `src` from `first` to `last` (excluded) to `dst`; false without
 * memory. */
static bool audit_array_append_range(json_t *dst, json_t *src, size_t first, size_t last)
{
    for (size_t i = first; i < last; i++) {
        if (json_array_append(dst, json_array_get(src, i)) != 0)
            return false;
    }
    return true;
}

/* The items of `src` from `first` to `last` (excluded), as a new array; NULL without
 * memory. */
static json_t *audit_array_slice(json_t *src, size_t first, size_t last)
{
    json_t *slice = json_array();

    if (slice != NULL && !audit_array_append_range(slice, src, first, last)) {
        json_decref(slice);
        slice = NULL;
    }
    return slice;
}

/* A take splits the queue into two new arrays, and a requeue joins two, rather than shifting
 * events one at a time: each costs the queue's length once, however long the backlog. */
json_t *audit_queue_take(struct audit_queue *queue)
{
    json_t *batch = NULL;
    json_t *rest = NULL;
    size_t size;

    pthread_mutex_lock(&queue->lock);
    size = json_array_size(queue->events);
    if (size > AUDIT_QUEUE_BATCH) {
        batch = audit_array_slice(queue->events, 0, AUDIT_QUEUE_BATCH);
        rest = batch != NULL ? audit_array_slice(queue->events, AUDIT_QUEUE_BATCH, size) : NULL;
    } else if (size > 0) {
        batch = json_incref(queue->events);
        rest = json_array();
    }
    if (rest != NULL) {
        json_decref(queue->events);
        queue->events = rest;
    } else {
        json_decref(batch); /* out of memory: the events stay queued */
        batch = NULL;
    }
    pthread_mutex_unlock(&queue->lock);
    return batch;
}

void audit_queue_requeue(struct audit_queue *queue, json_t *batch)
{
    size_t dropped;
    size_t kept;
    json_t *joined;

    /* The batch goes back in front; what no longer fits under the bound is dropped. */
    pthread_mutex_lock(&queue->lock);
    joined = audit_array_slice(batch, 0, json_array_size(batch));
    kept = json_array_size(queue->events);
    if (joined != NULL && json_array_size(joined) + kept > AUDIT_QUEUE_MAX)
        kept = AUDIT_QUEUE_MAX > json_array_size(joined) ? AUDIT_QUEUE_MAX - json_array_size(joined)
                                                         : 0;
    if (joined != NULL && audit_array_append_range(joined, queue->events, 0, kept)) {
        dropped = json_array_size(queue->events) - kept;
        json_decref(queue->events);
        queue->events = joined;
    } else {
        dropped = json_array_size(batch);
        json_decref(joined);
    }
    pthread_mutex_unlock(&queue->lock);
    json_decref(batch);
    if (dropped > 0)
        audit_queue_drop(queue, dropped);
}

uint64_t audit_queue_dropped(struct audit_queue *queue)
{
    return atomic_load(&queue->dropped);
}
