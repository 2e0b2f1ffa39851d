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

/* The account a provider value holds: the default base, http(s) only,
 * bounded fields, a secret required and cleansed on close. */
static void test_account_open(void **state)
{
    (void)state;
    webapi_account_t a;
    char err[256] = "";
    assert_false(webapi_account_open(&a, "", "https://api.example", "X_BASE", "", "X_KEY", 0, err,
                                     sizeof(err)));
    assert_string_equal(err, "X_KEY is not set");
    assert_false(webapi_account_open(&a, "file:///etc", "https://api.example", "X_BASE", "k",
                                     "X_KEY", 0, err, sizeof(err)));
    assert_non_null(strstr(err, "X_BASE must be an http(s) URL"));
    char big[WEBAPI_FIELD_MAX + 1];
    memset(big, 'k', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_false(webapi_account_open(&a, "", "https://api.example", "X_BASE", big, "X_KEY", 0, err,
                                     sizeof(err)));
    assert_true(webapi_account_open(&a, "", "https://api.example", "X_BASE", "key", "X_KEY", 0, err,
                                    sizeof(err)));
    assert_string_equal(a.api_base, "https://api.example");
    assert_string_equal(a.secret, "key");
    assert_int_equal(a.timeout_seconds, 30);
    assert_non_null(a.client);
    webapi_account_close(&a);
    assert_null(a.client);
    assert_int_equal(a.secret[0], 0);
    assert_true(webapi_account_open(&a, "http://127.0.0.1:9", "https://x", "B", "k", "K", 5, err,
                                    sizeof(err)));
    assert_int_equal(a.timeout_seconds, 5);
    webapi_account_close(&a);
}

/* A request that never reaches a server is NOT_SENT with libcurl's reason;
 * only http and https are spoken. */
static void test_perform(void **state)
{
    (void)state;
    struct webapi_client *c = webapi_client_new();
    assert_non_null(c);
    cd_buf_t answer;
    cd_buf_init(&answer, 1024);
    long status = -1;
    char err[256] = "";
    webapi_request_t r = {
        .url = "http://127.0.0.1:9/x", .user = "u", .password = "p", .timeout_seconds = 2};
    assert_int_equal(webapi_perform(c, &r, &answer, &status, err, sizeof(err)), WEBAPI_NOT_SENT);
    assert_int_equal(status, 0);
    assert_true(err[0] != '\0');
    r.url = "file:///etc/passwd";
    assert_int_equal(webapi_perform(c, &r, &answer, &status, err, sizeof(err)), WEBAPI_NOT_SENT);
    assert_int_equal(answer.len, 0);
    cd_buf_free(&answer);
    webapi_client_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_connect_failure),
        cmocka_unit_test(test_write_buf),
        cmocka_unit_test(test_account_open),
        cmocka_unit_test(test_perform),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
