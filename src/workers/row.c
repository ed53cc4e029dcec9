/* SPDX-License-Identifier: MIT */
/* Typed access to result columns, and the subscription object both pools answer with. */
#include "row.h"

#include <stdlib.h>

const char *row_text(const PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? NULL : PQgetvalue(res, row, col);
}

bool row_bool(const PGresult *res, int row, int col)
{
    return !PQgetisnull(res, row, col) && PQgetvalue(res, row, col)[0] == 't';
}

long long row_int(const PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? 0 : strtoll(PQgetvalue(res, row, col), NULL, 10);
}

json_t *row_subscription_json(const PGresult *res, int row, int first)
{
    if (PQgetisnull(res, row, first))
        return json_null();
    return json_pack("{s:s, s:s?, s:s?, s:b, s:s?, s:s?, s:b}", "id", PQgetvalue(res, row, first),
                     "plan", row_text(res, row, first + 1), "status", row_text(res, row, first + 2),
                     "isTrial", row_bool(res, row, first + 3), "startsAt",
                     row_text(res, row, first + 4), "endsAt", row_text(res, row, first + 5),
                     "autoRenew", row_bool(res, row, first + 6));
}
