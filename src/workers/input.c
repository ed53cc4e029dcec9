/* SPDX-License-Identifier: MIT */
/* Request-body validation: the contract's rules for emails, passwords, names and phones. */
#include "manas360/input.h"

#include <string.h>

#include "manas360/err.h"

#define INPUT_ATEXT_SPECIALS "!#$%&'*+-/=?^_`{|}~"

static const char input_reason_unknown[] = "unknown field";
static const char input_reason_required[] = "is required";
static const char input_reason_nul[] = "must not contain NUL characters";
static const char input_reason_email[] = "must be a valid email address";
static const char input_reason_email_long[] = "must be at most 254 characters";
static const char input_reason_password[] = "must be 8 to 128 characters";
static const char input_reason_name[] = "must be at most 100 characters";
static const char input_reason_phone[] = "must be + followed by 7 to 15 digits";
static const char input_reason_uuid[] = "must be a UUID";
static const char input_reason_too_long[] = "is too long";

size_t input_utf8_chars(const char *text, size_t len)
{
    size_t chars = 0;

    /* Every byte that is not a continuation byte (10xxxxxx) starts a character. */
    for (size_t i = 0; i < len; i++)
        chars += ((unsigned char)text[i] & 0xC0u) != 0x80u;
    return chars;
}

size_t input_utf8_prefix(const char *text, size_t len, size_t max_chars)
{
    size_t chars = 0;

    for (size_t i = 0; i < len; i++) {
        if (((unsigned char)text[i] & 0xC0u) == 0x80u)
            continue;
        if (chars == max_chars)
            return i;
        chars++;
    }
    return len;
}

static bool input_is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool input_is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static char input_ascii_lower(char c)
{
    return (char)((c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c);
}

static bool input_is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static bool input_is_atext(char c)
{
    return input_is_alpha(c) || input_is_digit(c) ||
           (c != '\0' && strchr(INPUT_ATEXT_SPECIALS, c) != NULL);
}

/* A dot-atom: atoms of atext joined by single dots, no dot first or last. */
static bool input_local_valid(const char *text, size_t len)
{
    bool after_dot = true;

    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (text[i] == '.') {
            if (after_dot)
                return false;
            after_dot = true;
        } else if (input_is_atext(text[i])) {
            after_dot = false;
        } else {
            return false;
        }
    }
    return !after_dot;
}

/* Two or more labels of letters and digits, with hyphens inside a label only. */
static bool input_domain_valid(const char *text, size_t len)
{
    size_t labels = 0;
    size_t start = 0;

    for (size_t i = 0; i <= len; i++) {
        if (i < len && text[i] != '.') {
            if (!input_is_alpha(text[i]) && !input_is_digit(text[i]) && text[i] != '-')
                return false;
            continue;
        }
        if (i == start || text[start] == '-' || text[i - 1] == '-')
            return false;
        labels++;
        start = i + 1;
    }
    return labels >= 2;
}

/* Trims ASCII white space; the result is the span [*from, *from + *n). */
static void input_trim(const char *text, size_t len, size_t *from, size_t *n)
{
    size_t start = 0;
    size_t end = len;

    while (start < end && input_is_space(text[start]))
        start++;
    while (end > start && input_is_space(text[end - 1]))
        end--;
    *from = start;
    *n = end - start;
}

static const char *input_email_problem(const char *text, size_t len)
{
    const char *at;
    size_t from;
    size_t n;

    input_trim(text, len, &from, &n);
    text += from;
    if (input_utf8_chars(text, n) > INPUT_EMAIL_MAX_CHARS)
        return input_reason_email_long;
    at = memchr(text, '@', n);
    if (at == NULL)
        return input_reason_email;
    if (!input_local_valid(text, (size_t)(at - text)) ||
        !input_domain_valid(at + 1, n - (size_t)(at - text) - 1))
        return input_reason_email;
    return NULL;
}

static const char *input_phone_problem(const char *text, size_t len)
{
    size_t digits;

    if (len < 1 || text[0] != '+')
        return input_reason_phone;
    digits = len - 1;
    if (digits < INPUT_PHONE_MIN_DIGITS || digits > INPUT_PHONE_MAX_DIGITS)
        return input_reason_phone;
    for (size_t i = 1; i < len; i++) {
        if (!input_is_digit(text[i]))
            return input_reason_phone;
    }
    return NULL;
}

static bool input_hex_digit(char c)
{
    return input_is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static bool input_uuid_span_valid(const char *text, size_t len)
{
    if (len != INPUT_UUID_CHARS)
        return false;
    for (size_t i = 0; i < len; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;

        if (dash ? text[i] != '-' : !input_hex_digit(text[i]))
            return false;
    }
    return true;
}

bool input_uuid_valid(const char *text)
{
    return text != NULL && input_uuid_span_valid(text, strlen(text));
}

const char *input_problem(enum input_kind kind, const char *text, size_t len)
{
    size_t chars;

    switch (kind) {
    case INPUT_EMAIL:
        return input_email_problem(text, len);
    case INPUT_PASSWORD:
        chars = input_utf8_chars(text, len);
        if (chars < INPUT_PASSWORD_MIN_CHARS || chars > INPUT_PASSWORD_MAX_CHARS)
            return input_reason_password;
        return NULL;
    case INPUT_NAME:
        return input_utf8_chars(text, len) > INPUT_NAME_MAX_CHARS ? input_reason_name : NULL;
    case INPUT_PHONE:
        return input_phone_problem(text, len);
    case INPUT_UUID:
        return input_uuid_span_valid(text, len) ? NULL : input_reason_uuid;
    case INPUT_STRING:
    case INPUT_BOOLEAN:
    case INPUT_ARRAY:
        break;
    }
    return NULL;
}

int input_email_normalize(const char *text, char out[INPUT_EMAIL_MAX_BYTES])
{
    size_t len = strlen(text);
    size_t from;
    size_t n;

    if (input_email_problem(text, len) != NULL)
        return M360_EINVAL;

    /* A valid email is ASCII, so characters are bytes and tolower is exact. */
    input_trim(text, len, &from, &n);
    for (size_t i = 0; i < n; i++)
        out[i] = input_ascii_lower(text[from + i]);
    out[n] = '\0';
    return 0;
}

static const char *input_type_reason(enum input_kind kind)
{
    if (kind == INPUT_BOOLEAN)
        return "must be a boolean";
    return kind == INPUT_ARRAY ? "must be an array" : "must be a string";
}

/* The reason one present member is refused, or NULL. */
static const char *input_value_problem(const struct input_field *field, const json_t *value)
{
    const char *text;
    size_t len;

    if (json_is_null(value))
        return (field->flags & INPUT_NULLABLE) ? NULL : input_type_reason(field->kind);
    if (field->kind == INPUT_BOOLEAN)
        return json_is_boolean(value) ? NULL : input_type_reason(field->kind);
    if (field->kind == INPUT_ARRAY)
        return json_is_array(value) ? NULL : input_type_reason(field->kind);
    if (!json_is_string(value))
        return input_type_reason(field->kind);

    /* PostgreSQL text cannot hold NUL, and C would see a shorter string than JSON did. */
    text = json_string_value(value);
    len = json_string_length(value);
    if (strlen(text) != len)
        return input_reason_nul;
    if (field->kind == INPUT_STRING)
        return (field->max_chars != 0 && input_utf8_chars(text, len) > field->max_chars)
                   ? input_reason_too_long
                   : NULL;
    return input_problem(field->kind, text, len);
}

static const struct input_field *input_spec_find(const struct input_field *spec, size_t nspec,
                                                 const char *name)
{
    for (size_t i = 0; i < nspec; i++) {
        if (strcmp(spec[i].name, name) == 0)
            return &spec[i];
    }
    return NULL;
}

/* Adds one problem; false when memory ran out. */
static bool input_fields_add(json_t **fields, const char *name, const char *reason)
{
    if (*fields == NULL)
        *fields = json_object();
    return *fields != NULL && json_object_set_new(*fields, name, json_string(reason)) == 0;
}

int input_check(const json_t *body, const struct input_field *spec, size_t nspec, json_t **fields)
{
    json_t *found = NULL;
    bool ok = true;

    if (!json_is_object(body)) {
        ok = input_fields_add(&found, "body", "must be an object");
        goto done;
    }

    /* Every member must be known. The iterator API wants a mutable object; it reads only. */
    for (void *it = json_object_iter((json_t *)body); it != NULL;
         it = json_object_iter_next((json_t *)body, it)) {
        const char *name = json_object_iter_key(it);
        const struct input_field *field = input_spec_find(spec, nspec, name);
        const char *reason = field != NULL ? input_value_problem(field, json_object_iter_value(it))
                                           : input_reason_unknown;

        if (reason != NULL)
            ok = ok && input_fields_add(&found, name, reason);
    }
    for (size_t i = 0; i < nspec; i++) {
        if ((spec[i].flags & INPUT_REQUIRED) && json_object_get(body, spec[i].name) == NULL)
            ok = ok && input_fields_add(&found, spec[i].name, input_reason_required);
    }

done:
    if (!ok) {
        json_decref(found);
        return M360_ENOMEM;
    }
    *fields = found;
    return found != NULL ? M360_EINVAL : 0;
}

const char *input_str(const json_t *body, const char *name)
{
    return json_string_value(json_object_get(body, name));
}

bool input_has(const json_t *body, const char *name)
{
    return json_object_get(body, name) != NULL;
}
