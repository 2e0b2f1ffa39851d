/* Unit tests for src/importer/sa_jwt.c: RS256 tokens verify with the public
 * key (and not with another), carry the header and claims given, refuse keys
 * that are not RSA PEM; the Snowflake fingerprint is SHA-256 of the DER
 * public key. */
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/text.h"
#include "importer/connectors.h"

static char *pem_of(EVP_PKEY *k)
{
    BIO *b = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL), 1);
    char *data;
    long n = BIO_get_mem_data(b, &data);
    char *out = strndup(data, (size_t)n);
    BIO_free(b);
    return out;
}

static json_t *decode_part(const char *s, size_t n)
{
    unsigned char buf[4096];
    size_t len = 0;
    assert_true(cd_base64url_decode(s, n, buf, sizeof(buf), &len));
    return json_loadb((const char *)buf, len, 0, NULL);
}

static bool verifies(EVP_PKEY *k, const char *tok)
{
    const char *dot2 = strrchr(tok, '.');
    unsigned char sig[1024];
    size_t siglen = 0;
    if (!cd_base64url_decode(dot2 + 1, strlen(dot2 + 1), sig, sizeof(sig), &siglen))
        return false;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    bool ok =
        EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, k) == 1 &&
        EVP_DigestVerify(md, sig, siglen, (const unsigned char *)tok, (size_t)(dot2 - tok)) == 1;
    EVP_MD_CTX_free(md);
    return ok;
}

static void test_rs256(void **state)
{
    (void)state;
    EVP_PKEY *k = EVP_RSA_gen(2048), *other = EVP_RSA_gen(2048);
    assert_non_null(k);
    char *pem = pem_of(k);
    json_t *hdr = json_pack("{s:s, s:s, s:s}", "alg", "RS256", "typ", "JWT", "kid", "k1");
    json_t *claims = json_pack("{s:s, s:s, s:i}", "iss", "svc@proj.iam.gserviceaccount.com", "aud",
                               "https://oauth2.googleapis.com/token", "iat", 1700000000);
    char err[256] = "";
    char *tok = conn_jwt_rs256(hdr, claims, pem, err, sizeof(err));
    assert_non_null(tok);
    const char *dot1 = strchr(tok, '.');
    const char *dot2 = strrchr(tok, '.');
    assert_true(dot1 && dot2 && dot1 < dot2);
    json_t *h = decode_part(tok, (size_t)(dot1 - tok));
    json_t *c = decode_part(dot1 + 1, (size_t)(dot2 - dot1 - 1));
    assert_true(json_equal(h, hdr));
    assert_true(json_equal(c, claims));
    assert_true(verifies(k, tok));
    assert_false(verifies(other, tok));
    /* a changed claim breaks the signature */
    char *forged = strdup(tok);
    forged[dot1 - tok + 2] = forged[dot1 - tok + 2] == 'A' ? 'B' : 'A';
    assert_false(verifies(k, forged));
    free(forged);
    json_decref(h);
    json_decref(c);
    free(tok);
    /* the forms credentials can hold (no line breaks): one line, or "\n" escapes */
    char *oneline = strdup(pem), *escaped = malloc(2 * strlen(pem) + 1);
    size_t o = 0;
    for (char *p = oneline; *p; p++)
        if (*p == '\n')
            *p = ' ';
    for (const char *p = pem; *p; p++) {
        if (*p == '\n') {
            escaped[o++] = '\\';
            escaped[o++] = 'n';
        } else {
            escaped[o++] = *p;
        }
    }
    escaped[o] = '\0';
    const char *forms[] = {oneline, escaped};
    for (size_t i = 0; i < 2; i++) {
        char *t2 = conn_jwt_rs256(hdr, claims, forms[i], err, sizeof(err));
        assert_non_null(t2);
        assert_true(verifies(k, t2));
        free(t2);
    }
    free(oneline);
    free(escaped);
    /* not a key, an EC key */
    assert_null(
        conn_jwt_rs256(hdr, claims, "-----BEGIN PRIVATE KEY-----\nAAAA\n", err, sizeof(err)));
    assert_non_null(strstr(err, "reconnect the source"));
    assert_null(conn_jwt_rs256(hdr, claims, "", err, sizeof(err)));
    EVP_PKEY *ec = EVP_EC_gen("P-256");
    char *ecpem = pem_of(ec);
    assert_null(conn_jwt_rs256(hdr, claims, ecpem, err, sizeof(err)));
    assert_non_null(strstr(err, "not an RSA key"));
    free(ecpem);
    EVP_PKEY_free(ec);
    json_decref(hdr);
    json_decref(claims);
    free(pem);
    EVP_PKEY_free(k);
    EVP_PKEY_free(other);
}

static void test_fingerprint(void **state)
{
    (void)state;
    EVP_PKEY *k = EVP_RSA_gen(2048);
    char *pem = pem_of(k);
    unsigned char *der = NULL;
    int n = i2d_PUBKEY(k, &der);
    assert_true(n > 0);
    unsigned char dig[SHA256_DIGEST_LENGTH];
    SHA256(der, (size_t)n, dig);
    OPENSSL_free(der);
    unsigned char b64[64];
    EVP_EncodeBlock(b64, dig, SHA256_DIGEST_LENGTH);
    char want[80], got[128], err[256];
    snprintf(want, sizeof(want), "SHA256:%s", (const char *)b64);
    assert_true(conn_key_fingerprint(pem, got, sizeof(got), err, sizeof(err)));
    assert_string_equal(got, want);
    assert_int_equal(strlen(got), 7 + 44);
    char tiny[10];
    assert_false(conn_key_fingerprint(pem, tiny, sizeof(tiny), err, sizeof(err)));
    assert_false(conn_key_fingerprint("nope", got, sizeof(got), err, sizeof(err)));
    free(pem);
    EVP_PKEY_free(k);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rs256),
        cmocka_unit_test(test_fingerprint),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
