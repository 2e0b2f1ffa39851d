/* Unit tests for core/crypto: UUIDs, tokens, SHA-256 and HMAC in hex and base64url, constant-time
 * comparison. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/crypto.h"
#include "core/text.h"

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crypto),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
