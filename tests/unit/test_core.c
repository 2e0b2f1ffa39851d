/* Unit tests for the small core pieces: bounded buffers, crypto helpers, the
 * per-address limiter and the SQLSTATE → HTTP table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "auth/auth.h"
#include "core/buf.h"
#include "core/crypto.h"
#include "core/text.h"
#include "db/db.h"

static void test_buf_bounded(void **state)
{
    (void)state;
    cd_buf_t b;
    cd_buf_init(&b, 8);
    assert_string_equal(cd_buf_str(&b), "");
    assert_true(cd_buf_adds(&b, "abcd"));
    assert_true(cd_buf_printf(&b, "%d", 123));
    assert_string_equal(cd_buf_str(&b), "abcd123");
    assert_false(cd_buf_adds(&b, "xy")); /* 9 > 8: refused, unchanged */
    assert_string_equal(cd_buf_str(&b), "abcd123");
    assert_true(cd_buf_adds(&b, "z"));
    assert_int_equal(b.len, 8);
    assert_false(cd_buf_printf(&b, "%s", "q"));
    char *s = cd_buf_take(&b);
    assert_string_equal(s, "abcd123z");
    free(s);
    assert_int_equal(b.len, 0);
    s = cd_buf_take(&b);
    assert_string_equal(s, "");
    free(s);
    cd_buf_free(&b);
}

static void test_crypto(void **state)
{
    (void)state;
    char u1[CD_UUID_LEN + 1], u2[CD_UUID_LEN + 1];
    assert_true(cd_random_uuid(u1));
    assert_true(cd_random_uuid(u2));
    assert_true(cd_is_uuid(u1));
    assert_string_not_equal(u1, u2);
    assert_int_equal(u1[14], '4');
    assert_false(cd_is_uuid("not-a-uuid"));
    assert_false(cd_is_uuid("5f833b6c-c670-4838-b5a3-1c81fc0c656"));
    assert_false(cd_is_uuid("5f833b6c-c670-4838-b5a3-1c81fc0c656g"));
    assert_false(cd_is_uuid("5f833b6cxc670-4838-b5a3-1c81fc0c6566"));
    char t[CD_TOKEN_LEN + 1];
    assert_true(cd_random_token(t));
    assert_int_equal(strlen(t), CD_TOKEN_LEN);
    char h[CD_SHA256_HEX_LEN + 1];
    cd_sha256_hex("abc", 3, h);
    assert_string_equal(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    char m[CD_TOKEN_LEN + 1];
    /* RFC 4231 test case 2: HMAC-SHA256("Jefe", "what do ya want for nothing?") */
    cd_hmac_b64url((const unsigned char *)"Jefe", 4, "what do ya want for nothing?", 28, m);
    assert_string_equal(m, "W9zBRr9gdU5qBCQmCJV1x1oAPwidJzmDnexYuWTsOEM");
    char out[16];
    assert_int_equal(cd_base64url_encode((const unsigned char *)"f", 1, out), 2);
    assert_string_equal(out, "Zg");
    assert_int_equal(cd_base64url_encode((const unsigned char *)"fo", 2, out), 3);
    assert_string_equal(out, "Zm8");
    assert_true(cd_secure_equal("abc", "abc"));
    assert_false(cd_secure_equal("abc", "abd"));
    assert_false(cd_secure_equal("abc", "abcd"));
}

static void test_limiter(void **state)
{
    (void)state;
    struct auth_limiter *l = auth_limiter_new(16);
    assert_non_null(l);
    for (int i = 0; i < 3; i++)
        assert_int_equal(auth_limiter_hit(l, "10.0.0.1", 3), 0);
    int wait = auth_limiter_hit(l, "10.0.0.1", 3);
    assert_true(wait >= 1 && wait <= 300);
    assert_int_equal(auth_limiter_hit(l, "10.0.0.2", 3), 0); /* another address */
    /* a flood of distinct addresses never grows the table or crashes */
    char addr[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(addr, sizeof(addr), "192.0.2.%d", i);
        (void)auth_limiter_hit(l, addr, 3);
    }
    auth_limiter_free(l);
    assert_int_equal(auth_limiter_hit(NULL, "x", 1), 0);
}

static void test_sqlstate_map(void **state)
{
    (void)state;
    assert_int_equal(db_sqlstate_http_status("23505", false), 409);
    assert_int_equal(db_sqlstate_http_status("23503", false), 409);
    assert_int_equal(db_sqlstate_http_status("23502", false), 400);
    assert_int_equal(db_sqlstate_http_status("42501", true), 401);
    assert_int_equal(db_sqlstate_http_status("42501", false), 403);
    assert_int_equal(db_sqlstate_http_status("22P02", false), 400);
    assert_int_equal(db_sqlstate_http_status("P0001", false), 400);
    assert_int_equal(db_sqlstate_http_status("42883", false), 404);
    assert_int_equal(db_sqlstate_http_status("42P01", false), 404);
    assert_int_equal(db_sqlstate_http_status("57014", false), 504);
    assert_int_equal(db_sqlstate_http_status("08006", false), 503);
    assert_int_equal(db_sqlstate_http_status("25006", false), 405);
    assert_int_equal(db_sqlstate_http_status("PT404", false), 404);
    assert_int_equal(db_sqlstate_http_status("PT99x", false), 500);
    assert_int_equal(db_sqlstate_http_status("XX000", false), 500);
    assert_int_equal(db_sqlstate_http_status("bad", false), 500);
    assert_int_equal(db_sqlstate_http_status(NULL, false), 500);
}

static void test_email_valid(void **state)
{
    (void)state;
    assert_true(auth_email_valid("a@b.co"));
    assert_true(auth_email_valid("first.last+tag@sub.example.org"));
    assert_false(auth_email_valid("ab.co"));
    assert_false(auth_email_valid("a@b"));
    assert_false(auth_email_valid("a@@b.co"));
    assert_false(auth_email_valid("@b.co"));
    assert_false(auth_email_valid("a b@c.co"));
    assert_false(auth_email_valid("a@b.co\n"));
    assert_false(auth_email_valid("\"x\"@b.co"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf_bounded), cmocka_unit_test(test_crypto),
        cmocka_unit_test(test_limiter),     cmocka_unit_test(test_sqlstate_map),
        cmocka_unit_test(test_email_valid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
