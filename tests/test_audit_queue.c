/* SPDX-License-Identifier: MIT */
/*
 * The front end's audit queue: batches come out oldest first, a batch that could not be
 * sent goes back in front, and the bound drops (and counts) what does not fit.
 */
#include <criterion/criterion.h>

#include "manas360/audit_queue.h"
#include "manas360/log.h"

static void push_numbered(struct audit_queue *queue, int first, int count)
{
    for (int n = first; n < first + count; n++)
        audit_queue_push(queue, json_pack("{s:i}", "n", n));
}

static int number_at(const json_t *batch, size_t i)
{
    return (int)json_integer_value(json_object_get(json_array_get(batch, i), "n"));
}

/* Takes a batch and expects `count` events numbered from `first`. */
static void expect_batch(struct audit_queue *queue, int first, size_t count)
{
    json_t *batch = audit_queue_take(queue);

    cr_assert_not_null(batch);
    cr_expect_eq(json_array_size(batch), count);
    for (size_t i = 0; i < json_array_size(batch); i++)
        cr_expect_eq(number_at(batch, i), first + (int)i, "event %zu", i);
    json_decref(batch);
}

Test(audit_queue, batches_come_oldest_first_and_a_requeue_goes_in_front)
{
    struct audit_queue *queue = audit_queue_new();
    json_t *batch;

    log_init(LOG_LEVEL_ERR, NULL);
    cr_assert_not_null(queue);
    cr_expect_null(audit_queue_take(queue));
    push_numbered(queue, 0, 1234);

    batch = audit_queue_take(queue);
    cr_assert_eq(json_array_size(batch), AUDIT_QUEUE_BATCH);
    push_numbered(queue, 1234, 1);
    audit_queue_requeue(queue, batch);

    expect_batch(queue, 0, AUDIT_QUEUE_BATCH);
    expect_batch(queue, 500, AUDIT_QUEUE_BATCH);
    expect_batch(queue, 1000, 235);
    cr_expect_null(audit_queue_take(queue));
    cr_expect_eq(audit_queue_dropped(queue), 0);
    audit_queue_destroy(&queue);
}

Test(audit_queue, the_bound_drops_and_counts)
{
    struct audit_queue *queue = audit_queue_new();
    json_t *batch;

    log_init(LOG_LEVEL_ERR, NULL);
    push_numbered(queue, 0, AUDIT_QUEUE_MAX + 10);
    cr_expect_eq(audit_queue_dropped(queue), 10);

    /* A full queue takes its batch back, and the newest events make room. */
    batch = audit_queue_take(queue);
    push_numbered(queue, AUDIT_QUEUE_MAX + 10, 200);
    audit_queue_requeue(queue, batch);
    cr_expect_eq(audit_queue_dropped(queue), 210);
    expect_batch(queue, 0, AUDIT_QUEUE_BATCH);
    audit_queue_destroy(&queue);
}
