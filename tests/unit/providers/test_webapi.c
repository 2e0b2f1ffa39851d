/* Unit tests for providers/webapi.c: which libcurl failures may be retried
 * (the request never left) and the bounded response collector. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "providers/webapi.h"

static void test_connect_failure(void **state)
{
    (void)state;
    assert_true(webapi_connect_failure(CURLE_COULDNT_CONNECT));
    assert_true(webapi_connect_failure(CURLE_COULDNT_RESOLVE_HOST));
    assert_true(webapi_connect_failure(CURLE_SSL_CONNECT_ERROR));
    /* after the request may have left: never retried */
    assert_false(webapi_connect_failure(CURLE_OPERATION_TIMEDOUT));
    assert_false(webapi_connect_failure(CURLE_RECV_ERROR));
    assert_false(webapi_connect_failure(CURLE_GOT_NOTHING));
    assert_false(webapi_connect_failure(CURLE_SEND_ERROR));
    assert_false(webapi_connect_failure(CURLE_PARTIAL_FILE));
}

static void test_write_buf(void **state)
{
    (void)state;
    cd_buf_t b;
    cd_buf_init(&b, 8);
    char data[] = "abcdef";
    assert_int_equal(webapi_write_buf(data, 1, 6, &b), 6);
    assert_int_equal(b.len, 6);
    /* past the maximum: 0 makes libcurl stop the transfer */
    assert_int_equal(webapi_write_buf(data, 1, 6, &b), 0);
    cd_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_connect_failure),
        cmocka_unit_test(test_write_buf),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
