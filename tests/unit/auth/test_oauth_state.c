/* Unit tests for auth/oauth_state: the signed OAuth state and PKCE (RFC 7636). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "auth/oauth_state.h"

static const unsigned char KEY[] = "0123456789abcdef0123456789abcdef";
#define KEYLEN (sizeof(KEY) - 1)
#define NOW    1700000000LL

static char *make_state(long long exp)
{
    json_t *c = json_pack("{s:I, s:s, s:s}", "exp", (json_int_t)exp, "provider", "github",
                          "redirect_to", "http://localhost:3000/welcome");
    char *s = oauth_state_sign(c, KEY, KEYLEN);
    json_decref(c);
    assert_non_null(s);
    return s;
}

static void test_state_round_trip(void **state)
{
    (void)state;
    char *s = make_state(NOW + 600);
    json_t *claims = NULL;
    assert_int_equal(oauth_state_verify(s, KEY, KEYLEN, NOW, &claims), OAUTH_STATE_OK);
    assert_string_equal(json_string_value(json_object_get(claims, "provider")), "github");
    assert_string_equal(json_string_value(json_object_get(claims, "redirect_to")),
                        "http://localhost:3000/welcome");
    json_decref(claims);
    free(s);
}

static void test_state_expired(void **state)
{
    (void)state;
    char *s = make_state(NOW);
    json_t *claims = (json_t *)1;
    assert_int_equal(oauth_state_verify(s, KEY, KEYLEN, NOW, &claims), OAUTH_STATE_EXPIRED);
    assert_null(claims);
    assert_int_equal(oauth_state_verify(s, KEY, KEYLEN, NOW - 1, &claims), OAUTH_STATE_OK);
    json_decref(claims);
    free(s);
    /* no exp at all is expired too */
    json_t *c = json_pack("{s:s}", "provider", "github");
    s = oauth_state_sign(c, KEY, KEYLEN);
    json_decref(c);
    assert_int_equal(oauth_state_verify(s, KEY, KEYLEN, NOW, &claims), OAUTH_STATE_EXPIRED);
    free(s);
}

static void test_state_tampered(void **state)
{
    (void)state;
    char *s = make_state(NOW + 600);
    json_t *claims = NULL;
    /* another key */
    const unsigned char other[] = "fedcba9876543210fedcba9876543210";
    assert_int_equal(oauth_state_verify(s, other, sizeof(other) - 1, NOW, &claims),
                     OAUTH_STATE_SIGNATURE);
    /* one payload character changed */
    s[3] = s[3] == 'A' ? 'B' : 'A';
    assert_int_equal(oauth_state_verify(s, KEY, KEYLEN, NOW, &claims), OAUTH_STATE_SIGNATURE);
    s[3] = s[3] == 'A' ? 'B' : 'A';
    /* one signature character changed */
    size_t n = strlen(s);
    s[n - 2] = s[n - 2] == 'x' ? 'y' : 'x';
    assert_int_equal(oauth_state_verify(s, KEY, KEYLEN, NOW, &claims), OAUTH_STATE_SIGNATURE);
    /* a payload re-signed by nobody: swap in another state's payload */
    char *t = make_state(NOW + 9999);
    char *dot_s = strchr(s, '.'), *dot_t = strchr(t, '.');
    char mixed[8192];
    snprintf(mixed, sizeof(mixed), "%.*s%s", (int)(dot_t - t), t, dot_s);
    assert_int_equal(oauth_state_verify(mixed, KEY, KEYLEN, NOW, &claims), OAUTH_STATE_SIGNATURE);
    assert_null(claims);
    free(t);
    free(s);
}

static void test_state_malformed(void **state)
{
    (void)state;
    json_t *claims = NULL;
    assert_int_equal(oauth_state_verify(NULL, KEY, KEYLEN, NOW, &claims), OAUTH_STATE_MALFORMED);
    assert_int_equal(oauth_state_verify("", KEY, KEYLEN, NOW, &claims), OAUTH_STATE_MALFORMED);
    assert_int_equal(oauth_state_verify("nodot", KEY, KEYLEN, NOW, &claims), OAUTH_STATE_MALFORMED);
    assert_int_equal(oauth_state_verify(".abc", KEY, KEYLEN, NOW, &claims), OAUTH_STATE_MALFORMED);
    char big[OAUTH_STATE_MAX + 10];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    big[5] = '.';
    assert_int_equal(oauth_state_verify(big, KEY, KEYLEN, NOW, &claims), OAUTH_STATE_MALFORMED);
    /* a correctly signed payload that is not an object */
    char mac[CD_TOKEN_LEN + 1], tok[128];
    cd_hmac_b64url(KEY, KEYLEN, "WzFd", 4, mac); /* "[1]" */
    snprintf(tok, sizeof(tok), "WzFd.%s", mac);
    assert_int_equal(oauth_state_verify(tok, KEY, KEYLEN, NOW, &claims), OAUTH_STATE_MALFORMED);
    assert_null(oauth_state_sign(NULL, KEY, KEYLEN));
}

static void test_pkce_s256_rfc7636(void **state)
{
    (void)state;
    /* RFC 7636 appendix B */
    const char *verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    char out[CD_TOKEN_LEN + 1];
    oauth_pkce_s256(verifier, out);
    assert_string_equal(out, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
    assert_true(oauth_pkce_matches("s256", out, verifier));
    assert_true(oauth_pkce_matches("S256", out, verifier));
    assert_false(oauth_pkce_matches("s256", out, "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXj"));
    assert_false(oauth_pkce_matches("plain", out, verifier));
    assert_true(oauth_pkce_matches("plain", verifier, verifier));
    assert_false(oauth_pkce_matches("md5", out, verifier));
    assert_false(oauth_pkce_matches(NULL, out, verifier));
}

static void test_pkce_valid(void **state)
{
    (void)state;
    char v[130];
    memset(v, 'a', 43);
    v[43] = '\0';
    assert_true(oauth_pkce_valid(v));
    v[42] = '\0';
    assert_false(oauth_pkce_valid(v)); /* 42: too short */
    memset(v, 'Z', 128);
    v[128] = '\0';
    assert_true(oauth_pkce_valid(v));
    v[128] = 'Z';
    v[129] = '\0';
    assert_false(oauth_pkce_valid(v)); /* 129: too long */
    assert_true(oauth_pkce_valid("abcdefghijklmnopqrstuvwxyz-._~ABCDEFGHIJKLMNOP0123"));
    assert_false(oauth_pkce_valid("abcdefghijklmnopqrstuvwxyz+/ABCDEFGHIJKLMNOP0123"));
    assert_false(oauth_pkce_valid(NULL));
    /* an invalid verifier never matches, even as its own plain challenge */
    assert_false(oauth_pkce_matches("plain", "short", "short"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_state_round_trip),  cmocka_unit_test(test_state_expired),
        cmocka_unit_test(test_state_tampered),    cmocka_unit_test(test_state_malformed),
        cmocka_unit_test(test_pkce_s256_rfc7636), cmocka_unit_test(test_pkce_valid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
