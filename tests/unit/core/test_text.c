/* Unit tests for core/text: hex digits, base64url (strict decoding), UTF-8
 * validation and the bounded JSON depth walk. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/buf.h"
#include "core/text.h"

static void test_hex(void **state)
{
    (void)state;
    assert_int_equal(cd_hex_value('0'), 0);
    assert_int_equal(cd_hex_value('9'), 9);
    assert_int_equal(cd_hex_value('a'), 10);
    assert_int_equal(cd_hex_value('F'), 15);
    assert_int_equal(cd_hex_value('g'), -1);
    assert_int_equal(cd_hex_value('G'), -1);
    assert_int_equal(cd_hex_value('/'), -1);
    assert_int_equal(cd_hex_value(':'), -1);
    assert_int_equal(cd_hex_value(0), -1);
    assert_int_equal(cd_hex_value(0xC3), -1);

    char out[9];
    cd_hex_encode((const unsigned char *)"\x00\x9f\xab\xff", 4, out);
    assert_string_equal(out, "009fabff");
    cd_hex_encode((const unsigned char *)"", 0, out);
    assert_string_equal(out, "");
}

static void test_percent_encode(void **state)
{
    (void)state;
    char out[32];
    bool complete = false;
    assert_int_equal(cd_percent_encode(out, sizeof(out), "a b/é~", "-._~", &complete), 15);
    assert_string_equal(out, "a%20b%2F%C3%A9~");
    assert_true(complete);
    /* keep decides what stays */
    cd_percent_encode(out, sizeof(out), "a/b?c", "/", NULL);
    assert_string_equal(out, "a/b%3Fc");
    cd_percent_encode(out, sizeof(out), "x\x01\x7f", NULL, &complete);
    assert_string_equal(out, "x%01%7F");
    /* bounded: an encoding is never split, the NUL always fits */
    assert_int_equal(cd_percent_encode(out, 5, "ab c", "", &complete), 2);
    assert_string_equal(out, "ab");
    assert_false(complete);
    assert_int_equal(cd_percent_encode(out, 6, "ab c", "", &complete), 5);
    assert_string_equal(out, "ab%20");
    assert_false(complete);
    assert_int_equal(cd_percent_encode(out, 1, "abc", "", &complete), 0);
    assert_string_equal(out, "");
    assert_false(complete);
    assert_int_equal(cd_percent_encode(out, 1, "", "", &complete), 0);
    assert_true(complete);
}

static void test_base64url_roundtrip(void **state)
{
    (void)state;
    unsigned char in[64], dec[64];
    char enc[100];
    for (size_t i = 0; i < sizeof(in); i++)
        in[i] = (unsigned char)(i * 37 + 250);
    for (size_t n = 0; n <= sizeof(in); n++) {
        size_t el = cd_base64url_encode(in, n, enc);
        assert_int_equal(el, strlen(enc));
        assert_null(strpbrk(enc, "+/="));
        size_t dl = 0;
        assert_true(cd_base64url_decode(enc, el, dec, sizeof(dec), &dl));
        assert_int_equal(dl, n);
        assert_memory_equal(dec, in, n);
    }
    assert_int_equal(cd_base64url_encode((const unsigned char *)"\xfb\xff", 2, enc), 3);
    assert_string_equal(enc, "-_8");
}

static void test_base64url_strict(void **state)
{
    (void)state;
    unsigned char out[16];
    size_t n = 0;
    assert_true(cd_base64url_decode("Zm9v", 4, out, sizeof(out), &n));
    assert_int_equal(n, 3);
    assert_memory_equal(out, "foo", 3);
    assert_true(cd_base64url_decode("Zg", 2, out, sizeof(out), &n));
    assert_int_equal(n, 1);
    /* padding, the standard alphabet, whitespace: refused */
    assert_false(cd_base64url_decode("Zg==", 4, out, sizeof(out), &n));
    assert_false(cd_base64url_decode("+/8A", 4, out, sizeof(out), &n));
    assert_false(cd_base64url_decode("Zm 9", 4, out, sizeof(out), &n));
    /* a length of 1 mod 4 cannot be base64 */
    assert_false(cd_base64url_decode("Zm9vY", 5, out, sizeof(out), &n));
    /* non-canonical: "Zh" decodes to 'f' too but with a non-zero leftover bit */
    assert_false(cd_base64url_decode("Zh", 2, out, sizeof(out), &n));
    /* output too small */
    assert_false(cd_base64url_decode("Zm9v", 4, out, 2, &n));
    assert_true(cd_base64url_decode("", 0, out, 0, &n));
    assert_int_equal(n, 0);
}

static void test_utf8_scrub(void **state)
{
    (void)state;
    char latin1[] = "550 Empf\xe4nger unbekannt"; /* a Latin-1 reply */
    assert_int_equal(cd_utf8_scrub(latin1), 1);
    assert_string_equal(latin1, "550 Empf?nger unbekannt");
    char cut[] = "caf\xc3"; /* a truncating copy cut the last character */
    assert_int_equal(cd_utf8_scrub(cut), 1);
    assert_string_equal(cut, "caf?");
    char fine[] = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80";
    assert_int_equal(cd_utf8_scrub(fine), 0);
    assert_string_equal(fine, "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
    char surrogate[] = "\xed\xa0\x80x"; /* U+D800 encoded: three stray bytes */
    assert_int_equal(cd_utf8_scrub(surrogate), 3);
    assert_string_equal(surrogate, "???x");
    assert_true(cd_utf8_valid((const unsigned char *)latin1, strlen(latin1)));
}

static void test_utf8(void **state)
{
    (void)state;
    const unsigned char *u;
    u = (const unsigned char *)"a";
    assert_int_equal(cd_utf8_char_len(u, 1), 1);
    u = (const unsigned char *)"\xc3\xa9";
    assert_int_equal(cd_utf8_char_len(u, 2), 2);
    assert_int_equal(cd_utf8_char_len(u, 1), 0); /* truncated */
    u = (const unsigned char *)"\xe2\x82\xac";
    assert_int_equal(cd_utf8_char_len(u, 3), 3);
    u = (const unsigned char *)"\xf0\x9f\x98\x80";
    assert_int_equal(cd_utf8_char_len(u, 4), 4);
    u = (const unsigned char *)"\xf4\x8f\xbf\xbf"; /* U+10FFFF */
    assert_int_equal(cd_utf8_char_len(u, 4), 4);
    u = (const unsigned char *)"\xc2\x80"; /* U+0080, a C1 control: valid UTF-8 */
    assert_int_equal(cd_utf8_char_len(u, 2), 2);

    assert_true(cd_utf8_valid((const unsigned char *)"", 0));
    assert_true(cd_utf8_valid((const unsigned char *)"h\xc3\xa9llo", 6));
    assert_true(cd_utf8_valid((const unsigned char *)"a\0b", 3));              /* NUL is UTF-8 */
    assert_false(cd_utf8_valid((const unsigned char *)"\xc0\xaf", 2));         /* overlong */
    assert_false(cd_utf8_valid((const unsigned char *)"\xc1\xbf", 2));         /* overlong */
    assert_false(cd_utf8_valid((const unsigned char *)"\xe0\x80\xaf", 3));     /* overlong */
    assert_false(cd_utf8_valid((const unsigned char *)"\xf0\x8f\xbf\xbf", 4)); /* overlong */
    assert_false(cd_utf8_valid((const unsigned char *)"\xed\xa0\x80", 3));     /* surrogate */
    assert_false(cd_utf8_valid((const unsigned char *)"\xed\xbf\xbf", 3));     /* surrogate */
    assert_false(cd_utf8_valid((const unsigned char *)"\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
    assert_false(cd_utf8_valid((const unsigned char *)"\xf5\x80\x80\x80", 4));
    assert_false(cd_utf8_valid((const unsigned char *)"\xff", 1));
    assert_false(cd_utf8_valid((const unsigned char *)"\x80", 1)); /* lone continuation */
    assert_false(cd_utf8_valid((const unsigned char *)"\xc3\x28", 2));
    assert_false(cd_utf8_valid((const unsigned char *)"ok\xe2\x82", 4)); /* truncated at end */

    size_t chars = 99;
    assert_true(cd_utf8_count("h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80", 15, &chars));
    assert_int_equal(chars, 9);
    assert_true(cd_utf8_count("", 0, &chars));
    assert_int_equal(chars, 0);
    assert_false(cd_utf8_count("a\0b", 3, &chars)); /* NUL refused here */
    assert_false(cd_utf8_count("\xed\xa0\x80", 3, NULL));
    assert_true(cd_utf8_count("abc", 3, NULL));
}

/* n nested arrays around an optional scalar. */
static json_t *nested(size_t n, bool scalar)
{
    json_t *j = scalar ? json_integer(1) : NULL;
    for (size_t i = 0; i < n; i++) {
        json_t *a = json_array();
        if (j)
            json_array_append_new(a, j);
        j = a;
    }
    return j;
}

static void test_json_depth(void **state)
{
    (void)state;
    json_t *j = json_integer(3);
    assert_int_equal(cd_json_depth(j, 32), 0);
    json_decref(j);
    j = json_pack("{s:[i,{s:[]}]}", "a", 1, "b");
    assert_int_equal(cd_json_depth(j, 32), 4);
    assert_int_equal(cd_json_depth(j, 2), 3); /* cut off: limit + 1 */
    json_decref(j);
    j = nested(32, true);
    assert_int_equal(cd_json_depth(j, 32), 32);
    json_decref(j);
    j = nested(33, false);
    assert_int_equal(cd_json_depth(j, 32), 33);
    json_decref(j);
    j = nested(1000, true);
    assert_int_equal(cd_json_depth(j, 32), 33);
    json_decref(j);
}

static void test_json_strings(void **state)
{
    (void)state;
    json_t *o = json_loads("{\"a\":\"x\",\"b\":5,\"c\":null,\"d\":\"\"}", 0, NULL);
    assert_non_null(o);
    const char *a = "?", *b = "?", *c = "?", *d = "?", *e = "?";
    cd_json_strings(o, "a", &a, "b", &b, "c", &c, "d", &d, "e", &e, NULL);
    assert_string_equal(a, "x");
    assert_null(b); /* another type reads as missing, the others are still read */
    assert_null(c);
    assert_string_equal(d, "");
    assert_null(e);
    json_decref(o);
    /* not an object (or no value at all): every member reads as NULL */
    json_t *arr = json_pack("[s]", "a");
    a = "?";
    cd_json_strings(arr, "a", &a, NULL);
    assert_null(a);
    json_decref(arr);
    a = "?";
    cd_json_strings(NULL, "a", &a, NULL);
    assert_null(a);
    cd_json_strings(NULL, NULL); /* no pairs */
}

/* cd_buf_add_json_str writes what json_dumps writes for the same string:
 * every byte below 0x20, the quote, the backslash, DEL, multi-byte UTF-8. */
static void test_json_str(void **state)
{
    (void)state;
    char all[0x80];
    for (int i = 1; i < 0x80; i++)
        all[i - 1] = (char)i;
    all[0x7F] = '\0';
    const char *cases[] = {"",
                           "plain",
                           "a\"b\\c/d",
                           "tab\tnl\ncr\rbs\bff\f",
                           "\x01\x1f\x7f",
                           "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
                           all};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cd_buf_t b;
        cd_buf_init(&b, 4096);
        assert_true(cd_buf_add_json_str(&b, cases[i]));
        json_t *j = json_string(cases[i]);
        assert_non_null(j);
        char *want = json_dumps(j, JSON_ENCODE_ANY | JSON_COMPACT);
        assert_non_null(want);
        assert_string_equal(cd_buf_str(&b), want);
        free(want);
        json_decref(j);
        cd_buf_free(&b);
    }
    /* not UTF-8 (a cut sequence, a stray continuation byte): refused, b unchanged */
    cd_buf_t b;
    cd_buf_init(&b, 64);
    assert_true(cd_buf_adds(&b, "x"));
    assert_false(cd_buf_add_json_str(&b, "cut \xe2\x82"));
    assert_false(cd_buf_add_json_str(&b, "\x80"));
    assert_string_equal(cd_buf_str(&b), "x");
    /* full: false */
    cd_buf_t small;
    cd_buf_init(&small, 4);
    assert_false(cd_buf_add_json_str(&small, "longer than four"));
    cd_buf_free(&small);
    cd_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hex),
        cmocka_unit_test(test_percent_encode),
        cmocka_unit_test(test_base64url_roundtrip),
        cmocka_unit_test(test_base64url_strict),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_utf8_scrub),
        cmocka_unit_test(test_json_depth),
        cmocka_unit_test(test_json_strings),
        cmocka_unit_test(test_json_str),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
