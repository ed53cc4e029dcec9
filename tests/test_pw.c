/* SPDX-License-Identifier: MIT */
/* Password hashes: argon2id round trips, imported bcrypt hashes, and the dummy's cost. */
#include <crypt.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <criterion/criterion.h>
#include <sodium.h>

#include "manas360/err.h"
#include "manas360/pw.h"

#define TP_PASSWORD "correct horse battery staple"
#define TP_BCRYPT_COST 10
#define TP_TIMING_ROUNDS 3

static void tp_setup(void)
{
    cr_assert_geq(sodium_init(), 0);
}

TestSuite(pw, .init = tp_setup);

static double tp_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* A bcrypt hash of `password` under `prefix`, straight from libcrypt. */
static bool tp_bcrypt_try(const char *prefix, const char *password, char out[PW_HASH_MAX_BYTES])
{
    char setting[CRYPT_GENSALT_OUTPUT_SIZE];
    struct crypt_data *data;
    const char *hash;
    bool ok = false;

    if (crypt_gensalt_rn(prefix, TP_BCRYPT_COST, NULL, 0, setting, sizeof(setting)) == NULL)
        return false;
    data = calloc(1, sizeof(*data));
    cr_assert_not_null(data);
    hash = crypt_r(password, setting, data);
    if (hash != NULL && hash[0] == '$' && strlen(hash) < PW_HASH_MAX_BYTES) {
        snprintf(out, PW_HASH_MAX_BYTES, "%s", hash);
        ok = true;
    }
    sodium_memzero(data, sizeof(*data));
    free(data);
    return ok;
}

/*
 * As above; where libcrypt will not generate `prefix`, the $2b$ hash with its letter swapped,
 * which is the same hash for an ASCII password.
 */
static void tp_bcrypt(const char *prefix, const char *password, char out[PW_HASH_MAX_BYTES])
{
    if (tp_bcrypt_try(prefix, password, out))
        return;
    cr_assert(tp_bcrypt_try("$2b$", password, out));
    out[2] = prefix[2];
}

/* `len` bytes of a fixed pattern, with `last` as the final byte. */
static char *tp_long_password(size_t len, char last)
{
    char *password = malloc(len + 1);

    cr_assert_not_null(password);
    for (size_t i = 0; i < len; i++)
        password[i] = (char)('a' + i % 26);
    password[len - 1] = last;
    password[len] = '\0';
    return password;
}

Test(pw, argon2id_round_trip)
{
    char hash[PW_HASH_MAX_BYTES];
    bool rehash = true;
    double start;

    start = tp_ms();
    cr_assert_eq(pw_hash(TP_PASSWORD, hash), 0);
    fprintf(stderr, "pw: argon2id hash %.1f ms\n", tp_ms() - start);

    cr_expect_eq(strncmp(hash, "$argon2id$", 10), 0);
    cr_expect_eq(pw_verify(TP_PASSWORD, hash, &rehash), 0);
    cr_expect_not(rehash, "a fresh hash asks to be replaced");
    cr_expect_eq(pw_verify(TP_PASSWORD, hash, NULL), 0);
}

Test(pw, wrong_password_refused)
{
    static const char *const wrong[] = {"", "correct horse battery stapl", TP_PASSWORD " ",
                                        "Correct horse battery staple"};
    char hash[PW_HASH_MAX_BYTES];
    bool rehash = true;

    cr_assert_eq(pw_hash(TP_PASSWORD, hash), 0);
    for (size_t i = 0; i < sizeof(wrong) / sizeof(wrong[0]); i++) {
        cr_expect_eq(pw_verify(wrong[i], hash, &rehash), M360_EINVAL, "wrong password %zu", i);
        cr_expect(rehash, "rehash written on a refusal");
    }
}

Test(pw, hashes_are_salted)
{
    char first[PW_HASH_MAX_BYTES];
    char second[PW_HASH_MAX_BYTES];

    cr_assert_eq(pw_hash(TP_PASSWORD, first), 0);
    cr_assert_eq(pw_hash(TP_PASSWORD, second), 0);
    cr_expect_str_neq(first, second);
    cr_expect_eq(pw_verify(TP_PASSWORD, second, NULL), 0);
}

Test(pw, argon2id_counts_bytes_past_72)
{
    char *one = tp_long_password(100, 'X');
    char *other = tp_long_password(100, 'Y');
    char hash[PW_HASH_MAX_BYTES];

    cr_assert_eq(pw_hash(one, hash), 0);
    cr_expect_eq(pw_verify(one, hash, NULL), 0);
    cr_expect_eq(pw_verify(other, hash, NULL), M360_EINVAL);
    one[72] = '\0';
    cr_expect_eq(pw_verify(one, hash, NULL), M360_EINVAL);
    free(one);
    free(other);
}

Test(pw, weak_argon2id_asks_rehash)
{
    char hash[PW_HASH_MAX_BYTES];
    bool rehash = false;

    cr_assert_eq(crypto_pwhash_str(hash, TP_PASSWORD, strlen(TP_PASSWORD),
                                   crypto_pwhash_OPSLIMIT_MIN, crypto_pwhash_MEMLIMIT_MIN),
                 0);
    cr_expect_eq(pw_verify(TP_PASSWORD, hash, &rehash), 0);
    cr_expect(rehash);
}

Test(pw, bcrypt_2b_verifies_and_asks_rehash)
{
    char hash[PW_HASH_MAX_BYTES];
    bool rehash = false;

    cr_assert(tp_bcrypt_try("$2b$", TP_PASSWORD, hash));
    cr_expect_eq(strncmp(hash, "$2b$10$", 7), 0);
    cr_expect_eq(pw_verify(TP_PASSWORD, hash, &rehash), 0);
    cr_expect(rehash, "a bcrypt match must ask for an argon2id hash");

    rehash = false;
    cr_expect_eq(pw_verify("correct horse battery stapler", hash, &rehash), M360_EINVAL);
    cr_expect_not(rehash, "rehash written on a refusal");
}

Test(pw, bcrypt_ignores_nothing_past_72)
{
    char *password = tp_long_password(80, 'Z');
    char hash[PW_HASH_MAX_BYTES];

    /* bcrypt hashes only the first 72 bytes, so this hash would also "match" them all. */
    cr_assert(tp_bcrypt_try("$2b$", password, hash));
    cr_expect_eq(pw_verify(password, hash, NULL), M360_EINVAL, "80 bytes");
    password[73] = '\0';
    cr_expect_eq(pw_verify(password, hash, NULL), M360_EINVAL, "73 bytes");
    password[72] = '\0';
    cr_expect_eq(pw_verify(password, hash, NULL), 0, "72 bytes, all of which bcrypt read");
    free(password);
}

Test(pw, bcrypt_2a_and_2y_accepted)
{
    static const char *const prefixes[] = {"$2a$", "$2y$"};
    char hash[PW_HASH_MAX_BYTES];
    bool rehash;

    for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
        rehash = false;
        tp_bcrypt(prefixes[i], TP_PASSWORD, hash);
        cr_assert_eq(strncmp(hash, prefixes[i], 4), 0);
        cr_expect_eq(pw_verify(TP_PASSWORD, hash, &rehash), 0, "%s", prefixes[i]);
        cr_expect(rehash);
        cr_expect_eq(pw_verify("not the password", hash, NULL), M360_EINVAL);
    }

    /* The letter alone does not change the hash of an ASCII password. */
    cr_assert(tp_bcrypt_try("$2b$", TP_PASSWORD, hash));
    hash[2] = 'y';
    cr_expect_eq(pw_verify(TP_PASSWORD, hash, NULL), 0);
    hash[2] = 'a';
    cr_expect_eq(pw_verify(TP_PASSWORD, hash, NULL), 0);
}

Test(pw, unknown_formats_refused)
{
    static const char *const prefixes[] = {"$1$", "$5$", "$6$"};
    char hash[PW_HASH_MAX_BYTES];
    bool rehash = false;

    cr_expect_eq(pw_verify(TP_PASSWORD, "", &rehash), M360_EINVAL);
    cr_expect_eq(pw_verify(TP_PASSWORD, TP_PASSWORD, &rehash), M360_EINVAL);
    cr_expect_eq(pw_verify(TP_PASSWORD, "$argon2id", &rehash), M360_EINVAL);
    cr_expect_eq(pw_verify(TP_PASSWORD, "$2b$10$short", &rehash), M360_EINVAL);
    cr_expect_eq(pw_verify(TP_PASSWORD, NULL, &rehash), M360_EINVAL);

    /* Real hashes that libcrypt itself would accept, of kinds we never stored. */
    for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
        char setting[CRYPT_GENSALT_OUTPUT_SIZE];
        struct crypt_data *data = calloc(1, sizeof(*data));

        cr_assert_not_null(data);
        if (crypt_gensalt_rn(prefixes[i], 0, NULL, 0, setting, sizeof(setting)) != NULL) {
            const char *stored = crypt_r(TP_PASSWORD, setting, data);

            cr_assert(stored != NULL && stored[0] == '$', "%s", prefixes[i]);
            snprintf(hash, sizeof(hash), "%s", stored);
            cr_expect_eq(pw_verify(TP_PASSWORD, hash, &rehash), M360_EINVAL, "%s", prefixes[i]);
        }
        free(data);
    }

    cr_assert(tp_bcrypt_try("$2b$", TP_PASSWORD, hash));
    hash[2] = 'x';
    cr_expect_eq(pw_verify(TP_PASSWORD, hash, &rehash), M360_EINVAL, "$2x$");

    cr_assert_eq(crypto_pwhash_str_alg(
                     hash, TP_PASSWORD, strlen(TP_PASSWORD), crypto_pwhash_argon2i_OPSLIMIT_MIN,
                     crypto_pwhash_argon2i_MEMLIMIT_MIN, crypto_pwhash_ALG_ARGON2I13),
                 0);
    cr_expect_eq(pw_verify(TP_PASSWORD, hash, &rehash), M360_EINVAL, "argon2i");
    cr_expect_not(rehash, "rehash written on a refusal");
}

static int tp_compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a;
    double y = *(const double *)b;

    return (x > y) - (x < y);
}

static double tp_median(double *values, size_t count)
{
    qsort(values, count, sizeof(values[0]), tp_compare_doubles);
    return values[count / 2];
}

/* The bounds are generous on purpose: the point is "same order", and CI machines are noisy. */
Test(pw, dummy_costs_like_a_real_verify)
{
    double real[TP_TIMING_ROUNDS];
    double dummy[TP_TIMING_ROUNDS];
    char hash[PW_HASH_MAX_BYTES];
    double real_ms;
    double dummy_ms;
    double start;

    cr_assert_eq(pw_hash(TP_PASSWORD, hash), 0);
    pw_verify_dummy(TP_PASSWORD); /* the first call also makes the fixed hash */

    /* Interleaved, so a noisy neighbour slows both kinds alike. */
    for (int i = 0; i < TP_TIMING_ROUNDS; i++) {
        start = tp_ms();
        cr_assert_eq(pw_verify(TP_PASSWORD, hash, NULL), 0);
        real[i] = tp_ms() - start;
        start = tp_ms();
        pw_verify_dummy(TP_PASSWORD);
        dummy[i] = tp_ms() - start;
    }
    real_ms = tp_median(real, TP_TIMING_ROUNDS);
    dummy_ms = tp_median(dummy, TP_TIMING_ROUNDS);
    fprintf(stderr, "pw: verify %.1f ms, dummy verify %.1f ms (medians of %d)\n", real_ms, dummy_ms,
            TP_TIMING_ROUNDS);

    cr_expect_geq(dummy_ms, real_ms * 0.5);
    cr_expect_leq(dummy_ms, real_ms * 2.0);
}
