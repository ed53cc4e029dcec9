/* SPDX-License-Identifier: MIT */
/*
 * Password hashes: argon2id for everything we write, bcrypt still accepted for accounts
 * imported with one, and a dummy verification that makes unknown accounts cost the same.
 */
#include "manas360/pw.h"

#include <crypt.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "manas360/err.h"

/*
 * libsodium's interactive limits: 2 passes over 64 MiB. One hash measured 104-123 ms on the
 * idle 2-core AMD EPYC build host, inside our 50-150 ms budget for a login: left untuned.
 */
#define PW_OPSLIMIT crypto_pwhash_OPSLIMIT_INTERACTIVE
#define PW_MEMLIMIT crypto_pwhash_MEMLIMIT_INTERACTIVE
#define PW_ARGON2ID_PREFIX "$argon2id$"
#define PW_BCRYPT_MAX_BYTES 72 /* bcrypt reads no further into a password */
#define PW_DUMMY_SECRET_BYTES 32

_Static_assert(crypto_pwhash_STRBYTES <= PW_HASH_MAX_BYTES, "an argon2id string fits");

/* Written once under pw_dummy_once, read-only afterwards by every thread. */
static pthread_once_t pw_dummy_once = PTHREAD_ONCE_INIT;
static char pw_dummy_hash[PW_HASH_MAX_BYTES];

int pw_hash(const char *password, char out[PW_HASH_MAX_BYTES])
{
    if (crypto_pwhash_str(out, password, strlen(password), PW_OPSLIMIT, PW_MEMLIMIT) != 0)
        return M360_ENOMEM;
    return 0;
}

static bool pw_has_prefix(const char *text, const char *prefix)
{
    return strncmp(text, prefix, strlen(prefix)) == 0;
}

static bool pw_is_bcrypt(const char *stored)
{
    return pw_has_prefix(stored, "$2a$") || pw_has_prefix(stored, "$2b$") ||
           pw_has_prefix(stored, "$2y$");
}

static int pw_argon2id_verify(const char *password, const char *stored, bool *stale)
{
    if (crypto_pwhash_str_verify(stored, password, strlen(password)) != 0)
        return M360_EINVAL;
    *stale = crypto_pwhash_str_needs_rehash(stored, PW_OPSLIMIT, PW_MEMLIMIT) != 0;
    return 0;
}

static int pw_bcrypt_verify(const char *password, const char *stored)
{
    size_t stored_len = strlen(stored);
    struct crypt_data *data;
    const char *computed;
    int rc = M360_EINVAL;

    /* bcrypt would let such a password match with anything after byte 72. */
    if (strlen(password) > PW_BCRYPT_MAX_BYTES)
        return M360_EINVAL;

    /* struct crypt_data is about 32 KiB: too large for a worker thread's stack. */
    data = calloc(1, sizeof(*data));
    if (data == NULL)
        return M360_ENOMEM;
    computed = crypt_r(password, stored, data);

    /* A failure is "*0" or "*1" (or NULL), never equal to a hash that starts with '$'. */
    if (computed != NULL && strlen(computed) == stored_len &&
        sodium_memcmp(computed, stored, stored_len) == 0)
        rc = 0;
    sodium_memzero(data, sizeof(*data));
    free(data);
    return rc;
}

int pw_verify(const char *password, const char *stored, bool *rehash)
{
    bool stale = true;
    int rc = M360_EINVAL;

    if (password == NULL || stored == NULL)
        return M360_EINVAL;

    if (pw_has_prefix(stored, PW_ARGON2ID_PREFIX))
        rc = pw_argon2id_verify(password, stored, &stale);
    else if (pw_is_bcrypt(stored))
        rc = pw_bcrypt_verify(password, stored);

    if (rc == 0 && rehash != NULL)
        *rehash = stale;
    return rc;
}

/* The dummy hash is of a random password nobody ever sees, so nothing can match it. */
static void pw_dummy_init(void)
{
    unsigned char raw[PW_DUMMY_SECRET_BYTES];
    char password[2 * PW_DUMMY_SECRET_BYTES + 1];

    randombytes_buf(raw, sizeof(raw));
    sodium_bin2hex(password, sizeof(password), raw, sizeof(raw));
    if (pw_hash(password, pw_dummy_hash) != 0)
        pw_dummy_hash[0] = '\0';
    sodium_memzero(raw, sizeof(raw));
    sodium_memzero(password, sizeof(password));
}

void pw_verify_dummy(const char *password)
{
    char scratch[PW_HASH_MAX_BYTES];

    pthread_once(&pw_dummy_once, pw_dummy_init);
    if (pw_dummy_hash[0] != '\0') {
        /* The same path as a real argon2id check, rehash test included. */
        (void)pw_verify(password, pw_dummy_hash, NULL);
        return;
    }

    /* The one-time hash failed for want of memory; hashing costs what verifying costs. */
    if (pw_hash(password, scratch) == 0)
        sodium_memzero(scratch, sizeof(scratch));
}
