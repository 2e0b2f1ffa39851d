/*
 * id_token verification (oidc_token.h). The keys are built from their JWK
 * members with OpenSSL's EVP_PKEY_fromdata and the signature checked with
 * EVP_DigestVerify: no cryptography of our own. libjwt (1.10 in Debian 12)
 * takes PEM keys only and has no JWKS support, so it would still need the
 * JWK-to-key step here; OpenSSL alone does both. ES256 signatures are the
 * raw r||s of JWS (RFC 7518 3.4), turned into the DER form OpenSSL verifies.
 */
#include "auth/oidc_token.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <stdlib.h>
#include <string.h>

#include "core/crypto.h"
#include "core/text.h"

#define RSA_MIN_BITS   2048
#define JWK_MEMBER_MAX 1024 /* bytes of a decoded n (8192-bit modulus) */

/* ------------------------------------------------------------------ keys */

/* A base64url member of a JWK, decoded into out (at most cap bytes). */
static bool b64_member(const json_t *jwk, const char *key, unsigned char *out, size_t cap,
                       size_t *n)
{
    const char *s = json_string_value(json_object_get(jwk, key));
    return s && *s && cd_base64url_decode(s, strlen(s), out, cap, n);
}

/* A public key of type ("RSA", "EC") from the parameters in bld. */
static EVP_PKEY *from_params(const char *type, OSSL_PARAM_BLD *bld)
{
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    EVP_PKEY *pkey = NULL;
    if (!params || !ctx || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
        pkey = NULL;
    OSSL_PARAM_free(params);
    EVP_PKEY_CTX_free(ctx);
    return pkey;
}

static EVP_PKEY *rsa_key(const json_t *jwk)
{
    unsigned char n[JWK_MEMBER_MAX], e[16];
    size_t nl = 0, el = 0;
    if (!b64_member(jwk, "n", n, sizeof(n), &nl) || !b64_member(jwk, "e", e, sizeof(e), &el))
        return NULL;
    BIGNUM *bn = BN_bin2bn(n, (int)nl, NULL);
    BIGNUM *be = BN_bin2bn(e, (int)el, NULL);
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    EVP_PKEY *k = NULL;
    if (bn && be && bld && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be))
        k = from_params("RSA", bld);
    OSSL_PARAM_BLD_free(bld);
    BN_free(bn);
    BN_free(be);
    if (k && EVP_PKEY_get_bits(k) < RSA_MIN_BITS) {
        EVP_PKEY_free(k);
        k = NULL;
    }
    return k;
}

/* A P-256 key: the uncompressed point 04||x||y (OpenSSL checks it is on the
 * curve). */
static EVP_PKEY *ec_key(const json_t *jwk)
{
    const char *crv = json_string_value(json_object_get(jwk, "crv"));
    unsigned char pub[65];
    size_t xl = 0, yl = 0;
    if (!crv || strcmp(crv, "P-256") != 0 || !b64_member(jwk, "x", pub + 1, 32, &xl) ||
        !b64_member(jwk, "y", pub + 33, 32, &yl) || xl != 32 || yl != 32)
        return NULL;
    pub[0] = 0x04;
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    EVP_PKEY *k = NULL;
    if (bld && OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) &&
        OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof(pub)))
        k = from_params("EC", bld);
    OSSL_PARAM_BLD_free(bld);
    return k;
}

static bool member_is(const json_t *obj, const char *key, const char *want)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s && strcmp(s, want) == 0;
}

/* The key of the set for alg and kid (NULL kid: the only key that fits), or
 * NULL. Keys meant for encryption, or for another alg, never fit. */
static EVP_PKEY *find_key(const json_t *jwks, const char *alg, const char *kid)
{
    bool ec = strcmp(alg, "ES256") == 0;
    json_t *keys = json_object_get(jwks, "keys");
    const json_t *found = NULL;
    size_t fits = 0, i;
    json_t *k;
    json_array_foreach(keys, i, k)
    {
        if (!member_is(k, "kty", ec ? "EC" : "RSA") ||
            (json_object_get(k, "use") && !member_is(k, "use", "sig")) ||
            (json_object_get(k, "alg") && !member_is(k, "alg", alg)))
            continue;
        if (kid && member_is(k, "kid", kid)) {
            found = k;
            fits = 1;
            break;
        }
        if (!kid) {
            found = k;
            fits++;
        }
    }
    if (fits != 1)
        return NULL;
    return ec ? ec_key(found) : rsa_key(found);
}

/* ------------------------------------------------------------- signature */

static bool verify_signature(EVP_PKEY *k, bool ec, const char *input, size_t inlen,
                             const unsigned char *sig, size_t siglen)
{
    unsigned char *der = NULL;
    const unsigned char *s = sig;
    size_t sl = siglen;
    if (ec) {
        if (siglen != 64)
            return false;
        ECDSA_SIG *es = ECDSA_SIG_new();
        BIGNUM *r = BN_bin2bn(sig, 32, NULL);
        BIGNUM *ss = BN_bin2bn(sig + 32, 32, NULL);
        if (!es || !r || !ss || ECDSA_SIG_set0(es, r, ss) != 1) {
            BN_free(r);
            BN_free(ss);
            ECDSA_SIG_free(es);
            return false;
        }
        int n = i2d_ECDSA_SIG(es, &der);
        ECDSA_SIG_free(es);
        if (n <= 0)
            return false;
        s = der;
        sl = (size_t)n;
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    bool ok = ctx && EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, k) == 1 &&
              EVP_DigestVerify(ctx, s, sl, (const unsigned char *)input, inlen) == 1;
    EVP_MD_CTX_free(ctx);
    OPENSSL_free(der);
    return ok;
}

/* ---------------------------------------------------------------- claims */

/* The JSON object encoded in in[0..len), or NULL. */
static json_t *decode_object(const char *in, size_t len)
{
    unsigned char *buf = malloc(len + 1);
    size_t n = 0;
    json_t *j = NULL;
    if (buf && cd_base64url_decode(in, len, buf, len + 1, &n)) {
        json_error_t je;
        j = json_loadb((const char *)buf, n, JSON_REJECT_DUPLICATES, &je);
    }
    free(buf);
    if (!json_is_object(j)) {
        json_decref(j);
        return NULL;
    }
    return j;
}

static bool audience_ok(const json_t *aud, const char *client_id)
{
    if (json_is_string(aud))
        return strcmp(json_string_value(aud), client_id) == 0;
    size_t i;
    json_t *a;
    json_array_foreach(aud, i, a)
    {
        if (json_is_string(a) && strcmp(json_string_value(a), client_id) == 0)
            return true;
    }
    return false;
}

static oidc_status_t check_claims(const json_t *c, const oidc_expect_t *want)
{
    const char *iss = json_string_value(json_object_get(c, "iss"));
    if (!iss || !(strcmp(iss, want->issuer) == 0 ||
                  (want->alt_issuer && strcmp(iss, want->alt_issuer) == 0)))
        return OIDC_ISSUER;
    if (!want->client_id || !*want->client_id ||
        !audience_ok(json_object_get(c, "aud"), want->client_id))
        return OIDC_AUDIENCE;
    json_t *exp = json_object_get(c, "exp");
    if (!json_is_number(exp) || json_number_value(exp) <= (double)want->now)
        return OIDC_EXPIRED;
    if (want->nonce) {
        const char *nonce = json_string_value(json_object_get(c, "nonce"));
        if (!nonce || !cd_secure_equal(nonce, want->nonce))
            return OIDC_NONCE;
    }
    return OIDC_OK;
}

/* ------------------------------------------------------------------ verify */

oidc_status_t oidc_verify_id_token(const char *token, const json_t *jwks, const oidc_expect_t *want,
                                   json_t **claims)
{
    *claims = NULL;
    size_t len = token ? strnlen(token, OIDC_TOKEN_MAX + 1) : 0;
    const char *d1 = len && len <= OIDC_TOKEN_MAX ? memchr(token, '.', len) : NULL;
    const char *d2 = d1 ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - token)) : NULL;
    if (!d2 || d1 == token || d2 == d1 + 1 || d2 + 1 == token + len ||
        memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - token)))
        return OIDC_MALFORMED;
    unsigned char sig[JWK_MEMBER_MAX];
    size_t siglen = 0;
    json_t *header = decode_object(token, (size_t)(d1 - token));
    json_t *payload = decode_object(d1 + 1, (size_t)(d2 - d1 - 1));
    oidc_status_t st = OIDC_MALFORMED;
    if (header && payload &&
        cd_base64url_decode(d2 + 1, len - (size_t)(d2 + 1 - token), sig, sizeof(sig), &siglen)) {
        const char *alg = json_string_value(json_object_get(header, "alg"));
        json_t *kid = json_object_get(header, "kid");
        EVP_PKEY *k = NULL;
        if (!alg || (strcmp(alg, "RS256") != 0 && strcmp(alg, "ES256") != 0))
            st = OIDC_ALG;
        else if (kid && !json_is_string(kid))
            st = OIDC_MALFORMED;
        else if (!(k = find_key(jwks, alg, json_string_value(kid))))
            st = OIDC_UNKNOWN_KID;
        else if (!verify_signature(k, strcmp(alg, "ES256") == 0, token, (size_t)(d2 - token), sig,
                                   siglen))
            st = OIDC_SIGNATURE;
        else
            st = check_claims(payload, want);
        EVP_PKEY_free(k);
    }
    json_decref(header);
    if (st == OIDC_OK)
        *claims = payload;
    else
        json_decref(payload);
    return st;
}

/* In the order of oidc_status_t. */
static const char *const STATUS_TEXT[] = {"valid",
                                          "malformed id_token",
                                          "id_token algorithm is not RS256 or ES256",
                                          "no key of the provider's JWKS fits the id_token",
                                          "id_token signature does not verify",
                                          "id_token issuer is not the provider",
                                          "id_token audience is not our client id",
                                          "id_token has expired",
                                          "id_token nonce does not match"};

const char *oidc_status_text(oidc_status_t st)
{
    return (size_t)st < sizeof(STATUS_TEXT) / sizeof(STATUS_TEXT[0]) ? STATUS_TEXT[st]
                                                                     : "invalid id_token";
}
