/* SPDX-License-Identifier: MIT */
/* Names and HTTP mappings of the shared status codes. */
#include "manas360/err.h"

#include <stddef.h>

struct err_row {
    int code;
    const char *str;
    int http_status;
    const char *api_name;
};

static const struct err_row err_rows[] = {
    {M360_OK, "ok", 200, ""},
    {M360_EINVAL, "einval", 400, "ValidationError"},
    {M360_ENOTFOUND, "enotfound", 404, "NotFound"},
    {M360_ECONFLICT, "econflict", 409, "Conflict"},
    {M360_EDB, "edb", 500, "InternalError"},
    {M360_EUNAVAILABLE, "eunavailable", 503, "ServiceUnavailable"},
    {M360_ETIMEDOUT, "etimedout", 503, "ServiceUnavailable"},
    {M360_ENOMEM, "enomem", 500, "InternalError"},
    {M360_EIO, "eio", 500, "InternalError"},
    {M360_ECHANGED, "echanged", 500, "InternalError"},
    {M360_EINTERNAL, "einternal", 500, "InternalError"},
    {M360_ELIMIT, "elimit", 429, "RateLimitExceeded"},
};

static const struct err_row *err_row_find(int code)
{
    for (size_t i = 0; i < sizeof(err_rows) / sizeof(err_rows[0]); i++) {
        if (err_rows[i].code == code)
            return &err_rows[i];
    }
    return &err_rows[sizeof(err_rows) / sizeof(err_rows[0]) - 1];
}

const char *err_str(int code)
{
    return err_row_find(code)->str;
}

int err_http_status(int code)
{
    return err_row_find(code)->http_status;
}

const char *err_api_name(int code)
{
    return err_row_find(code)->api_name;
}
