/* Unit tests for src/importer/http_api.c: which answers say "reconnect the
 * source" (401, 403, invalid_grant, Meta's code 190) and which are retried
 * (5xx), the private-address guard refusing a request before any byte is
 * sent, and the same-origin rule of next-page links. 429 waits and real conversations are tested
 * against local servers in tests/integration/connectors-http.test.js. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "importer/connectors.h"

static app_t app;

static void answer(conn_client_t *c, long status, const char *body)
{
    conn_resp_t r;
    memset(&r, 0, sizeof(r));
    cd_buf_init(&r.body, 1 << 20);
    cd_buf_init(&r.link, 1024);
    assert_true(cd_buf_adds(&r.body, body));
    r.status = status;
    c->err[0] = '\0';
    assert_false(conn_http_error(c, &r, "the API"));
    conn_resp_free(&r);
}

static void test_http_error(void **state)
{
    (void)state;
    char err[512];
    conn_client_t c = {.app = &app, .err = err, .errlen = sizeof(err)};
    answer(&c, 401, "{\"message\":\"token revoked\"}");
    assert_non_null(strstr(err, "reconnect the source"));
    assert_non_null(strstr(err, "HTTP 401"));
    assert_non_null(strstr(err, "token revoked"));
    assert_false(c.retryable);
    answer(&c, 403, "");
    assert_non_null(strstr(err, "reconnect the source"));
    answer(&c, 400,
           "{\"error\":\"invalid_grant\",\"error_description\":\"Invalid JWT Signature.\"}");
    assert_non_null(strstr(err, "reconnect the source"));
    assert_non_null(strstr(err, "Invalid JWT Signature."));
    answer(&c, 400,
           "{\"error\":{\"message\":\"Session has expired\",\"type\":\"OAuthException\","
           "\"code\":190}}");
    assert_non_null(strstr(err, "reconnect the source"));
    answer(&c, 503, "{\"error\":{\"message\":\"backend down\"}}");
    assert_null(strstr(err, "reconnect"));
    assert_non_null(strstr(err, "HTTP 503: backend down"));
    assert_true(c.retryable);
    answer(&c, 404, "not json");
    assert_null(strstr(err, "reconnect"));
    assert_non_null(strstr(err, "HTTP 404"));
    assert_false(c.retryable);
}

static void test_private_address_refused(void **state)
{
    (void)state;
    char err[512] = "";
    conn_client_t c = {.app = &app, .err = err, .errlen = sizeof(err)};
    conn_resp_t r;
    const char *urls[] = {"http://127.0.0.1:9/x", "http://[::1]:9/x", "http://169.254.169.254/"};
    for (size_t i = 0; i < sizeof(urls) / sizeof(*urls); i++) {
        assert_false(conn_http(&c, "GET", urls[i], NULL, NULL, NULL, &r));
        assert_non_null(strstr(err, "private or local network address"));
        assert_false(c.retryable);
    }
    /* only http and https */
    assert_false(conn_http(&c, "GET", "file:///etc/passwd", NULL, NULL, NULL, &r));
    assert_null(strstr(err, "root:"));
}

static void test_same_origin(void **state)
{
    (void)state;
    assert_true(conn_same_origin("https://api.example.com/v1/items?page=2",
                                 "https://API.example.com:443/v1/other"));
    assert_true(conn_same_origin("http://127.0.0.1:8080/a", "http://127.0.0.1:8080/b?c=d"));
    assert_false(conn_same_origin("https://api.example.com/a", "http://api.example.com/a"));
    assert_false(conn_same_origin("https://api.example.com/a", "https://api.example.com:8443/a"));
    assert_false(conn_same_origin("https://api.example.com/a", "https://evil.example/a"));
    assert_false(
        conn_same_origin("https://api.example.com.evil.example/a", "https://api.example.com/a"));
    assert_false(conn_same_origin("not a url", "https://api.example.com/a"));
}

int main(void)
{
    app.cfg.import_max_bytes = 1 << 20;
    app.cfg.import_fetch_timeout = 5;
    app.cfg.import_allow_private_networks = false;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_http_error),
        cmocka_unit_test(test_private_address_refused),
        cmocka_unit_test(test_same_origin),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
