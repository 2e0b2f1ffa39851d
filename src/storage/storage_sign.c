/*
 * Signed-URL tokens: compact HS256 JWTs ({"url":"bucket/name","exp",...})
 * under the project's JWT secret, as Supabase Storage makes them. They carry
 * no "role", so jwt_verify (src/core/jwt.c) never accepts one as an access
 * token, and this verifier accepts only the one header it writes.
 */
#include <stdlib.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <string.h>

#include "core/crypto.h"
#include "core/text.h"
#include "storage/storage_internal.h"

/* base64url('{"alg":"HS256","typ":"JWT"}') */
static const char TOKEN_HEADER[] = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";

/* URL tokens are signed with a key derived from the JWT secret, never with
 * the secret itself: an access token can then never pass for a URL token,
 * nor a URL token for an access token, whatever claims either carries. */
static void url_key(const unsigned char *secret, size_t secret_len, unsigned char out[32])
{
    static const char label[] = "campaignd storage url token v1";
    unsigned int n = 0;
    HMAC(EVP_sha256(), secret, (int)secret_len, (const unsigned char *)label, sizeof(label) - 1,
         out, &n);
}

char *storage__token_sign(const json_t *claims, const unsigned char *secret, size_t secret_len)
{
    if (!json_is_object(claims) || !secret || secret_len == 0)
        return NULL;
    char *payload = json_dumps(claims, JSON_COMPACT | JSON_SORT_KEYS);
    if (!payload)
        return NULL;
    size_t plen = strlen(payload);
    size_t hlen = sizeof(TOKEN_HEADER) - 1;
    size_t b64len = 4 * ((plen + 2) / 3) + 1;
    size_t total = hlen + 1 + b64len + 1 + CD_TOKEN_LEN + 1;
    char *tok = NULL;
    if (total > STORAGE_TOKEN_MAX_BYTES)
        goto fail;
    tok = malloc(total);
    if (!tok)
        goto fail;
    memcpy(tok, TOKEN_HEADER, hlen);
    tok[hlen] = '.';
    size_t n = cd_base64url_encode((const unsigned char *)payload, plen, tok + hlen + 1);
    size_t signed_len = hlen + 1 + n;
    tok[signed_len] = '.';
    unsigned char key[32];
    url_key(secret, secret_len, key);
    cd_hmac_b64url(key, sizeof(key), tok, signed_len, tok + signed_len + 1);
    free(payload);
    return tok;
fail:
    free(payload);
    free(tok);
    return NULL;
}

storage_token_status_t storage__token_verify(const char *token, const unsigned char *secret,
                                             size_t secret_len, long long now, json_t **claims)
{
    *claims = NULL;
    if (!token || !secret || secret_len == 0)
        return STORAGE_TOKEN_MALFORMED;
    size_t len = strnlen(token, STORAGE_TOKEN_MAX_BYTES + 1);
    size_t hlen = sizeof(TOKEN_HEADER) - 1;
    if (len > STORAGE_TOKEN_MAX_BYTES || len < hlen + 2 ||
        strncmp(token, TOKEN_HEADER, hlen) != 0 || token[hlen] != '.')
        return STORAGE_TOKEN_MALFORMED;
    const char *payload = token + hlen + 1;
    const char *dot = memchr(payload, '.', len - hlen - 1);
    if (!dot || (size_t)(token + len - (dot + 1)) != CD_TOKEN_LEN)
        return STORAGE_TOKEN_MALFORMED;
    char sig[CD_TOKEN_LEN + 1];
    unsigned char key[32];
    url_key(secret, secret_len, key);
    cd_hmac_b64url(key, sizeof(key), token, (size_t)(dot - token), sig);
    if (!cd_secure_equal(sig, dot + 1))
        return STORAGE_TOKEN_SIGNATURE;
    size_t plen = (size_t)(dot - payload);
    unsigned char buf[STORAGE_TOKEN_MAX_BYTES];
    size_t blen = 0;
    if (!cd_base64url_decode(payload, plen, buf, sizeof(buf), &blen))
        return STORAGE_TOKEN_MALFORMED;
    json_t *j = json_loadb((const char *)buf, blen, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(j)) {
        json_decref(j);
        return STORAGE_TOKEN_MALFORMED;
    }
    json_t *exp = json_object_get(j, "exp");
    if (!json_is_integer(exp) || json_integer_value(exp) <= now) {
        json_decref(j);
        return STORAGE_TOKEN_EXPIRED;
    }
    *claims = j;
    return STORAGE_TOKEN_OK;
}

const char *storage__token_message(storage_token_status_t st)
{
    switch (st) {
    case STORAGE_TOKEN_OK:
        return "ok";
    case STORAGE_TOKEN_MALFORMED:
        return "jwt malformed";
    case STORAGE_TOKEN_SIGNATURE:
        return "invalid signature";
    case STORAGE_TOKEN_EXPIRED:
        return "jwt expired";
    }
    return "invalid token";
}
