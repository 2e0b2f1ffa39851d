/*
 * HS256 JWT verification and signing, shared by every layer that meets a token (auth issues
 * sessions, app.c derives the API keys, rest/realtime/storage verify callers). It needs only
 * core, jansson, OpenSSL and libjwt, so it lives in core/.
 *
 * Verification is written out here rather than delegated to libjwt's jwt_decode(), on purpose:
 *  - In jwt_decode() the token's own header picks the algorithm. libjwt 1.x accepts HS384,
 *    HS512 and RS/ES tokens through the same call, and accepts alg "none" outright when the
 *    key passed in is NULL/empty: the classic alg-confusion / "none" pattern. We pin the
 *    algorithm ourselves and look at "alg" before any key is used.
 *  - libjwt 1.10.2 upstream compared signatures with strcmp() on base64 text (CVE-2024-25189,
 *    a timing side channel; only distribution patches fix it) and its base64 decoder tolerates
 *    padding and non-canonical encodings. We HMAC with OpenSSL and compare the raw 32 bytes
 *    with CRYPTO_memcmp(), after a strict base64url decode.
 *  - jwt_decode() does not check exp/nbf/iat, typ, duplicate JSON keys or the role claim.
 * Signing has none of these hazards (we choose every input), so it uses libjwt.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* strnlen */
#endif

#include "core/jwt.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <jwt.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "core/text.h"

#define JWT_HS256_MAC_BYTES 32
/* Largest decoded size of one part of a token that passed the length limit. */
#define JWT_MAX_PART_BYTES ((JWT_MAX_TOKEN_BYTES / 4) * 3 + 2)

/* Parses buf[0..len) as exactly one JSON object with no duplicate keys and no "\u0000" in
 * strings (jansson's default). Returns a new reference or NULL. */
static json_t *parse_object(const unsigned char *buf, size_t len)
{
    json_error_t err;
    json_t *v = json_loadb((const char *)buf, len, JSON_REJECT_DUPLICATES, &err);

    if (v != NULL && !json_is_object(v)) {
        json_decref(v);
        v = NULL;
    }
    return v;
}

/* True if v is a JSON string equal to lit byte for byte (an embedded NUL never matches). */
static bool json_string_is(const json_t *v, const char *lit)
{
    size_t n = strlen(lit);

    return json_is_string(v) && json_string_length(v) == n &&
           memcmp(json_string_value(v), lit, n) == 0;
}

/* Pins the algorithm: alg must be exactly "HS256"; typ, if present, exactly "JWT"; "crit"
 * (RFC 7515 4.1.11) names extensions we do not implement, so any "crit" is refused. */
static jwt_status_t check_header(const json_t *hdr)
{
    const json_t *typ = json_object_get(hdr, "typ");

    if (!json_string_is(json_object_get(hdr, "alg"), "HS256"))
        return JWT_ERR_ALG;
    if (typ != NULL && !json_string_is(typ, "JWT"))
        return JWT_ERR_ALG;
    if (json_object_get(hdr, "crit") != NULL)
        return JWT_ERR_ALG;
    return JWT_OK;
}

/* Reads the NumericDate claim `name`. Absent: *present = false, JWT_OK. Present: must be a JSON
 * integer or an integral real within the range of long long, else JWT_ERR_MALFORMED. */
static jwt_status_t read_time_claim(const json_t *claims, const char *name, bool *present,
                                    long long *value)
{
    const json_t *v = json_object_get(claims, name);

    *present = false;
    *value = 0;
    if (v == NULL)
        return JWT_OK;
    if (json_is_integer(v)) {
        *value = (long long)json_integer_value(v);
    } else if (json_is_real(v)) {
        double d = json_real_value(v);
        /* The range test also rejects NaN; inside it the conversion is defined. */
        if (!(d >= -0x1p63 && d < 0x1p63))
            return JWT_ERR_MALFORMED;
        if ((double)(long long)d != d)
            return JWT_ERR_MALFORMED;
        *value = (long long)d;
    } else {
        return JWT_ERR_MALFORMED;
    }
    *present = true;
    return JWT_OK;
}

/* a - b and a + b for b >= 0, saturating instead of overflowing. */
static long long sat_sub(long long a, long long b)
{
    return a < LLONG_MIN + b ? LLONG_MIN : a - b;
}

static long long sat_add(long long a, long long b)
{
    return a > LLONG_MAX - b ? LLONG_MAX : a + b;
}

/* Applies exp (required), nbf and iat against now with the given non-negative skew. */
static jwt_status_t check_times(const json_t *claims, long long now, long long skew)
{
    bool has_exp, has_nbf, has_iat;
    long long exp, nbf, iat;
    jwt_status_t st;

    if ((st = read_time_claim(claims, "exp", &has_exp, &exp)) != JWT_OK)
        return st;
    if ((st = read_time_claim(claims, "nbf", &has_nbf, &nbf)) != JWT_OK)
        return st;
    if ((st = read_time_claim(claims, "iat", &has_iat, &iat)) != JWT_OK)
        return st;
    if (!has_exp || exp <= sat_sub(now, skew))
        return JWT_ERR_EXPIRED;
    if (has_nbf && nbf > sat_add(now, skew))
        return JWT_ERR_NOT_YET_VALID;
    if (has_iat && iat > sat_add(now, skew))
        return JWT_ERR_NOT_YET_VALID;
    return JWT_OK;
}

/* The role becomes a PostgreSQL role (SET ROLE), so only the three API roles pass. */
static jwt_status_t check_role(const json_t *claims)
{
    const json_t *role = json_object_get(claims, "role");

    if (json_string_is(role, "anon") || json_string_is(role, "authenticated") ||
        json_string_is(role, "service_role"))
        return JWT_OK;
    return JWT_ERR_ROLE;
}

jwt_status_t jwt_verify(const char *token, const unsigned char *secret, size_t secret_len,
                        long long now, long skew, json_t **claims)
{
    unsigned char part[JWT_MAX_PART_BYTES];
    unsigned char sig[JWT_HS256_MAC_BYTES];
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    const char *dot1, *dot2;
    size_t len, part_len = 0;
    bool sig_len_ok;
    json_t *hdr = NULL, *payload = NULL;
    jwt_status_t st = JWT_ERR_MALFORMED;

    if (claims != NULL)
        *claims = NULL;
    if (token == NULL)
        goto fail;
    len = strnlen(token, (size_t)JWT_MAX_TOKEN_BYTES + 1);
    if (len > JWT_MAX_TOKEN_BYTES)
        goto fail;

    /* Shape: exactly two dots, three base64url parts, header and payload JSON objects. */
    dot1 = memchr(token, '.', len);
    if (dot1 == NULL)
        goto fail;
    dot2 = memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token));
    if (dot2 == NULL || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token)) != NULL)
        goto fail;

    if (!cd_base64url_decode(token, (size_t)(dot1 - token), part, sizeof(part), &part_len))
        goto fail;
    if ((hdr = parse_object(part, part_len)) == NULL)
        goto fail;
    if (!cd_base64url_decode(dot1 + 1, (size_t)(dot2 - dot1 - 1), part, sizeof(part), &part_len))
        goto fail;
    if ((payload = parse_object(part, part_len)) == NULL)
        goto fail;
    if (!cd_base64url_decode(dot2 + 1, len - (size_t)(dot2 + 1 - token), part, sizeof(part),
                             &part_len))
        goto fail;
    sig_len_ok = part_len == JWT_HS256_MAC_BYTES;
    if (sig_len_ok)
        memcpy(sig, part, JWT_HS256_MAC_BYTES);

    if ((st = check_header(hdr)) != JWT_OK)
        goto fail;

    /* Signature over the exact received bytes "header.payload". */
    st = JWT_ERR_SIGNATURE;
    if (!sig_len_ok || secret == NULL || secret_len == 0 || secret_len > INT_MAX)
        goto fail;
    if (HMAC(EVP_sha256(), secret, (int)secret_len, (const unsigned char *)token,
             (size_t)(dot2 - token), mac, &mac_len) == NULL ||
        mac_len != JWT_HS256_MAC_BYTES)
        goto fail;
    if (CRYPTO_memcmp(mac, sig, JWT_HS256_MAC_BYTES) != 0)
        goto fail;

    if ((st = check_times(payload, now, skew > 0 ? (long long)skew : 0)) != JWT_OK)
        goto fail;
    if ((st = check_role(payload)) != JWT_OK)
        goto fail;

    if (claims != NULL) {
        *claims = payload;
        payload = NULL;
    }

fail:
    /* The expected MAC is a valid signature for attacker-chosen bytes: do not leave it around. */
    OPENSSL_cleanse(mac, sizeof(mac));
    json_decref(payload);
    json_decref(hdr);
    return st;
}

const char *jwt_status_message(jwt_status_t st)
{
    switch (st) {
    case JWT_OK:
        return "token is valid";
    case JWT_ERR_MALFORMED:
        return "token is malformed";
    case JWT_ERR_ALG:
        return "token algorithm is not HS256";
    case JWT_ERR_SIGNATURE:
        return "token signature is invalid";
    case JWT_ERR_EXPIRED:
        return "token has expired or has no exp claim";
    case JWT_ERR_NOT_YET_VALID:
        return "token is not valid yet";
    case JWT_ERR_ROLE:
        return "token role is missing or not allowed";
    }
    return "token is invalid";
}

char *jwt_sign(const json_t *claims, const unsigned char *secret, size_t secret_len)
{
    jwt_t *jwt = NULL;
    char *payload = NULL;
    char *token = NULL;

    if (!json_is_object(claims) || secret == NULL || secret_len == 0 || secret_len > INT_MAX)
        goto fail;
    /* libjwt takes grants as JSON text; it re-serialises them compactly with sorted keys and
     * writes the header {"alg":"HS256","typ":"JWT"} (pinned by a known-answer unit test). */
    if ((payload = json_dumps(claims, JSON_COMPACT)) == NULL)
        goto fail;
    if (jwt_new(&jwt) != 0)
        goto fail;
    if (jwt_add_grants_json(jwt, payload) != 0)
        goto fail;
    if (jwt_set_alg(jwt, JWT_ALG_HS256, secret, (int)secret_len) != 0)
        goto fail;
    token = jwt_encode_str(jwt);

fail:
    jwt_free(jwt);
    free(payload);
    return token;
}
