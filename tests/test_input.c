/* SPDX-License-Identifier: MIT */
/* Request-body validation: the contract's rules for each kind, and the collected fields. */
#include <string.h>

#include <criterion/criterion.h>
#include <jansson.h>

#include "manas360/err.h"
#include "manas360/input.h"

/* A string of `count` copies of `unit`, in a static buffer. */
static const char *repeat(const char *unit, size_t count)
{
    static char buf[4096];
    size_t len = strlen(unit);

    cr_assert_lt(len * count, sizeof(buf));
    for (size_t i = 0; i < count; i++)
        memcpy(buf + i * len, unit, len);
    buf[len * count] = '\0';
    return buf;
}

static bool email_ok(const char *email)
{
    return input_problem(INPUT_EMAIL, email, strlen(email)) == NULL;
}

static bool password_ok(const char *password)
{
    return input_problem(INPUT_PASSWORD, password, strlen(password)) == NULL;
}

Test(input, email_accepts_dot_atoms_and_normalizes)
{
    char out[INPUT_EMAIL_MAX_BYTES];

    cr_expect(email_ok("a@b.co"));
    cr_expect(email_ok("first.last+tag@sub.example-1.org"));
    cr_expect(email_ok("!#$%&'*+-/=?^_`{|}~@x.com"));
    cr_expect(email_ok("a@1.2"));

    cr_assert_eq(input_email_normalize("  John.Doe@Example.COM \t", out), 0);
    cr_expect_str_eq(out, "john.doe@example.com");
}

Test(input, email_refuses_what_the_contract_refuses)
{
    static const char *const bad[] = {
        "",           "plain",       "a..b@x.com", ".a@x.com",  "a.@x.com",       "a@x",
        "a@-x.com",   "a@x-.com",    "a@x..com",   "a@.x.com",  "a@x.com.",       "@x.com",
        "a@",         "a b@x.com",   "a@b@x.com",  "a@x_y.com", "\xc3\xa9@x.com", "a@x.c\xc3\xb6m",
        "a(b)@x.com", "a@[1.2.3.4]",
    };
    char out[INPUT_EMAIL_MAX_BYTES] = "untouched";

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_expect(!email_ok(bad[i]), "accepted \"%s\"", bad[i]);
    cr_expect_eq(input_email_normalize("a..b@x.com", out), M360_EINVAL);
    cr_expect_str_eq(out, "untouched");
}

Test(input, email_length_limit_is_254_after_trimming)
{
    char email[300];

    /* 242 + "@example.com" (12) = 254 characters. */
    snprintf(email, sizeof(email), "%s@example.com", repeat("a", 242));
    cr_expect(email_ok(email));
    snprintf(email, sizeof(email), "  %s@example.com  ", repeat("a", 242));
    cr_expect(email_ok(email));
    snprintf(email, sizeof(email), "%s@example.com", repeat("a", 243));
    cr_expect_str_eq(input_problem(INPUT_EMAIL, email, strlen(email)),
                     "must be at most 254 characters");
}

Test(input, password_counts_characters_not_bytes)
{
    cr_expect(!password_ok(repeat("a", 7)));
    cr_expect(password_ok(repeat("a", 8)));
    cr_expect(password_ok(repeat("a", 128)));
    cr_expect(!password_ok(repeat("a", 129)));

    /* Two-byte and three-byte characters: 7 of them are 14+ bytes but still too few. */
    cr_expect(!password_ok(repeat("\xc3\xa9", 7)));
    cr_expect(password_ok(repeat("\xc3\xa9", 8)));
    cr_expect(password_ok(repeat("\xe2\x82\xac", 128)));
    cr_expect(!password_ok(repeat("\xe2\x82\xac", 129)));
}

Test(input, names_phones_and_uuids)
{
    const char *name100 = repeat("\xc3\xa9", 100);

    cr_expect_null(input_problem(INPUT_NAME, name100, strlen(name100)));
    cr_expect_not_null(input_problem(INPUT_NAME, repeat("x", 101), 101));
    cr_expect_null(input_problem(INPUT_NAME, "", 0));

    cr_expect_null(input_problem(INPUT_PHONE, "+1234567", 8));
    cr_expect_null(input_problem(INPUT_PHONE, "+123456789012345", 16));
    cr_expect_not_null(input_problem(INPUT_PHONE, "+123456", 7));
    cr_expect_not_null(input_problem(INPUT_PHONE, "+1234567890123456", 17));
    cr_expect_not_null(input_problem(INPUT_PHONE, "1234567", 7));
    cr_expect_not_null(input_problem(INPUT_PHONE, "+12345a7", 8));
    cr_expect_not_null(input_problem(INPUT_PHONE, "+", 1));
    cr_expect_not_null(input_problem(INPUT_PHONE, "", 0));

    cr_expect(input_uuid_valid("123e4567-e89b-12d3-a456-426614174000"));
    cr_expect(input_uuid_valid("123E4567-E89B-12D3-A456-426614174000"));
    cr_expect(!input_uuid_valid("123e4567e89b12d3a456426614174000"));
    cr_expect(!input_uuid_valid("123e4567-e89b-12d3-a456-42661417400g"));
    cr_expect(!input_uuid_valid(NULL));
}

Test(input, utf8_helpers_never_split_a_character)
{
    const char *text = "a\xc3\xa9\xe2\x82\xac"
                       "b"; /* a, e-acute, euro, b */

    cr_expect_eq(input_utf8_chars(text, strlen(text)), 4);
    cr_expect_eq(input_utf8_prefix(text, strlen(text), 0), 0);
    cr_expect_eq(input_utf8_prefix(text, strlen(text), 2), 3);
    cr_expect_eq(input_utf8_prefix(text, strlen(text), 3), 6);
    cr_expect_eq(input_utf8_prefix(text, strlen(text), 10), strlen(text));
}

static const struct input_field spec[] = {
    {"email", INPUT_EMAIL, INPUT_REQUIRED, 0},    {"password", INPUT_PASSWORD, INPUT_REQUIRED, 0},
    {"firstName", INPUT_NAME, INPUT_NULLABLE, 0}, {"note", INPUT_STRING, INPUT_OPTIONAL, 5},
    {"flag", INPUT_BOOLEAN, INPUT_OPTIONAL, 0},
};

#define NSPEC (sizeof(spec) / sizeof(spec[0]))

/* Checks `text` and returns the reason given for `name`, or NULL. */
static json_t *check(const char *text)
{
    json_t *body = json_loads(text, 0, NULL);
    json_t *fields = NULL;
    int rc;

    cr_assert_not_null(body, "bad test JSON: %s", text);
    rc = input_check(body, spec, NSPEC, &fields);
    json_decref(body);
    cr_assert_eq(rc == 0, fields == NULL);
    return fields;
}

static const char *reason(const json_t *fields, const char *name)
{
    return json_string_value(json_object_get(fields, name));
}

Test(input, check_passes_a_good_body)
{
    cr_expect_null(check("{\"email\":\"a@b.co\",\"password\":\"12345678\",\"firstName\":null,"
                         "\"note\":\"hi\",\"flag\":true}"));
}

Test(input, check_collects_every_problem)
{
    json_t *fields = check("{\"email\":42,\"firstName\":[\"x\"],\"role\":\"admin\","
                           "\"note\":\"toolong\",\"flag\":\"yes\"}");

    cr_assert_not_null(fields);
    cr_expect_str_eq(reason(fields, "email"), "must be a string");
    cr_expect_str_eq(reason(fields, "password"), "is required");
    cr_expect_str_eq(reason(fields, "firstName"), "must be a string");
    cr_expect_str_eq(reason(fields, "role"), "unknown field");
    cr_expect_str_eq(reason(fields, "note"), "is too long");
    cr_expect_str_eq(reason(fields, "flag"), "must be a boolean");
    cr_expect_eq(json_object_size(fields), 6);
    json_decref(fields);
}

Test(input, check_refuses_null_where_not_nullable_and_embedded_nul)
{
    json_t *body = json_pack("{s:n, s:s%}", "email", "password", "abc\0defgh", (size_t)9);
    json_t *fields = NULL;

    cr_assert_not_null(body);
    cr_expect_eq(input_check(body, spec, NSPEC, &fields), M360_EINVAL);
    cr_expect_str_eq(reason(fields, "email"), "must be a string");
    cr_expect_str_eq(reason(fields, "password"), "must not contain NUL characters");
    json_decref(fields);
    json_decref(body);
}

Test(input, check_refuses_a_body_that_is_not_an_object)
{
    json_t *body = json_array();
    json_t *fields = NULL;

    cr_expect_eq(input_check(body, spec, NSPEC, &fields), M360_EINVAL);
    cr_expect_not_null(reason(fields, "body"));
    json_decref(fields);
    json_decref(body);
}

Test(input, accessors)
{
    json_t *body = json_pack("{s:s, s:n, s:i}", "a", "x", "b", "c", 1);

    cr_expect_str_eq(input_str(body, "a"), "x");
    cr_expect_null(input_str(body, "b"));
    cr_expect_null(input_str(body, "c"));
    cr_expect(input_has(body, "b"));
    cr_expect(!input_has(body, "d"));
    json_decref(body);
}
