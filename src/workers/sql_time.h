/* SPDX-License-Identifier: MIT */
/* SQL fragments that more than one pool's statements share: how an instant leaves the database. */
#ifndef MANAS360_SQL_TIME_H
#define MANAS360_SQL_TIME_H

/* A timestamptz column as RFC 3339 UTC text ("2026-12-03T15:56:38Z"), in SQL; NULL stays NULL. */
#define SQL_TIME_RFC3339(column)                                                                   \
    "to_char(" column " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

#endif
