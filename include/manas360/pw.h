/* SPDX-License-Identifier: MIT */
/*
 * Password hashing: argon2id through libsodium for every new hash; imported bcrypt hashes
 * ($2a$, $2b$, $2y$) verify through libcrypt and are reported for re-hashing.
 */
#ifndef MANAS360_PW_H
#define MANAS360_PW_H

#include <stdbool.h>
#include <stddef.h>

#define PW_HASH_MAX_BYTES 128 /* crypto_pwhash_STRBYTES and a bcrypt string both fit */
#define PW_MIN_CHARS 8
#define PW_MAX_CHARS 128

/*
 * Hashes `password` with argon2id (libsodium's interactive limits, 2 passes over 64 MiB: one
 * hash takes about 105-120 ms on the 2-core build host) into `out` (PW_HASH_MAX_BYTES). Every
 * byte of the password counts. Returns 0 or M360_ENOMEM. Thread-safe after sodium_init().
 */
int pw_hash(const char *password, char out[PW_HASH_MAX_BYTES]);

/*
 * Checks `password` against `stored` (argon2id, or bcrypt as $2a$, $2b$ or $2y$). Returns 0
 * when it matches, M360_EINVAL when it does not or the hash is of an unknown kind (argon2i,
 * md5-crypt, sha-crypt...), M360_ENOMEM when bcrypt's work area cannot be allocated. A bcrypt
 * hash never matches a password longer than 72 bytes, since bcrypt would ignore the rest. On a
 * match only, writes *rehash (when not NULL): true for bcrypt and for argon2id hashes made
 * with other limits than pw_hash() uses, which should be replaced by pw_hash(). Thread-safe.
 */
int pw_verify(const char *password, const char *stored, bool *rehash);

/*
 * Spends the time of one argon2id verification against a fixed hash, so an unknown email
 * costs what a wrong password costs. The process's first call also makes that hash, which
 * costs one pw_hash() more. Thread-safe.
 */
void pw_verify_dummy(const char *password);

#endif
