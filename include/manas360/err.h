/* SPDX-License-Identifier: MIT */
/* Status codes shared by every module, and their mapping to the HTTP contract's errors. */
#ifndef MANAS360_ERR_H
#define MANAS360_ERR_H

/*
 * A function that can fail returns 0 or one of these negative codes. The code is a value,
 * not a global, so it survives calls into libpq or jansson that clobber errno.
 */
enum m360_err {
    M360_OK = 0,
    M360_EINVAL = -1,       /* bad input from a caller: 400 ValidationError */
    M360_ENOTFOUND = -2,    /* no such resource: 404 NotFound */
    M360_ECONFLICT = -3,    /* uniqueness clash: 409 Conflict */
    M360_EDB = -4,          /* the database refused or failed a statement: 500 */
    M360_EUNAVAILABLE = -5, /* the database or a pool cannot be reached: 503 */
    M360_ETIMEDOUT = -6,    /* a deadline passed: 503 */
    M360_ENOMEM = -7,       /* an allocation failed: 500 */
    M360_EIO = -8,          /* a file or socket operation failed: 500 */
    M360_ECHANGED = -9,     /* an applied migration's file was edited since */
    M360_EINTERNAL = -10,   /* a broken invariant: 500 InternalError */
    M360_ELIMIT = -11,      /* a monthly quota is used up: 429 RateLimitExceeded */
};

/* A short stable name for logs ("einval"); never NULL. Thread-safe. */
const char *err_str(int code);

/* The HTTP status the contract gives a code (0 maps to 200). Thread-safe. */
int err_http_status(int code);

/* The contract's `error` name for a code ("ValidationError"); never NULL. Thread-safe. */
const char *err_api_name(int code);

#endif
