/*
 * Unit tests for src/core/jwt.c: HS256 signing and the strict verifier (shape, alg pinning,
 * signature, time claims, role), including a known-answer test computed with
 * `openssl dgst -sha256 -hmac`.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "core/jwt.h"

#define NOW  1700000000LL
#define SKEW 30L

static const unsigned char secret[] = "super-secret-jwt-token-with-at-least-32-characters";
#define SECRET_LEN (sizeof(secret) - 1)

/* Known answer: header.payload built by hand, signature from
 *   printf '%s' "$H.$P" | openssl dgst -sha256 -hmac 'campaignd-kat-secret-0123456789abcdef'
 *     -binary | base64 -w0 | tr '+/' '-_' | tr -d '='                                        */
static const char kat_secret[] = "campaignd-kat-secret-0123456789abcdef";
static const char kat_token[] =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
    ".eyJleHAiOjIwMDAwMDAwMDAsImlhdCI6MTcwMDAwMDAwMCwicm9sZSI6ImF1dGhlbnRpY2F0ZWQiLCJzdWIiOiIw"
    "MDAwMDAwMC0wMDAwLTAwMDAtMDAwMC0wMDAwMDAwMDAwMDEifQ"
    ".H5qaKLxreCbFUdFXsDayJvvPv3wuDkeXjQvKUCYmVcc";

/* Unpadded base64url of in[0..n) into out (NUL-terminated); out_cap must be >= 4*n/3 + 4. */
static void b64url(const unsigned char *in, size_t n, char *out, size_t out_cap)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0;

    assert_true(out_cap >= (n * 4) / 3 + 4);
    for (size_t i = 0; i < n; i += 3) {
        unsigned long v = (unsigned long)in[i] << 16;
        if (i + 1 < n)
            v |= (unsigned long)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        out[o++] = abc[(v >> 18) & 63];
        out[o++] = abc[(v >> 12) & 63];
        if (i + 1 < n)
            out[o++] = abc[(v >> 6) & 63];
        if (i + 2 < n)
            out[o++] = abc[v & 63];
    }
    out[o] = '\0';
}

/* Builds "b64(hdr).b64(payload).sig" where sig is the HS256 MAC with key (or empty when key is
 * NULL). Returns a malloc'd string. */
static char *make_token(const char *hdr, const char *payload, const unsigned char *key,
                        size_t key_len)
{
    size_t hl = strlen(hdr), pl = strlen(payload);
    size_t cap = (hl + pl) * 2 + 128;
    char *tok = malloc(cap);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    size_t n;

    assert_non_null(tok);
    b64url((const unsigned char *)hdr, hl, tok, cap);
    n = strlen(tok);
    tok[n++] = '.';
    b64url((const unsigned char *)payload, pl, tok + n, cap - n);
    n += strlen(tok + n);
    if (key != NULL) {
        assert_non_null(
            HMAC(EVP_sha256(), key, (int)key_len, (const unsigned char *)tok, n, mac, &mac_len));
        tok[n++] = '.';
        b64url(mac, mac_len, tok + n, cap - n);
    } else {
        tok[n++] = '.';
        tok[n] = '\0';
    }
    return tok;
}

static const char hs256_hdr[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";

/* Verifies a token made from hdr + payload with the test secret; returns the status. */
static jwt_status_t verify_parts(const char *hdr, const char *payload)
{
    char *tok = make_token(hdr, payload, secret, SECRET_LEN);
    json_t *claims = NULL;
    jwt_status_t st = jwt_verify(tok, secret, SECRET_LEN, NOW, SKEW, &claims);

    if (st == JWT_OK)
        assert_non_null(claims);
    else
        assert_null(claims);
    json_decref(claims);
    free(tok);
    return st;
}

static jwt_status_t verify_str(const char *tok)
{
    json_t *claims = (json_t *)1; /* must be overwritten with NULL on failure */
    jwt_status_t st = jwt_verify(tok, secret, SECRET_LEN, NOW, SKEW, &claims);

    if (st != JWT_OK)
        assert_null(claims);
    json_decref(claims);
    return st;
}

static void test_round_trip(void **state)
{
    json_t *in = json_pack("{s:s, s:s, s:I, s:I, s:{s:s}}", "sub", "user-1", "role",
                           "authenticated", "exp", (json_int_t)(NOW + 3600), "iat", (json_int_t)NOW,
                           "app_metadata", "role", "admin");
    json_t *out = NULL;
    char *tok;

    (void)state;
    assert_non_null(in);
    tok = jwt_sign(in, secret, SECRET_LEN);
    assert_non_null(tok);
    assert_int_equal(jwt_verify(tok, secret, SECRET_LEN, NOW, SKEW, &out), JWT_OK);
    assert_non_null(out);
    assert_true(json_equal(in, out));
    assert_string_equal(json_string_value(json_object_get(out, "sub")), "user-1");
    json_decref(out);
    /* claims may be NULL when the caller only wants the verdict */
    assert_int_equal(jwt_verify(tok, secret, SECRET_LEN, NOW, SKEW, NULL), JWT_OK);
    free(tok);
    json_decref(in);
}

static void test_sign_header_exact(void **state)
{
    json_t *in = json_pack("{s:s, s:I}", "role", "anon", "exp", (json_int_t)(NOW + 60));
    char *tok;

    (void)state;
    tok = jwt_sign(in, secret, SECRET_LEN);
    assert_non_null(tok);
    /* base64url of {"alg":"HS256","typ":"JWT"} */
    assert_memory_equal(tok, "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.", 37);
    assert_null(strchr(tok, '='));
    free(tok);
    json_decref(in);
}

static void test_sign_known_answer(void **state)
{
    /* Inserted out of order: the payload is serialised with sorted keys. */
    json_t *in =
        json_pack("{s:s, s:s, s:I, s:I}", "sub", "00000000-0000-0000-0000-000000000001", "role",
                  "authenticated", "iat", (json_int_t)1700000000, "exp", (json_int_t)2000000000);
    char *tok;

    (void)state;
    tok = jwt_sign(in, (const unsigned char *)kat_secret, strlen(kat_secret));
    assert_non_null(tok);
    assert_string_equal(tok, kat_token);
    free(tok);
    json_decref(in);
}

static void test_verify_known_answer(void **state)
{
    json_t *claims = NULL;

    (void)state;
    assert_int_equal(jwt_verify(kat_token, (const unsigned char *)kat_secret, strlen(kat_secret),
                                1800000000LL, SKEW, &claims),
                     JWT_OK);
    assert_string_equal(json_string_value(json_object_get(claims, "role")), "authenticated");
    assert_int_equal(json_integer_value(json_object_get(claims, "exp")), 2000000000);
    json_decref(claims);
    /* same token one second after exp + skew */
    assert_int_equal(jwt_verify(kat_token, (const unsigned char *)kat_secret, strlen(kat_secret),
                                2000000000LL + SKEW, SKEW, &claims),
                     JWT_ERR_EXPIRED);
    assert_null(claims);
}

static void test_sign_rejects(void **state)
{
    json_t *arr = json_array();
    json_t *obj = json_object();

    (void)state;
    assert_null(jwt_sign(arr, secret, SECRET_LEN));
    assert_null(jwt_sign(NULL, secret, SECRET_LEN));
    assert_null(jwt_sign(obj, secret, 0));
    assert_null(jwt_sign(obj, NULL, 10));
    json_decref(arr);
    json_decref(obj);
}

static void test_tampered_payload(void **state)
{
    char *good =
        make_token(hs256_hdr, "{\"role\":\"anon\",\"exp\":1700003600}", secret, SECRET_LEN);
    char *evil =
        make_token(hs256_hdr, "{\"role\":\"service_role\",\"exp\":1700003600}", secret, SECRET_LEN);
    char *dot_good = strrchr(good, '.');
    char *dot_evil = strrchr(evil, '.');
    char spliced[512];

    (void)state;
    assert_int_equal(verify_str(good), JWT_OK);
    /* evil payload with the good signature */
    assert_true((size_t)(dot_evil - evil) + strlen(dot_good) < sizeof(spliced));
    memcpy(spliced, evil, (size_t)(dot_evil - evil));
    memcpy(spliced + (dot_evil - evil), dot_good, strlen(dot_good) + 1);
    assert_int_equal(verify_str(spliced), JWT_ERR_SIGNATURE);
    free(good);
    free(evil);
}

static void test_tampered_signature(void **state)
{
    char *tok = make_token(hs256_hdr, "{\"role\":\"anon\",\"exp\":1700003600}", secret, SECRET_LEN);
    char *sig = strrchr(tok, '.') + 1;

    (void)state;
    sig[0] = (char)(sig[0] == 'A' ? 'B' : 'A');
    assert_int_equal(verify_str(tok), JWT_ERR_SIGNATURE);
    /* truncated signature: valid base64url, wrong length */
    sig[0] = 'A';
    sig[4] = '\0';
    assert_int_equal(verify_str(tok), JWT_ERR_SIGNATURE);
    /* empty signature */
    sig[0] = '\0';
    assert_int_equal(verify_str(tok), JWT_ERR_SIGNATURE);
    free(tok);
}

static void test_wrong_secret(void **state)
{
    static const unsigned char other[] = "another-secret-another-secret-another-secret";
    char *tok =
        make_token(hs256_hdr, "{\"role\":\"anon\",\"exp\":1700003600}", other, sizeof(other) - 1);
    json_t *claims = NULL;

    (void)state;
    assert_int_equal(verify_str(tok), JWT_ERR_SIGNATURE);
    assert_int_equal(jwt_verify(tok, other, sizeof(other) - 1, NOW, SKEW, &claims), JWT_OK);
    json_decref(claims);
    /* a secret that is a prefix of the right one */
    assert_int_equal(jwt_verify(tok, other, sizeof(other) - 2, NOW, SKEW, &claims),
                     JWT_ERR_SIGNATURE);
    /* empty or missing secret never verifies */
    assert_int_equal(jwt_verify(tok, other, 0, NOW, SKEW, &claims), JWT_ERR_SIGNATURE);
    assert_int_equal(jwt_verify(tok, NULL, 0, NOW, SKEW, &claims), JWT_ERR_SIGNATURE);
    assert_null(claims);
    free(tok);
}

static void test_alg_none(void **state)
{
    static const char payload[] = "{\"role\":\"service_role\",\"exp\":1700003600}";
    char *unsigned_tok = make_token("{\"alg\":\"none\",\"typ\":\"JWT\"}", payload, NULL, 0);
    char *signed_tok =
        make_token("{\"alg\":\"none\",\"typ\":\"JWT\"}", payload, secret, SECRET_LEN);
    char *bare = make_token("{\"alg\":\"none\"}", payload, NULL, 0);

    (void)state;
    assert_int_equal(verify_str(unsigned_tok), JWT_ERR_ALG);
    assert_int_equal(verify_str(signed_tok), JWT_ERR_ALG);
    assert_int_equal(verify_str(bare), JWT_ERR_ALG);
    /* alg none without the trailing dot is only two parts */
    bare[strlen(bare) - 1] = '\0';
    assert_int_equal(verify_str(bare), JWT_ERR_MALFORMED);
    /* with an empty secret too */
    assert_int_equal(jwt_verify(unsigned_tok, (const unsigned char *)"", 0, NOW, SKEW, NULL),
                     JWT_ERR_ALG);
    free(unsigned_tok);
    free(signed_tok);
    free(bare);
}

static void test_alg_other(void **state)
{
    static const char payload[] = "{\"role\":\"anon\",\"exp\":1700003600}";

    (void)state;
    /* every one of these carries a valid HS256 signature */
    assert_int_equal(verify_parts("{\"alg\":\"HS512\",\"typ\":\"JWT\"}", payload), JWT_ERR_ALG);
    assert_int_equal(verify_parts("{\"alg\":\"HS384\",\"typ\":\"JWT\"}", payload), JWT_ERR_ALG);
    assert_int_equal(verify_parts("{\"alg\":\"hs256\",\"typ\":\"JWT\"}", payload), JWT_ERR_ALG);
    assert_int_equal(verify_parts("{\"alg\":\"RS256\",\"typ\":\"JWT\"}", payload), JWT_ERR_ALG);
    assert_int_equal(verify_parts("{\"alg\":\"HS256 \",\"typ\":\"JWT\"}", payload), JWT_ERR_ALG);
    assert_int_equal(verify_parts("{\"typ\":\"JWT\"}", payload), JWT_ERR_ALG);
    assert_int_equal(verify_parts("{\"alg\":256}", payload), JWT_ERR_ALG);
    assert_int_equal(verify_parts("{\"alg\":[\"HS256\"]}", payload), JWT_ERR_ALG);
    assert_int_equal(verify_parts("{\"alg\":\"HS256\",\"typ\":\"JWS\"}", payload), JWT_ERR_ALG);
    assert_int_equal(verify_parts("{\"alg\":\"HS256\",\"typ\":1}", payload), JWT_ERR_ALG);
    assert_int_equal(verify_parts("{\"alg\":\"HS256\",\"crit\":[\"b64\"],\"b64\":false}", payload),
                     JWT_ERR_ALG);
    /* typ is optional; kid is ignored */
    assert_int_equal(verify_parts("{\"alg\":\"HS256\"}", payload), JWT_OK);
    assert_int_equal(verify_parts("{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"k1\"}", payload),
                     JWT_OK);
    /* duplicate alg keys are refused rather than resolved */
    assert_int_equal(verify_parts("{\"alg\":\"none\",\"alg\":\"HS256\"}", payload),
                     JWT_ERR_MALFORMED);
}

static void test_exp(void **state)
{
    char buf[128];

    (void)state;
    assert_int_equal(verify_parts(hs256_hdr, "{\"role\":\"anon\"}"), JWT_ERR_EXPIRED);
    snprintf(buf, sizeof(buf), "{\"role\":\"anon\",\"exp\":%lld}", NOW - SKEW - 1);
    assert_int_equal(verify_parts(hs256_hdr, buf), JWT_ERR_EXPIRED);
    snprintf(buf, sizeof(buf), "{\"role\":\"anon\",\"exp\":%lld}", NOW - SKEW);
    assert_int_equal(verify_parts(hs256_hdr, buf), JWT_ERR_EXPIRED);
    /* expired, but within the allowed skew */
    snprintf(buf, sizeof(buf), "{\"role\":\"anon\",\"exp\":%lld}", NOW - SKEW + 1);
    assert_int_equal(verify_parts(hs256_hdr, buf), JWT_OK);
    snprintf(buf, sizeof(buf), "{\"role\":\"anon\",\"exp\":%lld}", NOW - 1);
    assert_int_equal(verify_parts(hs256_hdr, buf), JWT_OK);
    /* an integral real is accepted; fractions, strings, booleans and null are not */
    assert_int_equal(verify_parts(hs256_hdr, "{\"role\":\"anon\",\"exp\":2e9}"), JWT_OK);
    assert_int_equal(verify_parts(hs256_hdr, "{\"role\":\"anon\",\"exp\":2000000000.5}"),
                     JWT_ERR_MALFORMED);
    assert_int_equal(verify_parts(hs256_hdr, "{\"role\":\"anon\",\"exp\":\"2000000000\"}"),
                     JWT_ERR_MALFORMED);
    assert_int_equal(verify_parts(hs256_hdr, "{\"role\":\"anon\",\"exp\":true}"),
                     JWT_ERR_MALFORMED);
    assert_int_equal(verify_parts(hs256_hdr, "{\"role\":\"anon\",\"exp\":null}"),
                     JWT_ERR_MALFORMED);
    assert_int_equal(verify_parts(hs256_hdr, "{\"role\":\"anon\",\"exp\":1e300}"),
                     JWT_ERR_MALFORMED);
    /* extreme values saturate instead of overflowing */
    assert_int_equal(verify_parts(hs256_hdr, "{\"role\":\"anon\",\"exp\":9223372036854775807}"),
                     JWT_OK);
    assert_int_equal(verify_parts(hs256_hdr, "{\"role\":\"anon\",\"exp\":-9223372036854775808}"),
                     JWT_ERR_EXPIRED);
}

static void test_nbf_iat(void **state)
{
    char buf[160];

    (void)state;
    snprintf(buf, sizeof(buf), "{\"role\":\"anon\",\"exp\":%lld,\"nbf\":%lld}", NOW + 3600,
             NOW + SKEW + 1);
    assert_int_equal(verify_parts(hs256_hdr, buf), JWT_ERR_NOT_YET_VALID);
    snprintf(buf, sizeof(buf), "{\"role\":\"anon\",\"exp\":%lld,\"nbf\":%lld}", NOW + 3600,
             NOW + SKEW);
    assert_int_equal(verify_parts(hs256_hdr, buf), JWT_OK);
    snprintf(buf, sizeof(buf), "{\"role\":\"anon\",\"exp\":%lld,\"iat\":%lld}", NOW + 3600,
             NOW + SKEW + 1);
    assert_int_equal(verify_parts(hs256_hdr, buf), JWT_ERR_NOT_YET_VALID);
    snprintf(buf, sizeof(buf), "{\"role\":\"anon\",\"exp\":%lld,\"iat\":%lld,\"nbf\":%lld}",
             NOW + 3600, NOW - 10, NOW - 10);
    assert_int_equal(verify_parts(hs256_hdr, buf), JWT_OK);
    snprintf(buf, sizeof(buf), "{\"role\":\"anon\",\"exp\":%lld,\"nbf\":\"soon\"}", NOW + 3600);
    assert_int_equal(verify_parts(hs256_hdr, buf), JWT_ERR_MALFORMED);
    /* negative skew counts as none */
    {
        char *tok;
        snprintf(buf, sizeof(buf), "{\"role\":\"anon\",\"exp\":%lld,\"nbf\":%lld}", NOW + 3600,
                 NOW + 1);
        tok = make_token(hs256_hdr, buf, secret, SECRET_LEN);
        assert_int_equal(jwt_verify(tok, secret, SECRET_LEN, NOW, -100, NULL),
                         JWT_ERR_NOT_YET_VALID);
        assert_int_equal(jwt_verify(tok, secret, SECRET_LEN, NOW, 0, NULL), JWT_ERR_NOT_YET_VALID);
        assert_int_equal(jwt_verify(tok, secret, SECRET_LEN, NOW, 1, NULL), JWT_OK);
        free(tok);
    }
}

static void test_role(void **state)
{
    (void)state;
    assert_int_equal(verify_parts(hs256_hdr, "{\"exp\":1700003600}"), JWT_ERR_ROLE);
    assert_int_equal(verify_parts(hs256_hdr, "{\"exp\":1700003600,\"role\":\"postgres\"}"),
                     JWT_ERR_ROLE);
    assert_int_equal(verify_parts(hs256_hdr, "{\"exp\":1700003600,\"role\":\"supabase_admin\"}"),
                     JWT_ERR_ROLE);
    assert_int_equal(verify_parts(hs256_hdr, "{\"exp\":1700003600,\"role\":1}"), JWT_ERR_ROLE);
    assert_int_equal(verify_parts(hs256_hdr, "{\"exp\":1700003600,\"role\":null}"), JWT_ERR_ROLE);
    assert_int_equal(verify_parts(hs256_hdr, "{\"exp\":1700003600,\"role\":[\"anon\"]}"),
                     JWT_ERR_ROLE);
    assert_int_equal(verify_parts(hs256_hdr, "{\"exp\":1700003600,\"role\":\"Anon\"}"),
                     JWT_ERR_ROLE);
    assert_int_equal(verify_parts(hs256_hdr, "{\"exp\":1700003600,\"role\":\"anon \"}"),
                     JWT_ERR_ROLE);
    assert_int_equal(verify_parts(hs256_hdr, "{\"exp\":1700003600,\"role\":\"\"}"), JWT_ERR_ROLE);
    /* an embedded NUL is refused by the JSON parser before it can fool a C comparison */
    assert_int_equal(verify_parts(hs256_hdr, "{\"exp\":1700003600,\"role\":\"anon\\u0000x\"}"),
                     JWT_ERR_MALFORMED);
    /* duplicate claims are refused rather than resolved */
    assert_int_equal(
        verify_parts(hs256_hdr, "{\"exp\":1700003600,\"role\":\"anon\",\"role\":\"service_role\"}"),
        JWT_ERR_MALFORMED);
    assert_int_equal(verify_parts(hs256_hdr, "{\"exp\":1700003600,\"role\":\"anon\"}"), JWT_OK);
    assert_int_equal(verify_parts(hs256_hdr, "{\"exp\":1700003600,\"role\":\"authenticated\"}"),
                     JWT_OK);
    assert_int_equal(verify_parts(hs256_hdr, "{\"exp\":1700003600,\"role\":\"service_role\"}"),
                     JWT_OK);
}

static void test_check_order(void **state)
{
    char *tok;

    (void)state;
    /* bad role and expired: expiry is reported */
    assert_int_equal(verify_parts(hs256_hdr, "{\"exp\":1,\"role\":\"postgres\"}"), JWT_ERR_EXPIRED);
    /* expired and badly signed: the signature is reported */
    tok = make_token(hs256_hdr, "{\"exp\":1,\"role\":\"anon\"}", (const unsigned char *)"x", 1);
    assert_int_equal(verify_str(tok), JWT_ERR_SIGNATURE);
    free(tok);
    /* bad alg and bad signature: the alg is reported */
    tok = make_token("{\"alg\":\"HS512\"}", "{\"exp\":1,\"role\":\"anon\"}",
                     (const unsigned char *)"x", 1);
    assert_int_equal(verify_str(tok), JWT_ERR_ALG);
    free(tok);
}

static void test_malformed_shapes(void **state)
{
    char *tok = make_token(hs256_hdr, "{\"role\":\"anon\",\"exp\":1700003600}", secret, SECRET_LEN);
    char buf[1024];
    char *p;

    (void)state;
    assert_int_equal(verify_str(tok), JWT_OK);
    assert_int_equal(jwt_verify(NULL, secret, SECRET_LEN, NOW, SKEW, NULL), JWT_ERR_MALFORMED);
    assert_int_equal(verify_str(""), JWT_ERR_MALFORMED);
    assert_int_equal(verify_str("."), JWT_ERR_MALFORMED);
    assert_int_equal(verify_str(".."), JWT_ERR_MALFORMED);
    assert_int_equal(verify_str("..."), JWT_ERR_MALFORMED);
    assert_int_equal(verify_str("abc"), JWT_ERR_MALFORMED);

    /* two parts */
    snprintf(buf, sizeof(buf), "%s", tok);
    *strrchr(buf, '.') = '\0';
    assert_int_equal(verify_str(buf), JWT_ERR_MALFORMED);
    /* four parts */
    snprintf(buf, sizeof(buf), "%s.AAAA", tok);
    assert_int_equal(verify_str(buf), JWT_ERR_MALFORMED);
    snprintf(buf, sizeof(buf), "%s.", tok);
    assert_int_equal(verify_str(buf), JWT_ERR_MALFORMED);
    /* empty header */
    snprintf(buf, sizeof(buf), "%s", strchr(tok, '.'));
    assert_int_equal(verify_str(buf), JWT_ERR_MALFORMED);
    /* bad base64: a character outside any alphabet */
    snprintf(buf, sizeof(buf), "%s", tok);
    buf[3] = '!';
    assert_int_equal(verify_str(buf), JWT_ERR_MALFORMED);
    /* whitespace */
    snprintf(buf, sizeof(buf), " %s", tok);
    assert_int_equal(verify_str(buf), JWT_ERR_MALFORMED);
    snprintf(buf, sizeof(buf), "%s\n", tok);
    assert_int_equal(verify_str(buf), JWT_ERR_MALFORMED);
    /* a part whose length is 1 mod 4 can never be base64 */
    snprintf(buf, sizeof(buf), "%s", tok);
    p = strchr(buf, '.');
    memmove(p + 1, p, strlen(p) + 1);
    *p = 'A';
    assert_int_equal(verify_str(buf), JWT_ERR_MALFORMED);

    free(tok);
}

static void test_malformed_encoding(void **state)
{
    char *tok;
    char buf[1024];
    char *sig;

    (void)state;
    /* padding: the 25-byte header below encodes to 34 characters, which padded needs "==" */
    tok = make_token("{\"alg\":\"HS256\",\"kid\":\"1\"}", "{\"role\":\"anon\",\"exp\":1700003600}",
                     secret, SECRET_LEN);
    assert_int_equal(verify_str(tok), JWT_OK);
    assert_int_equal(strchr(tok, '.') - tok, 34);
    snprintf(buf, sizeof(buf), "%.*s==%s", 34, tok, tok + 34);
    assert_int_equal(verify_str(buf), JWT_ERR_MALFORMED);
    /* padding on the signature (32 bytes = 43 characters + "=") */
    snprintf(buf, sizeof(buf), "%s=", tok);
    assert_int_equal(verify_str(buf), JWT_ERR_MALFORMED);
    /* non-canonical last character: 43 characters carry 2 spare bits that must be zero */
    snprintf(buf, sizeof(buf), "%s", tok);
    sig = strrchr(buf, '.') + 1;
    assert_int_equal(strlen(sig), 43);
    {
        static const char abc[] =
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        int v = (int)(strchr(abc, sig[42]) - abc);
        assert_int_equal(v & 3, 0);
        sig[42] = abc[v | 1];
    }
    assert_int_equal(verify_str(buf), JWT_ERR_MALFORMED);
    free(tok);

    /* standard alphabet: "?>?" encodes to "Pz4_" in base64url and "Pz4/" in base64 (the "ab"
     * puts it at a multiple of 3 bytes into the payload, so it is one base64 group) */
    tok = make_token(hs256_hdr, "{\"role\":\"anon\",\"exp\":1700003600,\"x\":\"ab?>?\"}", secret,
                     SECRET_LEN);
    assert_int_equal(verify_str(tok), JWT_OK);
    {
        char *p = strchr(tok, '.') + 1;
        char *u = strchr(p, '_');
        assert_non_null(u);
        assert_true(u < strrchr(tok, '.'));
        *u = '/';
    }
    assert_int_equal(verify_str(tok), JWT_ERR_MALFORMED);
    free(tok);
    tok = make_token(hs256_hdr, "{\"role\":\"anon\",\"exp\":1700003600,\"x\":\"ab>>>\"}", secret,
                     SECRET_LEN);
    assert_int_equal(verify_str(tok), JWT_OK);
    {
        /* ">>>" encodes to "Pj4-" (base64url) / "Pj4+" (base64) */
        char *p = strchr(tok, '.') + 1;
        char *m = strchr(p, '-');
        assert_non_null(m);
        assert_true(m < strrchr(tok, '.'));
        *m = '+';
    }
    assert_int_equal(verify_str(tok), JWT_ERR_MALFORMED);
    free(tok);
}

static void test_malformed_json(void **state)
{
    (void)state;
    assert_int_equal(verify_parts("[1]", "{\"role\":\"anon\",\"exp\":1700003600}"),
                     JWT_ERR_MALFORMED);
    assert_int_equal(verify_parts("\"HS256\"", "{\"role\":\"anon\",\"exp\":1700003600}"),
                     JWT_ERR_MALFORMED);
    assert_int_equal(verify_parts("not json", "{\"role\":\"anon\",\"exp\":1700003600}"),
                     JWT_ERR_MALFORMED);
    assert_int_equal(verify_parts(hs256_hdr, "[\"anon\"]"), JWT_ERR_MALFORMED);
    assert_int_equal(verify_parts(hs256_hdr, "1700003600"), JWT_ERR_MALFORMED);
    assert_int_equal(verify_parts(hs256_hdr, ""), JWT_ERR_MALFORMED);
    assert_int_equal(verify_parts(hs256_hdr, "{\"role\":\"anon\",\"exp\":1700003600}x"),
                     JWT_ERR_MALFORMED);
    assert_int_equal(verify_parts(hs256_hdr, "{\"role\":\"anon\",\"exp\":1700003600"),
                     JWT_ERR_MALFORMED);
}

/* Builds a signed token of exactly total bytes by padding an "x" claim. */
static char *token_of_length(size_t total)
{
    /* header part 36 chars, dots 2, signature 43: payload part = total - 81 chars */
    size_t payload_chars = total - 81;
    size_t json_len = (payload_chars / 4) * 3 + (payload_chars % 4 ? payload_chars % 4 - 1 : 0);
    static const char pre[] = "{\"role\":\"anon\",\"exp\":1700003600,\"x\":\"";
    char *json = malloc(json_len + 1);
    char *tok;

    assert_non_null(json);
    assert_int_not_equal(payload_chars % 4, 1);
    memcpy(json, pre, sizeof(pre) - 1);
    memset(json + sizeof(pre) - 1, 'a', json_len - (sizeof(pre) - 1) - 2);
    memcpy(json + json_len - 2, "\"}", 3);
    tok = make_token(hs256_hdr, json, secret, SECRET_LEN);
    free(json);
    assert_int_equal(strlen(tok), total);
    return tok;
}

static void test_length_limit(void **state)
{
    char *tok;

    (void)state;
    tok = token_of_length(JWT_MAX_TOKEN_BYTES);
    assert_int_equal(verify_str(tok), JWT_OK);
    free(tok);
    tok = token_of_length(JWT_MAX_TOKEN_BYTES + 1);
    assert_int_equal(verify_str(tok), JWT_ERR_MALFORMED);
    free(tok);
    tok = token_of_length(9000);
    assert_int_equal(verify_str(tok), JWT_ERR_MALFORMED);
    free(tok);
}

static void test_messages(void **state)
{
    static const jwt_status_t all[] = {
        JWT_OK,          JWT_ERR_MALFORMED,     JWT_ERR_ALG, JWT_ERR_SIGNATURE,
        JWT_ERR_EXPIRED, JWT_ERR_NOT_YET_VALID, JWT_ERR_ROLE};
    size_t n = sizeof(all) / sizeof(all[0]);

    (void)state;
    for (size_t i = 0; i < n; i++) {
        const char *m = jwt_status_message(all[i]);
        assert_non_null(m);
        assert_true(strlen(m) > 0);
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(m, jwt_status_message(all[j]));
    }
    assert_string_equal(jwt_status_message(JWT_ERR_EXPIRED),
                        "token has expired or has no exp claim");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_sign_header_exact),
        cmocka_unit_test(test_sign_known_answer),
        cmocka_unit_test(test_verify_known_answer),
        cmocka_unit_test(test_sign_rejects),
        cmocka_unit_test(test_tampered_payload),
        cmocka_unit_test(test_tampered_signature),
        cmocka_unit_test(test_wrong_secret),
        cmocka_unit_test(test_alg_none),
        cmocka_unit_test(test_alg_other),
        cmocka_unit_test(test_exp),
        cmocka_unit_test(test_nbf_iat),
        cmocka_unit_test(test_role),
        cmocka_unit_test(test_check_order),
        cmocka_unit_test(test_malformed_shapes),
        cmocka_unit_test(test_malformed_encoding),
        cmocka_unit_test(test_malformed_json),
        cmocka_unit_test(test_length_limit),
        cmocka_unit_test(test_messages),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
