/* Unit tests for auth/oidc_token: id_tokens signed here with fresh RSA and
 * P-256 keys (OpenSSL), verified against a JWKS built from those keys: valid
 * tokens of both algorithms, a wrong signature, another key, an unknown kid,
 * the claims (iss, aud, exp, nonce) and malformed input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>

#include "auth/oidc_token.h"
#include "core/text.h"

#define NOW    1700000000LL
#define ISSUER "https://idp.example.test"
#define CLIENT "client-123"

static EVP_PKEY *rsa, *ec, *other_rsa;
static json_t *jwks;

static char *b64(const unsigned char *in, size_t n)
{
    char *out = malloc(4 * ((n + 2) / 3) + 1);
    assert_non_null(out);
    cd_base64url_encode(in, n, out);
    return out;
}

static char *bn_b64(EVP_PKEY *k, const char *name)
{
    BIGNUM *bn = NULL;
    assert_int_equal(EVP_PKEY_get_bn_param(k, name, &bn), 1);
    unsigned char buf[512];
    int n = BN_bn2bin(bn, buf);
    BN_free(bn);
    return b64(buf, (size_t)n);
}

static json_t *rsa_jwk(EVP_PKEY *k, const char *kid)
{
    char *n = bn_b64(k, OSSL_PKEY_PARAM_RSA_N), *e = bn_b64(k, OSSL_PKEY_PARAM_RSA_E);
    json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "kty", "RSA", "kid", kid, "use", "sig",
                          "alg", "RS256", "n", n, "e", e);
    free(n);
    free(e);
    return j;
}

static json_t *ec_jwk(EVP_PKEY *k, const char *kid)
{
    unsigned char pub[65];
    size_t len = 0;
    assert_int_equal(
        EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof(pub), &len), 1);
    assert_int_equal(len, 65);
    char *x = b64(pub + 1, 32), *y = b64(pub + 33, 32);
    json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:s}", "kty", "EC", "kid", kid, "crv", "P-256", "x",
                          x, "y", y);
    free(x);
    free(y);
    return j;
}

static int setup(void **state)
{
    (void)state;
    rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    other_rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    if (!rsa || !other_rsa || !ec)
        return -1;
    jwks = json_pack("{s:[o, o]}", "keys", rsa_jwk(rsa, "rsa-1"), ec_jwk(ec, "ec-1"));
    return jwks ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(other_rsa);
    EVP_PKEY_free(ec);
    json_decref(jwks);
    return 0;
}

/* header.payload.signature, signed with k (RS256, or ES256 as raw r||s). */
static char *sign(EVP_PKEY *k, const char *alg, const char *kid, json_t *claims)
{
    json_t *h = json_pack("{s:s, s:s}", "alg", alg, "typ", "JWT");
    if (kid)
        json_object_set_new(h, "kid", json_string(kid));
    char *hs = json_dumps(h, JSON_COMPACT), *ps = json_dumps(claims, JSON_COMPACT);
    json_decref(h);
    json_decref(claims);
    char *he = b64((unsigned char *)hs, strlen(hs)), *pe = b64((unsigned char *)ps, strlen(ps));
    free(hs);
    free(ps);
    size_t inlen = strlen(he) + 1 + strlen(pe);
    char *input = malloc(inlen + 1);
    snprintf(input, inlen + 1, "%s.%s", he, pe);
    free(he);
    free(pe);
    unsigned char sig[600];
    size_t siglen = sizeof(sig);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    assert_int_equal(EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, k), 1);
    assert_int_equal(EVP_DigestSign(ctx, sig, &siglen, (unsigned char *)input, inlen), 1);
    EVP_MD_CTX_free(ctx);
    if (strcmp(alg, "ES256") == 0) { /* DER to the JWS form */
        const unsigned char *p = sig;
        ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)siglen);
        assert_non_null(es);
        BN_bn2binpad(ECDSA_SIG_get0_r(es), sig, 32);
        BN_bn2binpad(ECDSA_SIG_get0_s(es), sig + 32, 32);
        ECDSA_SIG_free(es);
        siglen = 64;
    }
    char *se = b64(sig, siglen);
    char *out = malloc(inlen + 2 + strlen(se));
    snprintf(out, inlen + 2 + strlen(se), "%s.%s", input, se);
    free(input);
    free(se);
    return out;
}

static json_t *claims(const char *iss, const char *aud, long long exp, const char *nonce)
{
    json_t *c = json_pack("{s:s, s:s, s:I, s:s, s:s, s:b}", "iss", iss, "aud", aud, "exp",
                          (json_int_t)exp, "sub", "10769150350006150715113082367", "email",
                          "jane@example.test", "email_verified", 1);
    if (nonce)
        json_object_set_new(c, "nonce", json_string(nonce));
    return c;
}

static const oidc_expect_t WANT = {ISSUER, NULL, CLIENT, "n-0S6_WzA2Mj", NOW};

static oidc_status_t verify(char *token, json_t **out)
{
    json_t *c = NULL;
    oidc_status_t st = oidc_verify_id_token(token, jwks, &WANT, &c);
    free(token);
    if (out)
        *out = c;
    else
        json_decref(c);
    return st;
}

static void test_valid_rs256_and_es256(void **state)
{
    (void)state;
    json_t *c = NULL;
    assert_int_equal(
        verify(sign(rsa, "RS256", "rsa-1", claims(ISSUER, CLIENT, NOW + 60, WANT.nonce)), &c),
        OIDC_OK);
    assert_non_null(c);
    assert_string_equal(json_string_value(json_object_get(c, "email")), "jane@example.test");
    json_decref(c);
    assert_int_equal(
        verify(sign(ec, "ES256", "ec-1", claims(ISSUER, CLIENT, NOW + 60, WANT.nonce)), NULL),
        OIDC_OK);
    /* aud as an array holding our client id */
    json_t *cl = claims(ISSUER, CLIENT, NOW + 60, WANT.nonce);
    json_object_set_new(cl, "aud", json_pack("[s, s]", "other", CLIENT));
    assert_int_equal(verify(sign(rsa, "RS256", "rsa-1", cl), NULL), OIDC_OK);
    /* an alternative issuer when the provider has one */
    oidc_expect_t alt = WANT;
    alt.alt_issuer = "idp.example.test";
    char *t = sign(rsa, "RS256", "rsa-1", claims("idp.example.test", CLIENT, NOW + 60, WANT.nonce));
    assert_int_equal(oidc_verify_id_token(t, jwks, &alt, &c), OIDC_OK);
    json_decref(c);
    assert_int_equal(oidc_verify_id_token(t, jwks, &WANT, &c), OIDC_ISSUER);
    assert_null(c);
    free(t);
}

static void test_signature(void **state)
{
    (void)state;
    /* signed by another key under a known kid */
    assert_int_equal(
        verify(sign(other_rsa, "RS256", "rsa-1", claims(ISSUER, CLIENT, NOW + 60, WANT.nonce)),
               NULL),
        OIDC_SIGNATURE);
    /* a payload changed after signing */
    char *t = sign(rsa, "RS256", "rsa-1", claims(ISSUER, CLIENT, NOW + 60, WANT.nonce));
    char *d1 = strchr(t, '.'), *d2 = strchr(d1 + 1, '.');
    char *forged_payload = b64(
        (const unsigned char *)"{\"iss\":\"" ISSUER "\",\"aud\":\"" CLIENT
                               "\",\"exp\":1900000000,\"sub\":\"x\"}",
        strlen("{\"iss\":\"" ISSUER "\",\"aud\":\"" CLIENT "\",\"exp\":1900000000,\"sub\":\"x\"}"));
    char *forged = malloc(strlen(t) + strlen(forged_payload) + 2);
    snprintf(forged, strlen(t) + strlen(forged_payload) + 2, "%.*s.%s%s", (int)(d1 - t), t,
             forged_payload, d2);
    free(forged_payload);
    free(t);
    assert_int_equal(verify(forged, NULL), OIDC_SIGNATURE);
    /* an ES256 signature of the wrong length (63 bytes: 84 base64url characters) */
    t = sign(ec, "ES256", "ec-1", claims(ISSUER, CLIENT, NOW + 60, WANT.nonce));
    char *sig = strrchr(t, '.') + 1;
    assert_true(strlen(sig) >= 84);
    memset(sig, 'A', 84);
    sig[84] = '\0';
    assert_int_equal(verify(t, NULL), OIDC_SIGNATURE);
    /* alg confusion: HS256 and none are refused before any key is looked at */
    assert_int_equal(
        verify(sign(rsa, "RS256", "rsa-1", claims(ISSUER, CLIENT, NOW + 60, NULL)), NULL),
        OIDC_NONCE);
    char *hs = strdup("eyJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJ4In0.c2ln");
    assert_int_equal(verify(hs, NULL), OIDC_ALG);
    char *none = strdup("eyJhbGciOiJub25lIn0.eyJpc3MiOiJ4In0.c2ln");
    assert_int_equal(verify(none, NULL), OIDC_ALG);
}

static void test_kid(void **state)
{
    (void)state;
    assert_int_equal(
        verify(sign(rsa, "RS256", "rotated-2", claims(ISSUER, CLIENT, NOW + 60, WANT.nonce)), NULL),
        OIDC_UNKNOWN_KID);
    /* an RS256 header naming the EC key's kid finds no RSA key */
    assert_int_equal(
        verify(sign(rsa, "RS256", "ec-1", claims(ISSUER, CLIENT, NOW + 60, WANT.nonce)), NULL),
        OIDC_UNKNOWN_KID);
    /* no kid: the only key of the right type */
    assert_int_equal(
        verify(sign(ec, "ES256", NULL, claims(ISSUER, CLIENT, NOW + 60, WANT.nonce)), NULL),
        OIDC_OK);
    json_t *c = NULL;
    char *t = sign(rsa, "RS256", "rsa-1", claims(ISSUER, CLIENT, NOW + 60, WANT.nonce));
    json_t *empty = json_pack("{s:[]}", "keys");
    assert_int_equal(oidc_verify_id_token(t, empty, &WANT, &c), OIDC_UNKNOWN_KID);
    json_decref(empty);
    free(t);
}

static void test_claims(void **state)
{
    (void)state;
    assert_int_equal(
        verify(sign(rsa, "RS256", "rsa-1", claims(ISSUER, "someone-else", NOW + 60, WANT.nonce)),
               NULL),
        OIDC_AUDIENCE);
    assert_int_equal(verify(sign(rsa, "RS256", "rsa-1",
                                 claims("https://evil.test", CLIENT, NOW + 60, WANT.nonce)),
                            NULL),
                     OIDC_ISSUER);
    assert_int_equal(
        verify(sign(rsa, "RS256", "rsa-1", claims(ISSUER, CLIENT, NOW, WANT.nonce)), NULL),
        OIDC_EXPIRED);
    assert_int_equal(
        verify(sign(ec, "ES256", "ec-1", claims(ISSUER, CLIENT, NOW - 3600, WANT.nonce)), NULL),
        OIDC_EXPIRED);
    assert_int_equal(
        verify(sign(rsa, "RS256", "rsa-1", claims(ISSUER, CLIENT, NOW + 60, "other")), NULL),
        OIDC_NONCE);
    /* no nonce expected: none checked */
    oidc_expect_t no_nonce = WANT;
    no_nonce.nonce = NULL;
    json_t *c = NULL;
    char *t = sign(rsa, "RS256", "rsa-1", claims(ISSUER, CLIENT, NOW + 60, NULL));
    assert_int_equal(oidc_verify_id_token(t, jwks, &no_nonce, &c), OIDC_OK);
    json_decref(c);
    free(t);
}

static void test_malformed(void **state)
{
    (void)state;
    json_t *c = (json_t *)1;
    assert_int_equal(oidc_verify_id_token(NULL, jwks, &WANT, &c), OIDC_MALFORMED);
    assert_null(c);
    const char *bad[] = {"",
                         "a.b",
                         "a.b.c.d",
                         ".b.c",
                         "a..c",
                         "a.b.",
                         "!!.e30.c2ln",
                         "eyJhbGciOiJSUzI1NiJ9.bm90IGpzb24.c2ln",
                         "W10.e30.c2ln"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(oidc_verify_id_token(bad[i], jwks, &WANT, &c), OIDC_MALFORMED);
    char *huge = malloc(OIDC_TOKEN_MAX + 10);
    memset(huge, 'a', OIDC_TOKEN_MAX + 9);
    huge[OIDC_TOKEN_MAX + 9] = '\0';
    huge[10] = huge[20] = '.';
    assert_int_equal(oidc_verify_id_token(huge, jwks, &WANT, &c), OIDC_MALFORMED);
    free(huge);
    assert_string_equal(oidc_status_text(OIDC_AUDIENCE), "id_token audience is not our client id");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_rs256_and_es256),
        cmocka_unit_test(test_signature),
        cmocka_unit_test(test_kid),
        cmocka_unit_test(test_claims),
        cmocka_unit_test(test_malformed),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
