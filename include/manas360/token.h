/* SPDX-License-Identifier: MIT */
/*
 * JSON Web Tokens, HS256 only: access and refresh tokens are signed with different keys and
 * carry a `typ` claim, so neither is ever accepted as the other. Verification pins the
 * algorithm, compares the signature in constant time and checks every claim itself.
 */
#ifndef MANAS360_TOKEN_H
#define MANAS360_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#define TOKEN_ISSUER "manas360"
#define TOKEN_MAX_BYTES 1024 /* longer bearer values are refused before any parsing */
#define TOKEN_ID_BYTES 37    /* a UUID in text and its NUL */

enum token_type {
    TOKEN_ACCESS,
    TOKEN_REFRESH,
};

/* What a verified token says; ids are UUID text. */
struct token_claims {
    enum token_type type;
    char sub[TOKEN_ID_BYTES]; /* user id */
    char sid[TOKEN_ID_BYTES]; /* session id */
    char jti[TOKEN_ID_BYTES]; /* token id */
    int64_t iat;
    int64_t exp;
};

/* Why a token was refused; the front end maps TOKEN_EXPIRED to TokenExpired, the rest to 401
 * Unauthorized (or InvalidRefreshToken for refresh tokens). */
enum token_verdict {
    TOKEN_VALID = 0,
    TOKEN_MALFORMED,     /* not three base64url parts, bad JSON, missing or mistyped claim */
    TOKEN_BAD_ALGORITHM, /* header alg is not exactly HS256 (none, HS512, RS256, ...) */
    TOKEN_BAD_SIGNATURE,
    TOKEN_WRONG_TYPE, /* typ differs from the expected type */
    TOKEN_WRONG_ISSUER,
    TOKEN_EXPIRED,
    TOKEN_NOT_YET_VALID, /* iat more than a minute in the future */
};

/* The secret and lifetime of one token type. Secrets are borrowed. */
struct token_keys {
    const char *access_secret;
    const char *refresh_secret;
    int64_t access_ttl_s;
    int64_t refresh_ttl_s;
};

/*
 * Signs a token of `type` for user `sub` and session `sid`, with a fresh random jti, iat =
 * `now` and exp = now + the type's lifetime. Writes the NUL-terminated token to `out`
 * (`size` >= TOKEN_MAX_BYTES) and the claims to `claims` when not NULL. Returns 0, or
 * M360_EINVAL when an id is not a UUID, `size` is too small, or the type's secret is missing
 * or empty or its lifetime not positive. Allocates nothing. Thread-safe after sodium_init().
 */
int token_issue(const struct token_keys *keys, enum token_type type, const char *sub,
                const char *sid, int64_t now, char *out, size_t size, struct token_claims *claims);

/*
 * Verifies `token` as a token of `expected` type at time `now`, checking in this order: the
 * shape (at most TOKEN_MAX_BYTES of base64url and two dots, three non-empty parts), the
 * header's alg, the signature with the expected type's secret (a missing or empty secret
 * refuses every token), the claims' presence and types, typ, iss, exp, then iat. The first
 * failure gives the verdict. Writes the claims only when the verdict is TOKEN_VALID. Costs no
 * allocation beyond the JSON parse, no database. Thread-safe after sodium_init().
 */
enum token_verdict token_verify(const struct token_keys *keys, enum token_type expected,
                                const char *token, int64_t now, struct token_claims *claims);

/* A stable name for logs ("bad_signature"). */
const char *token_verdict_name(enum token_verdict verdict);

/* SHA-256 of a token as 64 lower-case hex characters and a NUL; what the database stores. */
void token_hash_hex(const char *token, char out[65]);

#endif
