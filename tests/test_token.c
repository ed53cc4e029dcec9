/* SPDX-License-Identifier: MIT */
/*
 * Tokens: cross-checked against libjwt as an independent implementation, then every forgery
 * we know of, each with the verdict it must get.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <criterion/criterion.h>
#include <jwt.h>
#include <sodium.h>

#include "manas360/err.h"
#include "manas360/token.h"

#define TT_ACCESS_SECRET "access-secret-for-tests-0123456789abcdef"
#define TT_REFRESH_SECRET "refresh-secret-for-tests-0123456789abcdef"
#define TT_OTHER_SECRET "some-other-secret-nobody-configured-here"
#define TT_NOW 1700000000
#define TT_ACCESS_TTL_S 900
#define TT_REFRESH_TTL_S 604800
#define TT_SUB "6f1c2b9e-3d4a-4f5b-8c6d-7e8f9a0b1c2d"
#define TT_SID "0a1b2c3d-4e5f-4a6b-9c7d-8e9f0a1b2c3d"
#define TT_JTI "d4c3b2a1-0f9e-4d8c-b7a6-958473625140"
#define TT_HEADER "{\"alg\":\"HS256\",\"typ\":\"JWT\"}"
#define TT_IDS "\"sub\":\"" TT_SUB "\",\"sid\":\"" TT_SID "\",\"jti\":\"" TT_JTI "\""
#define TT_TIMES "\"iat\":1700000000,\"exp\":1700000900"
#define TT_PAYLOAD "{" TT_IDS ",\"typ\":\"access\",\"iss\":\"manas360\"," TT_TIMES "}"
#define TT_BENCH_TOKENS 20000

static const char tt_b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static const struct token_keys tt_keys = {TT_ACCESS_SECRET, TT_REFRESH_SECRET, TT_ACCESS_TTL_S,
                                          TT_REFRESH_TTL_S};

static void tt_setup(void)
{
    cr_assert_geq(sodium_init(), 0);
}

TestSuite(token, .init = tt_setup);

/* A libjwt object holding a full, valid set of claims of type `typ`. */
static jwt_t *tt_jwt_claims(const char *typ, long iat, long exp)
{
    jwt_t *jwt = NULL;

    cr_assert_eq(jwt_new(&jwt), 0);
    cr_assert_eq(jwt_add_grant(jwt, "sub", TT_SUB), 0);
    cr_assert_eq(jwt_add_grant(jwt, "sid", TT_SID), 0);
    cr_assert_eq(jwt_add_grant(jwt, "jti", TT_JTI), 0);
    cr_assert_eq(jwt_add_grant(jwt, "typ", typ), 0);
    cr_assert_eq(jwt_add_grant(jwt, "iss", "manas360"), 0);
    cr_assert_eq(jwt_add_grant_int(jwt, "iat", iat), 0);
    cr_assert_eq(jwt_add_grant_int(jwt, "exp", exp), 0);
    return jwt;
}

static jwt_t *tt_jwt_access(void)
{
    return tt_jwt_claims("access", TT_NOW, TT_NOW + TT_ACCESS_TTL_S);
}

/* Replaces a string claim; NULL removes it. */
static void tt_jwt_set(jwt_t *jwt, const char *name, const char *value)
{
    cr_assert_eq(jwt_del_grants(jwt, name), 0);
    if (value != NULL)
        cr_assert_eq(jwt_add_grant(jwt, name, value), 0);
}

static void tt_jwt_set_int(jwt_t *jwt, const char *name, long value)
{
    cr_assert_eq(jwt_del_grants(jwt, name), 0);
    cr_assert_eq(jwt_add_grant_int(jwt, name, value), 0);
}

/* Signs and frees `jwt`; the caller frees the returned token. */
static char *tt_jwt_encode(jwt_t *jwt, jwt_alg_t alg, const char *key)
{
    char *token;

    if (key == NULL)
        cr_assert_eq(jwt_set_alg(jwt, alg, NULL, 0), 0);
    else
        cr_assert_eq(jwt_set_alg(jwt, alg, (const unsigned char *)key, (int)strlen(key)), 0);
    token = jwt_encode_str(jwt);
    cr_assert_not_null(token);
    jwt_free(jwt);
    return token;
}

static void tt_append(char *out, size_t size, const char *text)
{
    size_t pos = strlen(out);

    cr_assert_lt(strlen(text), size - pos);
    snprintf(out + pos, size - pos, "%s", text);
}

static void tt_b64_append(char *out, size_t size, const void *bin, size_t len)
{
    size_t pos = strlen(out);

    cr_assert_lt(sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_URLSAFE_NO_PADDING),
                 size - pos);
    sodium_bin2base64(out + pos, size - pos, bin, len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

/*
 * Builds a token by hand from raw header and payload text, HS256-signed with `key`, for the
 * shapes libjwt will not produce (foreign algorithms, headers that are not JSON).
 */
static void tt_forge(char *out, size_t size, const char *header, const char *payload,
                     const char *key)
{
    unsigned char mac[crypto_auth_hmacsha256_BYTES];
    crypto_auth_hmacsha256_state state;

    out[0] = '\0';
    tt_b64_append(out, size, header, strlen(header));
    tt_append(out, size, ".");
    tt_b64_append(out, size, payload, strlen(payload));

    crypto_auth_hmacsha256_init(&state, (const unsigned char *)key, strlen(key));
    crypto_auth_hmacsha256_update(&state, (const unsigned char *)out, strlen(out));
    crypto_auth_hmacsha256_final(&state, mac);
    tt_append(out, size, ".");
    tt_b64_append(out, size, mac, sizeof(mac));
}

static bool tt_claims_same(const struct token_claims *a, const struct token_claims *b)
{
    return a->type == b->type && memcmp(a->sub, b->sub, sizeof(a->sub)) == 0 &&
           memcmp(a->sid, b->sid, sizeof(a->sid)) == 0 &&
           memcmp(a->jti, b->jti, sizeof(a->jti)) == 0 && a->iat == b->iat && a->exp == b->exp;
}

/* Expects `want`, and that a refused token leaves the caller's claims untouched. */
static void tt_expect(const char *label, const char *token, enum token_type type,
                      enum token_verdict want)
{
    struct token_claims claims;
    struct token_claims before;
    enum token_verdict got;

    memset(&claims, 0x5A, sizeof(claims));
    memcpy(&before, &claims, sizeof(claims));
    got = token_verify(&tt_keys, type, token, TT_NOW, &claims);
    cr_expect_eq(got, want, "%s: got %s, want %s", label, token_verdict_name(got),
                 token_verdict_name(want));
    if (want != TOKEN_VALID)
        cr_expect(tt_claims_same(&claims, &before), "%s: claims written", label);
}

static void tt_expect_jwt(const char *label, jwt_t *jwt, enum token_verdict want)
{
    char *token = tt_jwt_encode(jwt, JWT_ALG_HS256, TT_ACCESS_SECRET);

    tt_expect(label, token, TOKEN_ACCESS, want);
    free(token);
}

static void tt_expect_forged(const char *label, const char *header, const char *payload,
                             enum token_verdict want)
{
    char token[4096];

    tt_forge(token, sizeof(token), header, payload, TT_ACCESS_SECRET);
    tt_expect(label, token, TOKEN_ACCESS, want);
}

static bool tt_is_uuid_v4(const char *text)
{
    if (strlen(text) != 36 || text[14] != '4' || strchr("89ab", text[19]) == NULL)
        return false;
    for (int i = 0; i < 36; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;

        if (dash ? text[i] != '-' : strchr("0123456789abcdef", text[i]) == NULL)
            return false;
    }
    return true;
}

Test(token, issued_token_decodes_with_libjwt)
{
    struct token_claims claims;
    char token[TOKEN_MAX_BYTES];
    jwt_t *jwt = NULL;

    cr_assert_eq(
        token_issue(&tt_keys, TOKEN_ACCESS, TT_SUB, TT_SID, TT_NOW, token, sizeof(token), &claims),
        0);
    cr_assert_eq(jwt_decode(&jwt, token, (const unsigned char *)TT_ACCESS_SECRET,
                            (int)strlen(TT_ACCESS_SECRET)),
                 0);
    cr_expect_eq(jwt_get_alg(jwt), JWT_ALG_HS256);
    cr_expect_str_eq(jwt_get_header(jwt, "typ"), "JWT");
    cr_expect_str_eq(jwt_get_grant(jwt, "sub"), TT_SUB);
    cr_expect_str_eq(jwt_get_grant(jwt, "sid"), TT_SID);
    cr_expect_str_eq(jwt_get_grant(jwt, "jti"), claims.jti);
    cr_expect_str_eq(jwt_get_grant(jwt, "typ"), "access");
    cr_expect_str_eq(jwt_get_grant(jwt, "iss"), "manas360");
    cr_expect_eq(jwt_get_grant_int(jwt, "iat"), TT_NOW);
    cr_expect_eq(jwt_get_grant_int(jwt, "exp"), TT_NOW + TT_ACCESS_TTL_S);
    jwt_free(jwt);

    cr_expect(tt_is_uuid_v4(claims.jti), "jti %s is not a v4 UUID", claims.jti);
    cr_expect_eq(claims.type, TOKEN_ACCESS);
    cr_expect_str_eq(claims.sub, TT_SUB);
    cr_expect_str_eq(claims.sid, TT_SID);
    cr_expect_eq(claims.iat, TT_NOW);
    cr_expect_eq(claims.exp, TT_NOW + TT_ACCESS_TTL_S);

    /* libjwt agrees the signature is tied to the key. */
    jwt = NULL;
    cr_expect_neq(jwt_decode(&jwt, token, (const unsigned char *)TT_REFRESH_SECRET,
                             (int)strlen(TT_REFRESH_SECRET)),
                  0);
    jwt_free(jwt);
}

Test(token, issued_refresh_token_uses_refresh_key_and_lifetime)
{
    struct token_claims claims;
    char token[TOKEN_MAX_BYTES];
    jwt_t *jwt = NULL;

    cr_assert_eq(
        token_issue(&tt_keys, TOKEN_REFRESH, TT_SUB, TT_SID, TT_NOW, token, sizeof(token), &claims),
        0);
    cr_assert_eq(jwt_decode(&jwt, token, (const unsigned char *)TT_REFRESH_SECRET,
                            (int)strlen(TT_REFRESH_SECRET)),
                 0);
    cr_expect_str_eq(jwt_get_grant(jwt, "typ"), "refresh");
    cr_expect_eq(jwt_get_grant_int(jwt, "exp"), TT_NOW + TT_REFRESH_TTL_S);
    cr_expect_eq(claims.type, TOKEN_REFRESH);
    cr_expect_eq(claims.exp, TT_NOW + TT_REFRESH_TTL_S);
    jwt_free(jwt);
}

Test(token, round_trip_returns_the_issued_claims)
{
    struct token_claims issued;
    struct token_claims verified;
    char token[TOKEN_MAX_BYTES];

    for (int type = TOKEN_ACCESS; type <= TOKEN_REFRESH; type++) {
        cr_assert_eq(token_issue(&tt_keys, (enum token_type)type, TT_SUB, TT_SID, TT_NOW, token,
                                 sizeof(token), &issued),
                     0);
        cr_assert_eq(token_verify(&tt_keys, (enum token_type)type, token, TT_NOW, &verified),
                     TOKEN_VALID);
        cr_expect_eq(verified.type, issued.type);
        cr_expect_str_eq(verified.sub, issued.sub);
        cr_expect_str_eq(verified.sid, issued.sid);
        cr_expect_str_eq(verified.jti, issued.jti);
        cr_expect_eq(verified.iat, issued.iat);
        cr_expect_eq(verified.exp, issued.exp);
        cr_expect_lt(strlen(token), TOKEN_MAX_BYTES);
    }
}

Test(token, libjwt_token_verifies)
{
    char *token = tt_jwt_encode(tt_jwt_access(), JWT_ALG_HS256, TT_ACCESS_SECRET);
    struct token_claims claims;

    cr_assert_eq(token_verify(&tt_keys, TOKEN_ACCESS, token, TT_NOW, &claims), TOKEN_VALID);
    cr_expect_eq(claims.type, TOKEN_ACCESS);
    cr_expect_str_eq(claims.sub, TT_SUB);
    cr_expect_str_eq(claims.sid, TT_SID);
    cr_expect_str_eq(claims.jti, TT_JTI);
    cr_expect_eq(claims.iat, TT_NOW);
    cr_expect_eq(claims.exp, TT_NOW + TT_ACCESS_TTL_S);
    free(token);

    token = tt_jwt_encode(tt_jwt_claims("refresh", TT_NOW, TT_NOW + 60), JWT_ALG_HS256,
                          TT_REFRESH_SECRET);
    tt_expect("libjwt refresh", token, TOKEN_REFRESH, TOKEN_VALID);
    free(token);
}

Test(token, jti_is_fresh_each_time)
{
    struct token_claims first;
    struct token_claims second;
    char token[TOKEN_MAX_BYTES];

    cr_assert_eq(
        token_issue(&tt_keys, TOKEN_ACCESS, TT_SUB, TT_SID, TT_NOW, token, sizeof(token), &first),
        0);
    cr_assert_eq(
        token_issue(&tt_keys, TOKEN_ACCESS, TT_SUB, TT_SID, TT_NOW, token, sizeof(token), &second),
        0);
    cr_expect_str_neq(first.jti, second.jti);
}

Test(token, issue_refuses_bad_input)
{
    struct token_keys no_secret = tt_keys;
    struct token_keys no_ttl = tt_keys;
    char token[TOKEN_MAX_BYTES];

    no_secret.access_secret = "";
    no_ttl.access_ttl_s = 0;
    cr_expect_eq(
        token_issue(&tt_keys, TOKEN_ACCESS, "user-1", TT_SID, TT_NOW, token, sizeof(token), NULL),
        M360_EINVAL);
    cr_expect_eq(
        token_issue(&tt_keys, TOKEN_ACCESS, TT_SUB, TT_SID "0", TT_NOW, token, sizeof(token), NULL),
        M360_EINVAL);
    cr_expect_eq(token_issue(&tt_keys, TOKEN_ACCESS, TT_SUB, TT_SID, TT_NOW, token,
                             TOKEN_MAX_BYTES - 1, NULL),
                 M360_EINVAL);
    cr_expect_eq(
        token_issue(&no_secret, TOKEN_ACCESS, TT_SUB, TT_SID, TT_NOW, token, sizeof(token), NULL),
        M360_EINVAL);
    cr_expect_eq(
        token_issue(&no_ttl, TOKEN_ACCESS, TT_SUB, TT_SID, TT_NOW, token, sizeof(token), NULL),
        M360_EINVAL);
}

Test(token, alg_none_refused)
{
    char *token = tt_jwt_encode(tt_jwt_access(), JWT_ALG_NONE, NULL);
    char with_signature[TOKEN_MAX_BYTES * 2];

    /* libjwt writes "header.payload." with an empty signature: refused by shape. */
    tt_expect("none, no signature", token, TOKEN_ACCESS, TOKEN_MALFORMED);
    snprintf(with_signature, sizeof(with_signature), "%sc2lnbmF0dXJl", token);
    tt_expect("none, signature part", with_signature, TOKEN_ACCESS, TOKEN_BAD_ALGORITHM);
    token[strlen(token) - 1] = '\0';
    tt_expect("none, two parts", token, TOKEN_ACCESS, TOKEN_MALFORMED);
    free(token);

    /* Even correctly HMAC-signed, "none" must not pass. */
    tt_expect_forged("none, signed", "{\"alg\":\"none\",\"typ\":\"JWT\"}", TT_PAYLOAD,
                     TOKEN_BAD_ALGORITHM);
}

Test(token, other_algorithms_refused)
{
    char *token = tt_jwt_encode(tt_jwt_access(), JWT_ALG_HS512, TT_ACCESS_SECRET);

    tt_expect("HS512, right key", token, TOKEN_ACCESS, TOKEN_BAD_ALGORITHM);
    free(token);

    tt_expect_forged("RS256", "{\"alg\":\"RS256\",\"typ\":\"JWT\"}", TT_PAYLOAD,
                     TOKEN_BAD_ALGORITHM);
    tt_expect_forged("no alg", "{\"typ\":\"JWT\"}", TT_PAYLOAD, TOKEN_BAD_ALGORITHM);
    tt_expect_forged("lower case", "{\"alg\":\"hs256\"}", TT_PAYLOAD, TOKEN_BAD_ALGORITHM);
    tt_expect_forged("trailing space", "{\"alg\":\"HS256 \"}", TT_PAYLOAD, TOKEN_BAD_ALGORITHM);
    tt_expect_forged("array", "{\"alg\":[\"HS256\"]}", TT_PAYLOAD, TOKEN_BAD_ALGORITHM);
    tt_expect_forged("null", "{\"alg\":null}", TT_PAYLOAD, TOKEN_BAD_ALGORITHM);

    /* The header alone, without typ, is enough. */
    tt_expect_forged("bare HS256", "{\"alg\":\"HS256\"}", TT_PAYLOAD, TOKEN_VALID);
}

Test(token, header_not_json_refused)
{
    tt_expect_forged("not JSON", "alg=HS256", TT_PAYLOAD, TOKEN_MALFORMED);
    tt_expect_forged("array", "[\"HS256\"]", TT_PAYLOAD, TOKEN_MALFORMED);
    tt_expect_forged("trailing bytes", TT_HEADER "x", TT_PAYLOAD, TOKEN_MALFORMED);
    tt_expect_forged("duplicate alg", "{\"alg\":\"HS256\",\"alg\":\"none\"}", TT_PAYLOAD,
                     TOKEN_MALFORMED);
    tt_expect_forged("crit", "{\"alg\":\"HS256\",\"crit\":[\"b64\"],\"b64\":false}", TT_PAYLOAD,
                     TOKEN_MALFORMED);
    tt_expect_forged("empty object", "{}", TT_PAYLOAD, TOKEN_BAD_ALGORITHM);
}

Test(token, payload_byte_changed_refused)
{
    char token[TOKEN_MAX_BYTES];
    unsigned char payload[TOKEN_MAX_BYTES];
    char forged[TOKEN_MAX_BYTES * 2];
    char *dot1;
    char *dot2;
    size_t len;

    cr_assert_eq(
        token_issue(&tt_keys, TOKEN_ACCESS, TT_SUB, TT_SID, TT_NOW, token, sizeof(token), NULL), 0);
    dot1 = strchr(token, '.');
    dot2 = strchr(dot1 + 1, '.');
    cr_assert_eq(sodium_base642bin(payload, sizeof(payload), dot1 + 1, (size_t)(dot2 - dot1 - 1),
                                   NULL, &len, NULL, sodium_base64_VARIANT_URLSAFE_NO_PADDING),
                 0);

    /* Another user id, still valid JSON and a valid UUID, under the old signature. */
    cr_assert_eq(memcmp(payload, "{\"sub\":\"6", 9), 0);
    payload[8] = '7';
    snprintf(forged, sizeof(forged), "%.*s.", (int)(dot1 - token), token);
    tt_b64_append(forged, sizeof(forged), payload, len);
    tt_append(forged, sizeof(forged), dot2);
    tt_expect("sub changed", forged, TOKEN_ACCESS, TOKEN_BAD_SIGNATURE);

    /* One character of the encoded payload changed in place. */
    dot1[10] = dot1[10] == 'A' ? 'B' : 'A';
    tt_expect("payload char", token, TOKEN_ACCESS, TOKEN_BAD_SIGNATURE);
}

Test(token, signature_changes_refused)
{
    char token[TOKEN_MAX_BYTES];
    char *sig;
    size_t len;
    char last;

    cr_assert_eq(
        token_issue(&tt_keys, TOKEN_ACCESS, TT_SUB, TT_SID, TT_NOW, token, sizeof(token), NULL), 0);
    len = strlen(token);
    sig = strrchr(token, '.') + 1;
    cr_assert_eq(strlen(sig), 43);

    last = sig[5];
    sig[5] = last == 'A' ? 'B' : 'A';
    tt_expect("signature char", token, TOKEN_ACCESS, TOKEN_BAD_SIGNATURE);
    sig[5] = last;
    tt_expect("restored", token, TOKEN_ACCESS, TOKEN_VALID);

    /* 43 characters carry 258 bits for 256: the two spare bits must be zero, or one
     * signature would have four spellings. */
    last = sig[42];
    sig[42] = tt_b64_alphabet[(strchr(tt_b64_alphabet, last) - tt_b64_alphabet) ^ 1];
    tt_expect("spare bits set", token, TOKEN_ACCESS, TOKEN_MALFORMED);
    sig[42] = last;

    token[len - 1] = '\0';
    cr_expect_neq(token_verify(&tt_keys, TOKEN_ACCESS, token, TT_NOW, NULL), TOKEN_VALID);
}

/* libsodium 1.0.18 decodes any byte from 0x80 up as '_': such a spelling must not pass. */
Test(token, high_bytes_are_not_an_underscore)
{
    char token[TOKEN_MAX_BYTES];
    char *underscore = NULL;

    for (int i = 0; i < 1000 && underscore == NULL; i++) {
        cr_assert_eq(
            token_issue(&tt_keys, TOKEN_ACCESS, TT_SUB, TT_SID, TT_NOW, token, sizeof(token), NULL),
            0);
        underscore = strchr(token, '_');
    }
    cr_assert_not_null(underscore, "no token with '_' in 1000");

    for (int c = 0x80; c <= 0xFF; c++) {
        *underscore = (char)c;
        tt_expect("high byte for '_'", token, TOKEN_ACCESS, TOKEN_MALFORMED);
    }
    *underscore = '_';
    tt_expect("'_' restored", token, TOKEN_ACCESS, TOKEN_VALID);
}

Test(token, other_key_refused)
{
    char *token = tt_jwt_encode(tt_jwt_access(), JWT_ALG_HS256, TT_OTHER_SECRET);

    tt_expect("other key", token, TOKEN_ACCESS, TOKEN_BAD_SIGNATURE);
    free(token);
}

Test(token, refresh_and_access_never_swap)
{
    struct token_keys same = tt_keys;
    char access[TOKEN_MAX_BYTES];
    char refresh[TOKEN_MAX_BYTES];

    cr_assert_eq(
        token_issue(&tt_keys, TOKEN_ACCESS, TT_SUB, TT_SID, TT_NOW, access, sizeof(access), NULL),
        0);
    cr_assert_eq(token_issue(&tt_keys, TOKEN_REFRESH, TT_SUB, TT_SID, TT_NOW, refresh,
                             sizeof(refresh), NULL),
                 0);
    tt_expect("refresh as access", refresh, TOKEN_ACCESS, TOKEN_BAD_SIGNATURE);
    tt_expect("access as refresh", access, TOKEN_REFRESH, TOKEN_BAD_SIGNATURE);

    /* With one secret for both, the typ claim still tells them apart. */
    same.refresh_secret = same.access_secret;
    cr_assert_eq(
        token_issue(&same, TOKEN_ACCESS, TT_SUB, TT_SID, TT_NOW, access, sizeof(access), NULL), 0);
    cr_assert_eq(
        token_issue(&same, TOKEN_REFRESH, TT_SUB, TT_SID, TT_NOW, refresh, sizeof(refresh), NULL),
        0);
    cr_expect_eq(token_verify(&same, TOKEN_ACCESS, refresh, TT_NOW, NULL), TOKEN_WRONG_TYPE);
    cr_expect_eq(token_verify(&same, TOKEN_REFRESH, access, TT_NOW, NULL), TOKEN_WRONG_TYPE);
    cr_expect_eq(token_verify(&same, TOKEN_ACCESS, access, TT_NOW, NULL), TOKEN_VALID);
}

Test(token, typ_checked)
{
    jwt_t *jwt = tt_jwt_access();

    tt_jwt_set(jwt, "typ", NULL);
    tt_expect_jwt("typ missing", jwt, TOKEN_MALFORMED);

    jwt = tt_jwt_access();
    tt_jwt_set(jwt, "typ", "refresh");
    tt_expect_jwt("typ refresh under the access key", jwt, TOKEN_WRONG_TYPE);

    jwt = tt_jwt_access();
    tt_jwt_set(jwt, "typ", "Access");
    tt_expect_jwt("typ in another case", jwt, TOKEN_WRONG_TYPE);

    jwt = tt_jwt_access();
    tt_jwt_set_int(jwt, "typ", 1);
    tt_expect_jwt("typ a number", jwt, TOKEN_MALFORMED);
}

Test(token, iss_checked)
{
    jwt_t *jwt = tt_jwt_access();

    tt_jwt_set(jwt, "iss", "manas361");
    tt_expect_jwt("iss wrong", jwt, TOKEN_WRONG_ISSUER);

    jwt = tt_jwt_access();
    tt_jwt_set(jwt, "iss", NULL);
    tt_expect_jwt("iss missing", jwt, TOKEN_MALFORMED);
}

Test(token, expiry_checked)
{
    tt_expect_jwt("exp == now", tt_jwt_claims("access", TT_NOW - 900, TT_NOW), TOKEN_EXPIRED);
    tt_expect_jwt("exp < now", tt_jwt_claims("access", TT_NOW - 900, TT_NOW - 1), TOKEN_EXPIRED);
    tt_expect_jwt("exp long past", tt_jwt_claims("access", 0, 1), TOKEN_EXPIRED);
    tt_expect_jwt("exp == now + 1", tt_jwt_claims("access", TT_NOW - 899, TT_NOW + 1), TOKEN_VALID);
}

Test(token, iat_in_the_future_checked)
{
    tt_expect_jwt("iat far ahead", tt_jwt_claims("access", TT_NOW + 3600, TT_NOW + 7200),
                  TOKEN_NOT_YET_VALID);
    tt_expect_jwt("iat 61 s ahead", tt_jwt_claims("access", TT_NOW + 61, TT_NOW + 900),
                  TOKEN_NOT_YET_VALID);
    tt_expect_jwt("iat 60 s ahead", tt_jwt_claims("access", TT_NOW + 60, TT_NOW + 900),
                  TOKEN_VALID);
}

Test(token, ids_must_be_uuids)
{
    static const char *const bad[] = {
        "user-1",
        "",
        "6f1c2b9e-3d4a-4f5b-8c6d-7e8f9a0b1c2",   /* 35 characters */
        "6f1c2b9e-3d4a-4f5b-8c6d-7e8f9a0b1c2d0", /* 37 characters */
        "6f1c2b9e3d4a-4f5b-8c6d-7e8f9a0b1c2d0",  /* dash moved */
        "6f1c2b9e-3d4a-4f5b-8c6d-7e8f9a0b1c2g",  /* not hex */
        "{6f1c2b9e-3d4a-4f5b-8c6d-7e8f9a0b1c}",
    };
    static const char *const names[] = {"sub", "sid", "jti"};
    char label[128];
    jwt_t *jwt;

    for (size_t n = 0; n < sizeof(names) / sizeof(names[0]); n++) {
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            snprintf(label, sizeof(label), "%s = '%s'", names[n], bad[i]);
            jwt = tt_jwt_access();
            tt_jwt_set(jwt, names[n], bad[i]);
            tt_expect_jwt(label, jwt, TOKEN_MALFORMED);
        }
        snprintf(label, sizeof(label), "%s missing", names[n]);
        jwt = tt_jwt_access();
        tt_jwt_set(jwt, names[n], NULL);
        tt_expect_jwt(label, jwt, TOKEN_MALFORMED);

        snprintf(label, sizeof(label), "%s a number", names[n]);
        jwt = tt_jwt_access();
        tt_jwt_set_int(jwt, names[n], 42);
        tt_expect_jwt(label, jwt, TOKEN_MALFORMED);
    }

    /* Upper-case hex is still a UUID. */
    jwt = tt_jwt_access();
    tt_jwt_set(jwt, "sub", "6F1C2B9E-3D4A-4F5B-8C6D-7E8F9A0B1C2D");
    tt_expect_jwt("upper-case sub", jwt, TOKEN_VALID);
}

Test(token, times_must_be_integers)
{
    jwt_t *jwt = tt_jwt_access();

    tt_jwt_set(jwt, "exp", "1700000900");
    tt_expect_jwt("exp a string", jwt, TOKEN_MALFORMED);

    jwt = tt_jwt_access();
    tt_jwt_set(jwt, "iat", "1700000000");
    tt_expect_jwt("iat a string", jwt, TOKEN_MALFORMED);

    jwt = tt_jwt_access();
    tt_jwt_set(jwt, "exp", NULL);
    tt_expect_jwt("exp missing", jwt, TOKEN_MALFORMED);

    jwt = tt_jwt_access();
    tt_jwt_set(jwt, "iat", NULL);
    tt_expect_jwt("iat missing", jwt, TOKEN_MALFORMED);

    tt_expect_forged("exp a real", TT_HEADER,
                     "{" TT_IDS ",\"typ\":\"access\",\"iss\":\"manas360\","
                     "\"iat\":1700000000,\"exp\":1700000900.5}",
                     TOKEN_MALFORMED);
    tt_expect_forged("exp beyond int64", TT_HEADER,
                     "{" TT_IDS ",\"typ\":\"access\",\"iss\":\"manas360\","
                     "\"iat\":1700000000,\"exp\":99999999999999999999}",
                     TOKEN_MALFORMED);
}

Test(token, payload_must_be_one_json_object)
{
    tt_expect_forged("payload ok", TT_HEADER, TT_PAYLOAD, TOKEN_VALID);
    tt_expect_forged("payload not JSON", TT_HEADER, "sub=me", TOKEN_MALFORMED);
    tt_expect_forged("payload array", TT_HEADER, "[" TT_PAYLOAD "]", TOKEN_MALFORMED);
    tt_expect_forged("payload trailing bytes", TT_HEADER, TT_PAYLOAD " {}", TOKEN_MALFORMED);
    tt_expect_forged("duplicate sub", TT_HEADER,
                     "{" TT_IDS ",\"sub\":\"" TT_JTI "\",\"typ\":\"access\","
                     "\"iss\":\"manas360\"," TT_TIMES "}",
                     TOKEN_MALFORMED);
}

Test(token, shape_checked_before_anything)
{
    char token[TOKEN_MAX_BYTES];
    char bad[2 * TOKEN_MAX_BYTES];
    char *dot1;
    char *dot2;

    cr_assert_eq(
        token_issue(&tt_keys, TOKEN_ACCESS, TT_SUB, TT_SID, TT_NOW, token, sizeof(token), NULL), 0);
    dot1 = strchr(token, '.');
    dot2 = strchr(dot1 + 1, '.');

    tt_expect("empty", "", TOKEN_ACCESS, TOKEN_MALFORMED);
    tt_expect("dots only", "..", TOKEN_ACCESS, TOKEN_MALFORMED);
    cr_expect_eq(token_verify(&tt_keys, TOKEN_ACCESS, NULL, TT_NOW, NULL), TOKEN_MALFORMED);

    snprintf(bad, sizeof(bad), "%s.", token);
    tt_expect("trailing dot", bad, TOKEN_ACCESS, TOKEN_MALFORMED);
    snprintf(bad, sizeof(bad), "%s.c2ln", token);
    tt_expect("four parts", bad, TOKEN_ACCESS, TOKEN_MALFORMED);
    snprintf(bad, sizeof(bad), "%s", dot1);
    tt_expect("empty header", bad, TOKEN_ACCESS, TOKEN_MALFORMED);
    snprintf(bad, sizeof(bad), "%.*s.%s", (int)(dot1 - token), token, dot2);
    tt_expect("empty payload", bad, TOKEN_ACCESS, TOKEN_MALFORMED);
    snprintf(bad, sizeof(bad), "%.*s", (int)(dot2 - token + 1), token);
    tt_expect("empty signature", bad, TOKEN_ACCESS, TOKEN_MALFORMED);

    /* Standard base64, padding, spaces and other bytes are not base64url. */
    for (const char *c = "+/= !\n\x80"; *c != '\0'; c++) {
        snprintf(bad, sizeof(bad), "%s", token);
        bad[dot2 - token + 3] = *c;
        tt_expect("stray byte in signature", bad, TOKEN_ACCESS, TOKEN_MALFORMED);
        snprintf(bad, sizeof(bad), "%s", token);
        bad[dot1 - token + 3] = *c;
        tt_expect("stray byte in payload", bad, TOKEN_ACCESS, TOKEN_MALFORMED);
    }
    snprintf(bad, sizeof(bad), "%s", token);
    bad[3] = '-';
    bad[4] = '_';
    tt_expect("url alphabet, wrong bytes", bad, TOKEN_ACCESS, TOKEN_MALFORMED);
}

/* Forges a valid token of exactly `len` bytes by padding the payload with an extra claim. */
static void tt_forge_sized(char *out, size_t size, size_t len)
{
    char payload[2 * TOKEN_MAX_BYTES];
    char pad[TOKEN_MAX_BYTES];

    memset(pad, 'x', sizeof(pad));
    for (int n = 0; n < (int)sizeof(pad); n++) {
        snprintf(payload, sizeof(payload),
                 "{" TT_IDS ",\"typ\":\"access\",\"iss\":\"manas360\"," TT_TIMES
                 ",\"pad\":\"%.*s\"}",
                 n, pad);
        tt_forge(out, size, TT_HEADER, payload, TT_ACCESS_SECRET);
        if (strlen(out) == len)
            return;
    }
    cr_assert_fail("no padding gives a token of %zu bytes", len);
}

Test(token, oversized_token_refused)
{
    char token[2 * TOKEN_MAX_BYTES];
    char *big = malloc(2001);

    cr_assert_not_null(big);
    memset(big, 'A', 2000);
    big[2000] = '\0';
    big[10] = '.';
    big[1000] = '.';
    tt_expect("2000 bytes", big, TOKEN_ACCESS, TOKEN_MALFORMED);
    free(big);

    /* The limit itself is allowed; one byte more is refused before any decoding. */
    tt_forge_sized(token, sizeof(token), TOKEN_MAX_BYTES);
    tt_expect("exactly the limit", token, TOKEN_ACCESS, TOKEN_VALID);
    tt_forge_sized(token, sizeof(token), TOKEN_MAX_BYTES + 1);
    tt_expect("one byte over", token, TOKEN_ACCESS, TOKEN_MALFORMED);
}

Test(token, verdict_names_are_stable)
{
    cr_expect_str_eq(token_verdict_name(TOKEN_VALID), "valid");
    cr_expect_str_eq(token_verdict_name(TOKEN_MALFORMED), "malformed");
    cr_expect_str_eq(token_verdict_name(TOKEN_BAD_ALGORITHM), "bad_algorithm");
    cr_expect_str_eq(token_verdict_name(TOKEN_BAD_SIGNATURE), "bad_signature");
    cr_expect_str_eq(token_verdict_name(TOKEN_WRONG_TYPE), "wrong_type");
    cr_expect_str_eq(token_verdict_name(TOKEN_WRONG_ISSUER), "wrong_issuer");
    cr_expect_str_eq(token_verdict_name(TOKEN_EXPIRED), "expired");
    cr_expect_str_eq(token_verdict_name(TOKEN_NOT_YET_VALID), "not_yet_valid");
    cr_expect_str_eq(token_verdict_name((enum token_verdict)99), "unknown");
}

Test(token, hash_is_sha256_hex)
{
    char out[65];

    token_hash_hex("abc", out);
    cr_expect_str_eq(out, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    token_hash_hex("", out);
    cr_expect_str_eq(out, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

static double tt_seconds(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Timing is printed, not asserted: shared CI machines are too noisy for a bound. */
Test(token, verify_benchmark)
{
    char(*tokens)[TOKEN_MAX_BYTES] = calloc(TT_BENCH_TOKENS, sizeof(*tokens));
    int valid = 0;
    double start;
    double elapsed;

    cr_assert_not_null(tokens);
    for (int i = 0; i < TT_BENCH_TOKENS; i++)
        cr_assert_eq(token_issue(&tt_keys, TOKEN_ACCESS, TT_SUB, TT_SID, TT_NOW, tokens[i],
                                 sizeof(tokens[i]), NULL),
                     0);

    start = tt_seconds();
    for (int i = 0; i < TT_BENCH_TOKENS; i++)
        valid += token_verify(&tt_keys, TOKEN_ACCESS, tokens[i], TT_NOW, NULL) == TOKEN_VALID;
    elapsed = tt_seconds() - start;

    cr_expect_eq(valid, TT_BENCH_TOKENS);
    fprintf(stderr, "token: verify %.2f us/token over %d tokens\n", elapsed * 1e6 / TT_BENCH_TOKENS,
            TT_BENCH_TOKENS);
    free(tokens);
}
