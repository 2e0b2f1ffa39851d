/* Unit tests for storage/storage_sign: signed-URL tokens (HMAC, expiry, tampering). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "core/crypto.h"
#include "storage/storage_internal.h"

static const unsigned char SECRET[] = "0123456789abcdef0123456789abcdef-test";

static void test_tokens(void **state)
{
    (void)state;
    json_t *claims = json_pack("{s:s, s:s, s:I}", "url", "b/a.png", "scope", "download", "exp",
                               (json_int_t)2000);
    char *tok = storage__token_sign(claims, SECRET, sizeof(SECRET) - 1);
    json_decref(claims);
    assert_non_null(tok);
    json_t *out = NULL;
    assert_int_equal(storage__token_verify(tok, SECRET, sizeof(SECRET) - 1, 1000, &out),
                     STORAGE_TOKEN_OK);
    assert_string_equal(json_string_value(json_object_get(out, "url")), "b/a.png");
    json_decref(out);
    /* expired: exp <= now */
    assert_int_equal(storage__token_verify(tok, SECRET, sizeof(SECRET) - 1, 2000, &out),
                     STORAGE_TOKEN_EXPIRED);
    assert_null(out);
    /* another secret */
    assert_int_equal(storage__token_verify(tok, (const unsigned char *)"other-secret-other-secret",
                                           25, 1000, &out),
                     STORAGE_TOKEN_SIGNATURE);
    /* a changed payload byte breaks the HMAC */
    char *bad = strdup(tok);
    char *dot = strchr(bad, '.');
    dot[3] = dot[3] == 'A' ? 'B' : 'A';
    assert_int_equal(storage__token_verify(bad, SECRET, sizeof(SECRET) - 1, 1000, &out),
                     STORAGE_TOKEN_SIGNATURE);
    free(bad);
    /* a truncated signature */
    bad = strdup(tok);
    bad[strlen(bad) - 1] = '\0';
    assert_int_equal(storage__token_verify(bad, SECRET, sizeof(SECRET) - 1, 1000, &out),
                     STORAGE_TOKEN_MALFORMED);
    free(bad);
    /* the HMAC is HMAC-SHA256(K, header.payload) in base64url, with the key
     * K = HMAC-SHA256(secret, label) derived from the JWT secret: a token
     * signed with the JWT secret itself (an access token's key) is refused */
    char sig[CD_TOKEN_LEN + 1];
    const char *last = strrchr(tok, '.');
    cd_hmac_b64url(SECRET, sizeof(SECRET) - 1, tok, (size_t)(last - tok), sig);
    assert_string_not_equal(sig, last + 1);
    unsigned char key[32];
    unsigned int klen = 0;
    static const char label[] = "campaignd storage url token v1";
    HMAC(EVP_sha256(), SECRET, (int)(sizeof(SECRET) - 1), (const unsigned char *)label,
         sizeof(label) - 1, key, &klen);
    cd_hmac_b64url(key, sizeof(key), tok, (size_t)(last - tok), sig);
    assert_string_equal(sig, last + 1);
    free(tok);
    /* a token with alg none is not ours */
    assert_int_equal(
        storage__token_verify("eyJhbGciOiJub25lIn0.e30.", SECRET, sizeof(SECRET) - 1, 1000, &out),
        STORAGE_TOKEN_MALFORMED);
    /* no exp */
    claims = json_pack("{s:s}", "url", "b/a");
    tok = storage__token_sign(claims, SECRET, sizeof(SECRET) - 1);
    json_decref(claims);
    assert_int_equal(storage__token_verify(tok, SECRET, sizeof(SECRET) - 1, 1000, &out),
                     STORAGE_TOKEN_EXPIRED);
    free(tok);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tokens),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
