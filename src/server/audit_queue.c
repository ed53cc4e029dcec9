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

json_t *audit_queue_take(struct audit_queue *queue)
{
    json_t *batch = NULL;

    pthread_mutex_lock(&queue->lock);
    if (json_array_size(queue->events) <= AUDIT_QUEUE_BATCH && json_array_size(queue->events) > 0) {
        batch = queue->events;
        queue->events = json_array();
        if (queue->events == NULL) {
            queue->events = batch;
            batch = NULL;
        }
    } else if (json_array_size(queue->events) > 0) {
        batch = json_array();
        for (size_t i = 0; batch != NULL && i < AUDIT_QUEUE_BATCH; i++)
            json_array_append(batch, json_array_get(queue->events, i));
        for (size_t i = 0; batch != NULL && i < AUDIT_QUEUE_BATCH; i++)
            json_array_remove(queue->events, 0);
    }
    pthread_mutex_unlock(&queue->lock);
    return batch;
}

void audit_queue_requeue(struct audit_queue *queue, json_t *batch)
{
    size_t dropped = 0;

    pthread_mutex_lock(&queue->lock);
    for (size_t i = json_array_size(batch); i > 0; i--) {
        if (json_array_size(queue->events) < AUDIT_QUEUE_MAX)
            json_array_insert(queue->events, 0, json_array_get(batch, i - 1));
        else
            dropped++;
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
