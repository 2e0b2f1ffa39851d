/*
 * The OAuth state and the PKCE checks (oauth_state.h). The state is a
 * compact HMAC-signed token of our own rather than a JWT: it is signed with a
 * key derived from the JWT secret and has its own shape, so it can never be
 * presented as an access token, and no JWT option (alg, kid) is parsed.
 */
#include "auth/oauth_state.h"

#include <ctype.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/text.h"

char *oauth_state_sign(const json_t *claims, const unsigned char *key, size_t keylen)
{
    if (!json_is_object(claims))
        return NULL;
    char *payload = json_dumps(claims, JSON_COMPACT | JSON_SORT_KEYS);
    if (!payload)
        return NULL;
    size_t n = strlen(payload);
    size_t enc_len = 4 * ((n + 2) / 3) + 1;
    if (enc_len + 1 + CD_TOKEN_LEN + 1 > OAUTH_STATE_MAX) {
        free(payload);
        return NULL;
    }
    char *out = malloc(enc_len + 1 + CD_TOKEN_LEN + 1);
    if (!out) {
        free(payload);
        return NULL;
    }
    size_t w = cd_base64url_encode((const unsigned char *)payload, n, out);
    free(payload);
    out[w] = '.';
    cd_hmac_b64url(key, keylen, out, w, out + w + 1);
    return out;
}

oauth_state_status_t oauth_state_verify(const char *state, const unsigned char *key, size_t keylen,
                                        long long now, json_t **claims)
{
    *claims = NULL;
    if (!state)
        return OAUTH_STATE_MALFORMED;
    size_t len = strnlen(state, OAUTH_STATE_MAX + 1);
    const char *dot = memchr(state, '.', len);
    if (len > OAUTH_STATE_MAX || !dot || dot == state)
        return OAUTH_STATE_MALFORMED;
    size_t plen = (size_t)(dot - state);
    char mac[CD_TOKEN_LEN + 1];
    cd_hmac_b64url(key, keylen, state, plen, mac);
    if (!cd_secure_equal(mac, dot + 1))
        return OAUTH_STATE_SIGNATURE;
    unsigned char buf[OAUTH_STATE_MAX];
    size_t n = 0;
    if (!cd_base64url_decode(state, plen, buf, sizeof(buf), &n))
        return OAUTH_STATE_MALFORMED;
    json_error_t je;
    json_t *j = json_loadb((const char *)buf, n, JSON_REJECT_DUPLICATES, &je);
    if (!json_is_object(j)) {
        json_decref(j);
        return OAUTH_STATE_MALFORMED;
    }
    json_t *exp = json_object_get(j, "exp");
    if (!json_is_integer(exp) || json_integer_value(exp) <= now) {
        json_decref(j);
        return OAUTH_STATE_EXPIRED;
    }
    *claims = j;
    return OAUTH_STATE_OK;
}

bool oauth_pkce_valid(const char *v)
{
    if (!v)
        return false;
    size_t n = strnlen(v, 129);
    if (n < 43 || n > 128)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        if (!isalnum(c) && c != '-' && c != '.' && c != '_' && c != '~')
            return false;
    }
    return true;
}

void oauth_pkce_s256(const char *verifier, char out[CD_TOKEN_LEN + 1])
{
    unsigned char md[32];
    unsigned int n = 0;
    EVP_Digest(verifier, strlen(verifier), md, &n, EVP_sha256(), NULL);
    cd_base64url_encode(md, sizeof(md), out);
}

bool oauth_pkce_matches(const char *method, const char *challenge, const char *verifier)
{
    if (!method || !challenge || !oauth_pkce_valid(verifier))
        return false;
    if (strcasecmp(method, "plain") == 0)
        return cd_secure_equal(challenge, verifier);
    if (strcasecmp(method, "s256") != 0)
        return false;
    char want[CD_TOKEN_LEN + 1];
    oauth_pkce_s256(verifier, want);
    return cd_secure_equal(challenge, want);
}
