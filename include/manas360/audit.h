/* SPDX-License-Identifier: MIT */
/*
 * The audit writer: events that no transaction of their own records (access denials, and
 * whatever else a process pushes) travel over ZeroMQ, PUSH to PULL, to the process that runs
 * the audit part, which writes them in batches with COPY into the month's partition of
 * audit_logs. It also keeps the partitions: the coming months are created ahead, and months
 * past AUDIT_RETENTION_DAYS are dropped, on a timer.
 *
 * A message is one or more rows rendered by audit_rows_add() (audit_row.h): the producer
 * pays for rendering, off its request path, and the writer only concatenates and copies.
 *
 * Durability: a batch that cannot be written goes at once to a file under
 * MANAS360_VAR_DIR/audit-spool, and the files are written when the database is back (oldest
 * first, before anything newer). On stop, everything received is written, or spooled, and
 * spooled files are written at the next start. A batch the database refuses is written row
 * by row, and only the rows it refuses are set aside, in ".refused" files for an operator.
 * A kill -9 loses what was received and neither written nor spooled: about
 * AUDIT_WRITER_FLUSH_MS of events, plus what still waits in the ZeroMQ queues when events
 * arrive faster than they can be written.
 */
#ifndef MANAS360_AUDIT_H
#define MANAS360_AUDIT_H

#include "manas360/cfg.h"
#include "manas360/pool.h"

#define AUDIT_WRITER_FLUSH_MS 200         /* a batch is written at least this often */
#define AUDIT_WRITER_BATCH 10000          /* events per COPY, at most about */
#define AUDIT_WRITER_RETENTION_MS 3600000 /* how often partitions are kept in order */
#define AUDIT_WRITER_MONTHS_AHEAD 2

/* The audit pool: it answers ping, for /readyz; the writer below does the work. */
extern const struct pool_def audit_pool_def;

struct audit_writer;

/*
 * Binds cfg->audit_ingest_endpoint (PULL) in `zmq_ctx` and starts the writer thread, which
 * connects to the database when it can. Returns NULL when the endpoint cannot be bound.
 */
struct audit_writer *audit_writer_new(void *zmq_ctx, const struct cfg *cfg);

/* Writes (or spools) everything received, stops the thread and frees the writer. */
void audit_writer_destroy(struct audit_writer **writer);

#endif
