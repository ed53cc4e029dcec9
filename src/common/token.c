/* SPDX-License-Identifier: MIT */
/*
 * HS256 JSON Web Tokens: issue, verify with the algorithm pinned before the signature is
 * looked at, and hash for storage. Verification decodes into stack buffers; jansson's parse
 * is its only allocation, and a check costs about ten microseconds and no database.
 */
#include "manas360/token.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "manas360/err.h"

#define TOKEN_ALGORITHM "HS256"
#define TOKEN_HEADER_JSON "{\"alg\":\"" TOKEN_ALGORITHM "\",\"typ\":\"JWT\"}"
#define TOKEN_B64 sodium_base64_VARIANT_URLSAFE_NO_PADDING
#define TOKEN_B64_ALPHABET "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
#define TOKEN_MAC_BYTES crypto_auth_hmacsha256_BYTES
#define TOKEN_UUID_CHARS 36
#define TOKEN_UUID_BYTES 16
#define TOKEN_IAT_LEEWAY_S 60       /* clock skew tolerated between the hosts that issue */
#define TOKEN_PAYLOAD_MAX_BYTES 384 /* the claims we write, as JSON, with room to spare */

/* Duplicate keys are refused: two parsers could each believe a different `alg` or `sub`. */
#define TOKEN_JSON_FLAGS JSON_REJECT_DUPLICATES

/* header "." payload "." signature: each ENCODED_LEN counts a NUL, so two stand for the dots. */
_Static_assert(sodium_base64_ENCODED_LEN(sizeof(TOKEN_HEADER_JSON) - 1, TOKEN_B64) +
                       sodium_base64_ENCODED_LEN(TOKEN_PAYLOAD_MAX_BYTES, TOKEN_B64) +
                       sodium_base64_ENCODED_LEN(TOKEN_MAC_BYTES, TOKEN_B64) <=
                   TOKEN_MAX_BYTES,
               "an issued token always fits in TOKEN_MAX_BYTES");

/*
 * One token cut at its dots and decoded. A decoded part is shorter than its text, and the
 * text is at most TOKEN_MAX_BYTES, so no part can overflow its buffer.
 */
struct token_parts {
    unsigned char header[TOKEN_MAX_BYTES];
    unsigned char payload[TOKEN_MAX_BYTES];
    unsigned char mac[TOKEN_MAX_BYTES];
    size_t header_len;
    size_t payload_len;
    size_t mac_len;
    size_t signed_len; /* the bytes of "header.payload", which the signature covers */
};

static const char *const token_verdict_names[] = {
    [TOKEN_VALID] = "valid",
    [TOKEN_MALFORMED] = "malformed",
    [TOKEN_BAD_ALGORITHM] = "bad_algorithm",
    [TOKEN_BAD_SIGNATURE] = "bad_signature",
    [TOKEN_WRONG_TYPE] = "wrong_type",
    [TOKEN_WRONG_ISSUER] = "wrong_issuer",
    [TOKEN_EXPIRED] = "expired",
    [TOKEN_NOT_YET_VALID] = "not_yet_valid",
};

const char *token_verdict_name(enum token_verdict verdict)
{
    size_t count = sizeof(token_verdict_names) / sizeof(token_verdict_names[0]);

    if ((size_t)verdict >= count)
        return "unknown";
    return token_verdict_names[verdict];
}

static const char *token_type_name(enum token_type type)
{
    return type == TOKEN_ACCESS ? "access" : "refresh";
}

/* The key of a type; NULL for a type we do not know or a secret that is missing or empty. */
static const char *token_secret(const struct token_keys *keys, enum token_type type)
{
    const char *secret = NULL;

    if (type == TOKEN_ACCESS)
        secret = keys->access_secret;
    else if (type == TOKEN_REFRESH)
        secret = keys->refresh_secret;
    return secret != NULL && secret[0] != '\0' ? secret : NULL;
}

static bool token_hex_digit(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* True for 36 characters in the 8-4-4-4-12 hex layout of a UUID. */
static bool token_uuid_valid(const char *text, size_t len)
{
    if (len != TOKEN_UUID_CHARS)
        return false;
    for (size_t i = 0; i < len; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;

        if (dash ? text[i] != '-' : !token_hex_digit(text[i]))
            return false;
    }
    return true;
}

/* A random version 4 UUID in lower-case text. */
static void token_jti_new(char out[TOKEN_ID_BYTES])
{
    unsigned char raw[TOKEN_UUID_BYTES];
    char hex[2 * TOKEN_UUID_BYTES + 1];

    randombytes_buf(raw, sizeof(raw));
    raw[6] = (unsigned char)((raw[6] & 0x0F) | 0x40); /* version 4 */
    raw[8] = (unsigned char)((raw[8] & 0x3F) | 0x80); /* RFC 4122 variant */
    sodium_bin2hex(hex, sizeof(hex), raw, sizeof(raw));
    snprintf(out, TOKEN_ID_BYTES, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16,
             hex + 20);
}

static void token_mac_compute(const char *secret, const char *data, size_t len,
                              unsigned char mac[TOKEN_MAC_BYTES])
{
    crypto_auth_hmacsha256_state state;

    crypto_auth_hmacsha256_init(&state, (const unsigned char *)secret, strlen(secret));
    crypto_auth_hmacsha256_update(&state, (const unsigned char *)data, len);
    crypto_auth_hmacsha256_final(&state, mac);
    sodium_memzero(&state, sizeof(state));
}

/* Appends base64url of `bin` at out[*pos]; the _Static_assert above guarantees the room. */
static void token_b64_append(char *out, size_t *pos, const void *bin, size_t len)
{
    sodium_bin2base64(out + *pos, TOKEN_MAX_BYTES - *pos, bin, len, TOKEN_B64);
    *pos += sodium_base64_ENCODED_LEN(len, TOKEN_B64) - 1;
}

/*
 * The claims as JSON. Every value is a checked UUID, a fixed word or an integer, so none
 * needs escaping and printing them is both exact and free of allocation.
 */
static int token_payload_write(const struct token_claims *c, char *out, size_t size, size_t *len)
{
    int n;

    n = snprintf(out, size,
                 "{\"sub\":\"%s\",\"sid\":\"%s\",\"jti\":\"%s\",\"typ\":\"%s\",\"iss\":\"%s\","
                 "\"iat\":%" PRId64 ",\"exp\":%" PRId64 "}",
                 c->sub, c->sid, c->jti, token_type_name(c->type), TOKEN_ISSUER, c->iat, c->exp);
    if (n < 0 || (size_t)n >= size)
        return M360_EINTERNAL;
    *len = (size_t)n;
    return 0;
}

int token_issue(const struct token_keys *keys, enum token_type type, const char *sub,
                const char *sid, int64_t now, char *out, size_t size, struct token_claims *claims)
{
    const char *secret = token_secret(keys, type);
    int64_t ttl = type == TOKEN_ACCESS ? keys->access_ttl_s : keys->refresh_ttl_s;
    char payload[TOKEN_PAYLOAD_MAX_BYTES + 1];
    unsigned char mac[TOKEN_MAC_BYTES];
    struct token_claims c;
    size_t payload_len;
    size_t pos = 0;
    int rc;

    if (secret == NULL || size < TOKEN_MAX_BYTES || sub == NULL || sid == NULL)
        return M360_EINVAL;
    if (!token_uuid_valid(sub, strlen(sub)) || !token_uuid_valid(sid, strlen(sid)))
        return M360_EINVAL;
    if (ttl <= 0 || now > INT64_MAX - ttl)
        return M360_EINVAL;

    memset(&c, 0, sizeof(c));
    c.type = type;
    memcpy(c.sub, sub, TOKEN_ID_BYTES);
    memcpy(c.sid, sid, TOKEN_ID_BYTES);
    token_jti_new(c.jti);
    c.iat = now;
    c.exp = now + ttl;
    rc = token_payload_write(&c, payload, sizeof(payload), &payload_len);
    if (rc != 0)
        return rc;

    token_b64_append(out, &pos, TOKEN_HEADER_JSON, sizeof(TOKEN_HEADER_JSON) - 1);
    out[pos++] = '.';
    token_b64_append(out, &pos, payload, payload_len);
    token_mac_compute(secret, out, pos, mac);
    out[pos++] = '.';
    token_b64_append(out, &pos, mac, sizeof(mac));

    if (claims != NULL)
        *claims = c;
    return 0;
}

/* Decodes one non-empty part, refusing padding, stray characters and non-zero spare bits. */
static bool token_part_decode(const char *text, size_t len, unsigned char *out, size_t *out_len)
{
    if (len == 0)
        return false;
    return sodium_base642bin(out, TOKEN_MAX_BYTES, text, len, NULL, out_len, NULL, TOKEN_B64) == 0;
}

/* Checks the shape: at most TOKEN_MAX_BYTES, and exactly three non-empty base64url parts. */
static enum token_verdict token_parts_split(const char *token, struct token_parts *p)
{
    size_t len = strnlen(token, TOKEN_MAX_BYTES + 1);
    const char *end = token + len;
    const char *dot1;
    const char *dot2;

    if (len > TOKEN_MAX_BYTES)
        return TOKEN_MALFORMED;

    /* libsodium 1.0.18 decodes every byte from 0x80 up as '_', which would give one token
     * many spellings, and so many hashes: only the alphabet and the dots may pass. */
    if (strspn(token, TOKEN_B64_ALPHABET ".") != len)
        return TOKEN_MALFORMED;

    dot1 = memchr(token, '.', len);
    if (dot1 == NULL)
        return TOKEN_MALFORMED;
    dot2 = memchr(dot1 + 1, '.', (size_t)(end - dot1 - 1));
    if (dot2 == NULL || memchr(dot2 + 1, '.', (size_t)(end - dot2 - 1)) != NULL)
        return TOKEN_MALFORMED;

    if (!token_part_decode(token, (size_t)(dot1 - token), p->header, &p->header_len) ||
        !token_part_decode(dot1 + 1, (size_t)(dot2 - dot1 - 1), p->payload, &p->payload_len) ||
        !token_part_decode(dot2 + 1, (size_t)(end - dot2 - 1), p->mac, &p->mac_len))
        return TOKEN_MALFORMED;
    p->signed_len = (size_t)(dot2 - token);
    return TOKEN_VALID;
}

/* True when `value` is a JSON string equal to `want`, byte for byte. */
static bool token_json_string_is(const json_t *value, const char *want)
{
    size_t len = strlen(want);

    return json_is_string(value) && json_string_length(value) == len &&
           memcmp(json_string_value(value), want, len) == 0;
}

/*
 * Pins the algorithm before the signature is computed, so neither "none" nor a family we
 * do not implement can choose how the token is checked.
 */
static enum token_verdict token_header_check(const struct token_parts *p)
{
    enum token_verdict verdict = TOKEN_VALID;
    json_t *header;

    /* Our own header, byte for byte, parses to alg HS256 and nothing else: skip the parse. */
    if (p->header_len == sizeof(TOKEN_HEADER_JSON) - 1 &&
        memcmp(p->header, TOKEN_HEADER_JSON, p->header_len) == 0)
        return TOKEN_VALID;

    header = json_loadb((const char *)p->header, p->header_len, TOKEN_JSON_FLAGS, NULL);
    if (!json_is_object(header))
        verdict = TOKEN_MALFORMED;
    else if (!token_json_string_is(json_object_get(header, "alg"), TOKEN_ALGORITHM))
        verdict = TOKEN_BAD_ALGORITHM;

    /* RFC 7515: a header that makes extensions critical is refused when we know none. */
    if (verdict == TOKEN_VALID && json_object_get(header, "crit") != NULL)
        verdict = TOKEN_MALFORMED;
    json_decref(header);
    return verdict;
}

static enum token_verdict token_signature_check(const struct token_keys *keys,
                                                enum token_type expected, const char *token,
                                                const struct token_parts *p)
{
    const char *secret = token_secret(keys, expected);
    unsigned char mac[TOKEN_MAC_BYTES];
    int diff;

    if (secret == NULL || p->mac_len != sizeof(mac))
        return TOKEN_BAD_SIGNATURE;

    /* The expected MAC is a valid signature for whatever payload was sent: it must not leak. */
    token_mac_compute(secret, token, p->signed_len, mac);
    diff = sodium_memcmp(mac, p->mac, sizeof(mac));
    sodium_memzero(mac, sizeof(mac));
    return diff == 0 ? TOKEN_VALID : TOKEN_BAD_SIGNATURE;
}

/* Copies a UUID claim; false when it is missing, not a string or not a UUID. */
static bool token_claim_id(const json_t *payload, const char *name, char out[TOKEN_ID_BYTES])
{
    const json_t *value = json_object_get(payload, name);

    if (!json_is_string(value) ||
        !token_uuid_valid(json_string_value(value), json_string_length(value)))
        return false;
    memcpy(out, json_string_value(value), TOKEN_ID_BYTES);
    return true;
}

/* Reads and checks every claim but the times, which depend on `now`. */
static enum token_verdict token_claims_read(const json_t *payload, enum token_type expected,
                                            struct token_claims *c)
{
    const json_t *typ = json_object_get(payload, "typ");
    const json_t *iss = json_object_get(payload, "iss");
    const json_t *iat = json_object_get(payload, "iat");
    const json_t *exp = json_object_get(payload, "exp");

    if (!json_is_object(payload))
        return TOKEN_MALFORMED;
    if (!token_claim_id(payload, "sub", c->sub) || !token_claim_id(payload, "sid", c->sid) ||
        !token_claim_id(payload, "jti", c->jti))
        return TOKEN_MALFORMED;
    if (!json_is_string(typ) || !json_is_string(iss) || !json_is_integer(iat) ||
        !json_is_integer(exp))
        return TOKEN_MALFORMED;

    if (!token_json_string_is(typ, token_type_name(expected)))
        return TOKEN_WRONG_TYPE;
    if (!token_json_string_is(iss, TOKEN_ISSUER))
        return TOKEN_WRONG_ISSUER;
    c->type = expected;
    c->iat = json_integer_value(iat);
    c->exp = json_integer_value(exp);
    return TOKEN_VALID;
}

enum token_verdict token_verify(const struct token_keys *keys, enum token_type expected,
                                const char *token, int64_t now, struct token_claims *claims)
{
    struct token_parts parts;
    struct token_claims c;
    enum token_verdict verdict;
    json_t *payload;

    if (token == NULL)
        return TOKEN_MALFORMED;
    verdict = token_parts_split(token, &parts);
    if (verdict == TOKEN_VALID)
        verdict = token_header_check(&parts);
    if (verdict == TOKEN_VALID)
        verdict = token_signature_check(keys, expected, token, &parts);
    if (verdict != TOKEN_VALID)
        return verdict;

    memset(&c, 0, sizeof(c));
    payload = json_loadb((const char *)parts.payload, parts.payload_len, TOKEN_JSON_FLAGS, NULL);
    verdict = token_claims_read(payload, expected, &c);
    json_decref(payload);
    if (verdict != TOKEN_VALID)
        return verdict;

    if (now >= c.exp)
        return TOKEN_EXPIRED;
    if (now <= INT64_MAX - TOKEN_IAT_LEEWAY_S && c.iat > now + TOKEN_IAT_LEEWAY_S)
        return TOKEN_NOT_YET_VALID;
    if (claims != NULL)
        *claims = c;
    return TOKEN_VALID;
}

void token_hash_hex(const char *token, char out[65])
{
    unsigned char digest[crypto_hash_sha256_BYTES];

    crypto_hash_sha256(digest, (const unsigned char *)token, strlen(token));
    sodium_bin2hex(out, 2 * sizeof(digest) + 1, digest, sizeof(digest));
}
