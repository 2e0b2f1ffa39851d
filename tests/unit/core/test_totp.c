/* Unit tests for core/totp: RFC 4648 base32, RFC 4226 HOTP and RFC 6238
 * appendix B TOTP vectors, the skew window and the replay floor. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/totp.h"

static const unsigned char RFC_KEY[] = "12345678901234567890";

static void test_base32_rfc4648(void **state)
{
    (void)state;
    static const char *plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *enc[] = {"", "MY", "MZXQ", "MZXW6", "MZXW6YQ", "MZXW6YTB", "MZXW6YTBOI"};
    for (size_t i = 0; i < 7; i++) {
        char out[32];
        size_t n = totp_base32_encode((const unsigned char *)plain[i], strlen(plain[i]), out);
        assert_int_equal(n, strlen(enc[i]));
        assert_string_equal(out, enc[i]);
        unsigned char back[16];
        long m = totp_base32_decode(enc[i], back, sizeof(back));
        assert_int_equal(m, (long)strlen(plain[i]));
        assert_memory_equal(back, plain[i], strlen(plain[i]));
    }
    unsigned char b[16];
    /* padding, lower case and spaces are accepted */
    assert_int_equal(totp_base32_decode("mzxw 6ytb oi======", b, sizeof(b)), 6);
    assert_memory_equal(b, "foobar", 6);
    /* outside the alphabet, non-zero trailing bits, no room */
    assert_int_equal(totp_base32_decode("MZXW1", b, sizeof(b)), -1);
    assert_int_equal(totp_base32_decode("MZ", b, sizeof(b)), -1);
    assert_int_equal(totp_base32_decode("MZXW6YTBOI", b, 3), -1);
}

static void test_hotp_rfc4226(void **state)
{
    (void)state;
    static const uint32_t want[] = {755224, 287082, 359152, 969429, 338314,
                                    254676, 287922, 162583, 399871, 520489};
    for (uint64_t c = 0; c < 10; c++)
        assert_int_equal(totp_hotp(RFC_KEY, 20, c, 6), want[c]);
}

static void test_totp_rfc6238_sha1(void **state)
{
    (void)state;
    static const struct {
        int64_t t;
        uint32_t code;
    } v[] = {{59, 94287082},         {1111111109, 7081804},  {1111111111, 14050471},
             {1234567890, 89005924}, {2000000000, 69279037}, {20000000000LL, 65353130}};
    for (size_t i = 0; i < CD_ARRAY_LEN(v); i++) {
        assert_int_equal(totp_hotp(RFC_KEY, 20, (uint64_t)totp_step(v[i].t), 8), v[i].code);
        /* the 6-digit code is the same truncation modulo 10^6 */
        char code[8];
        snprintf(code, sizeof(code), "%06u", v[i].code % 1000000u);
        int64_t step = -1;
        assert_true(totp_match(RFC_KEY, 20, code, v[i].t, -1, &step));
        assert_int_equal(step, totp_step(v[i].t));
    }
}

static void test_totp_window_and_replay(void **state)
{
    (void)state;
    const int64_t now = 1234567890;
    const int64_t s = totp_step(now);
    char prev[8], next[8], far[8];
    snprintf(prev, sizeof(prev), "%06u", totp_hotp(RFC_KEY, 20, (uint64_t)(s - 1), 6));
    snprintf(next, sizeof(next), "%06u", totp_hotp(RFC_KEY, 20, (uint64_t)(s + 1), 6));
    snprintf(far, sizeof(far), "%06u", totp_hotp(RFC_KEY, 20, (uint64_t)(s + 2), 6));
    int64_t step = 0;
    assert_true(totp_match(RFC_KEY, 20, prev, now, -1, &step));
    assert_int_equal(step, s - 1);
    assert_true(totp_match(RFC_KEY, 20, next, now, -1, &step));
    assert_int_equal(step, s + 1);
    assert_false(totp_match(RFC_KEY, 20, far, now, -1, &step));
    /* once step s-1 was used, its code is refused; a later step still works */
    assert_false(totp_match(RFC_KEY, 20, prev, now, s - 1, &step));
    assert_true(totp_match(RFC_KEY, 20, next, now, s - 1, &step));
    assert_false(totp_match(RFC_KEY, 20, next, now, s + 1, &step));
    /* malformed codes */
    assert_false(totp_match(RFC_KEY, 20, "12345", now, -1, &step));
    assert_false(totp_match(RFC_KEY, 20, "1234567", now, -1, &step));
    assert_false(totp_match(RFC_KEY, 20, "12a456", now, -1, &step));
    assert_false(totp_match(RFC_KEY, 20, NULL, now, -1, &step));
}

static void test_new_secret(void **state)
{
    (void)state;
    char a[TOTP_SECRET_BASE32 + 1], b[TOTP_SECRET_BASE32 + 1];
    assert_true(totp_new_secret(a));
    assert_true(totp_new_secret(b));
    assert_int_equal(strlen(a), TOTP_SECRET_BASE32);
    assert_string_not_equal(a, b);
    unsigned char raw[TOTP_SECRET_BYTES];
    assert_int_equal(totp_base32_decode(a, raw, sizeof(raw)), TOTP_SECRET_BYTES);
    assert_int_equal(totp_step(-1), -1);
    assert_int_equal(totp_step(29), 0);
    assert_int_equal(totp_step(30), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_base32_rfc4648),    cmocka_unit_test(test_hotp_rfc4226),
        cmocka_unit_test(test_totp_rfc6238_sha1), cmocka_unit_test(test_totp_window_and_replay),
        cmocka_unit_test(test_new_secret),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
