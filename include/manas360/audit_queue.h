/* SPDX-License-Identifier: MIT */
/*
 * The front end's queue of audit events for the audit pool: a request pushes and goes on,
 * and a housekeeping thread sends the queue in batches. Bounded: when the pool cannot keep
 * up, events beyond AUDIT_QUEUE_MAX are counted as dropped and logged.
 */
#ifndef MANAS360_AUDIT_QUEUE_H
#define MANAS360_AUDIT_QUEUE_H

#include <jansson.h>
#include <stdint.h>

#define AUDIT_QUEUE_MAX 100000
#define AUDIT_QUEUE_BATCH 500

struct audit_queue;

struct audit_queue *audit_queue_new(void);

/* Frees the queue and any event still in it; sets *queue to NULL. */
void audit_queue_destroy(struct audit_queue **queue);

/* Queues one event object (stolen; NULL is counted as dropped). Thread-safe. */
void audit_queue_push(struct audit_queue *queue, json_t *event);

/* Up to AUDIT_QUEUE_BATCH events as a new array, or NULL when the queue is empty. */
json_t *audit_queue_take(struct audit_queue *queue);

/* Puts a batch that could not be sent back at the front, within the bound. */
void audit_queue_requeue(struct audit_queue *queue, json_t *batch);

/* Events dropped since the start. */
uint64_t audit_queue_dropped(struct audit_queue *queue);

#endif
