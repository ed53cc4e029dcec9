/* SPDX-License-Identifier: MIT */
/*
 * What more than one pool shares about reading rows: SQL fragments for how values leave the
 * database, typed access to result columns, and the subscription object of the contract.
 */
#ifndef MANAS360_WORKERS_ROW_H
#define MANAS360_WORKERS_ROW_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>

/* A timestamptz column as RFC 3339 UTC text ("2026-12-03T15:56:38Z"), in SQL; NULL stays NULL. */
#define SQL_TIME_RFC3339(column)                                                                   \
    "to_char(" column " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

/* The ROW_SUBSCRIPTION_COLUMNS columns of vw_users_with_subscription, in the order
 * row_subscription_json() reads them. */
#define SQL_SUBSCRIPTION_COLUMNS                                                                   \
    "subscription_id, plan_name, subscription_status, is_trial, " SQL_TIME_RFC3339(                \
        "starts_at") ", " SQL_TIME_RFC3339("ends_at") ", auto_renew"
#define ROW_SUBSCRIPTION_COLUMNS 7

/* A column as text, or NULL when it is SQL NULL. */
const char *row_text(const PGresult *res, int row, int col);

/* A boolean column; SQL NULL reads as false. */
bool row_bool(const PGresult *res, int row, int col);

/* An integer column; SQL NULL reads as 0. */
long long row_int(const PGresult *res, int row, int col);

/*
 * The contract's subscription object {id, plan, status, isTrial, startsAt, endsAt, autoRenew}
 * from the SQL_SUBSCRIPTION_COLUMNS starting at column `first`; JSON null when the user has
 * none. NULL when out of memory.
 */
json_t *row_subscription_json(const PGresult *res, int row, int first);

#endif
