/* SPDX-License-Identifier: MIT */
/*
 * Request-body validation: each member of a client's JSON object is checked against a small
 * table of fields, and every problem is collected into a {name: reason} object, which is the
 * `fields` of a 400 ValidationError. The single-value checks are exposed for other callers.
 */
#ifndef MANAS360_INPUT_H
#define MANAS360_INPUT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define INPUT_EMAIL_MAX_CHARS 254
#define INPUT_EMAIL_MAX_BYTES (INPUT_EMAIL_MAX_CHARS + 1) /* an email is ASCII, plus a NUL */
#define INPUT_PASSWORD_MIN_CHARS 8
#define INPUT_PASSWORD_MAX_CHARS 128
#define INPUT_NAME_MAX_CHARS 100
#define INPUT_PHONE_MIN_DIGITS 7
#define INPUT_PHONE_MAX_DIGITS 15
#define INPUT_UUID_CHARS 36

/* What a field holds; each kind has one rule, stated in the contract. */
enum input_kind {
    INPUT_STRING,   /* any string; bounded by max_chars when that is not 0 */
    INPUT_EMAIL,    /* local@domain, checked after trimming, at most 254 characters */
    INPUT_PASSWORD, /* 8 to 128 characters, every one counted */
    INPUT_NAME,     /* at most 100 characters */
    INPUT_PHONE,    /* "+" then 7 to 15 digits */
    INPUT_UUID,     /* 8-4-4-4-12 hex digits */
    INPUT_BOOLEAN,
    INPUT_ARRAY, /* any JSON array; the caller checks its elements */
};

#define INPUT_OPTIONAL 0u
#define INPUT_REQUIRED 1u /* absence is a problem */
#define INPUT_NULLABLE 2u /* JSON null is accepted (and means "clear" or "absent") */

/* One allowed member of a request body. */
struct input_field {
    const char *name;
    enum input_kind kind;
    unsigned flags;
    size_t max_chars; /* INPUT_STRING only; 0 for no limit */
};

/*
 * Checks every member of `body` against `spec` (`nspec` fields): members not in the spec,
 * missing required members, wrong JSON types, strings with an embedded NUL and values that
 * break their kind's rule. Returns 0, or M360_EINVAL with *fields set to a new object
 * {name: reason} that the caller owns (M360_ENOMEM leaves *fields NULL). A body that is not
 * an object is a problem named "body". Thread-safe.
 */
int input_check(const json_t *body, const struct input_field *spec, size_t nspec, json_t **fields);

/* The string member `name` of `body`, or NULL when it is absent, null or not a string. */
const char *input_str(const json_t *body, const char *name);

/* True when `body` has a member `name`, even a null one. */
bool input_has(const json_t *body, const char *name);

/*
 * The reason `text` (`len` bytes) is not an acceptable value of `kind`, or NULL when it is.
 * Reasons are short English phrases for the `fields` object. INPUT_STRING, INPUT_BOOLEAN
 * and INPUT_ARRAY have no rule on text and answer NULL.
 */
const char *input_problem(enum input_kind kind, const char *text, size_t len);

/*
 * Writes the stored form of an email (trimmed, lower-cased) to `out`. Returns 0, or
 * M360_EINVAL when the email breaks the contract's rules (out is then untouched).
 */
int input_email_normalize(const char *text, char out[INPUT_EMAIL_MAX_BYTES]);

/* True for a UUID in text, either case. */
bool input_uuid_valid(const char *text);

/* The number of characters (UTF-8 code points) in `len` bytes of valid UTF-8. */
size_t input_utf8_chars(const char *text, size_t len);

/*
 * The byte length of the longest prefix of `text` (`len` bytes of valid UTF-8) that holds
 * at most `max_chars` characters, so a cut never splits a character.
 */
size_t input_utf8_prefix(const char *text, size_t len, size_t max_chars);

#endif
