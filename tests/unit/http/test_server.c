/* Unit tests for http/server: routing, URL decoding, CORS origins, common headers and
 * request ids. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>

#include "http/http.h"

static bool match(const char *pattern, const char *path, const char **params, size_t *n)
{
    static char scratch[256];
    return http_route_match(pattern, path, params, n, scratch, sizeof(scratch));
}

static void test_route_literal(void **state)
{
    (void)state;
    const char *p[HTTP_MAX_ROUTE_PARAMS];
    size_t n = 99;
    assert_true(match("/health", "/health", p, &n));
    assert_int_equal(n, 0);
    assert_false(match("/health", "/healthz", p, &n));
    assert_false(match("/health", "/healt", p, &n));
    assert_false(match("/health", "/health/", p, &n));
    assert_false(match("/auth/v1/user", "/auth/v1/users", p, &n));
}

static void test_route_params(void **state)
{
    (void)state;
    const char *p[HTTP_MAX_ROUTE_PARAMS];
    size_t n;
    assert_true(match("/auth/v1/admin/users/:id", "/auth/v1/admin/users/abc", p, &n));
    assert_int_equal(n, 1);
    assert_string_equal(p[0], "abc");
    assert_false(match("/auth/v1/admin/users/:id", "/auth/v1/admin/users/", p, &n));
    assert_false(match("/auth/v1/admin/users/:id", "/auth/v1/admin/users/a/b", p, &n));
    assert_true(match("/a/:x/b/:y", "/a/1/b/2", p, &n));
    assert_int_equal(n, 2);
    assert_string_equal(p[0], "1");
    assert_string_equal(p[1], "2");
}

static void test_route_wildcard(void **state)
{
    (void)state;
    const char *p[HTTP_MAX_ROUTE_PARAMS];
    size_t n;
    assert_true(match("/rest/v1/*", "/rest/v1/campaigns", p, &n));
    assert_int_equal(n, 1);
    assert_string_equal(p[0], "campaigns");
    assert_true(match("/rest/v1/*", "/rest/v1/", p, &n));
    assert_string_equal(p[0], "");
    assert_true(match("/storage/v1/object/:bucket/*", "/storage/v1/object/b/x/y.png", p, &n));
    assert_int_equal(n, 2);
    assert_string_equal(p[0], "b");
    assert_string_equal(p[1], "x/y.png");
    /* a capture that does not fit the scratch space is a non-match, not an overflow */
    char tiny[4];
    char longpath[64];
    memset(longpath, 'a', sizeof(longpath) - 1);
    longpath[0] = '/';
    longpath[sizeof(longpath) - 1] = '\0';
    assert_false(http_route_match("/*", longpath, p, &n, tiny, sizeof(tiny)));
}

static void test_url_decode(void **state)
{
    (void)state;
    char a[] = "a%20b%2Cc+d";
    assert_true(http_url_decode(a, true));
    assert_string_equal(a, "a b,c d");
    char b[] = "a+b";
    assert_true(http_url_decode(b, false));
    assert_string_equal(b, "a+b");
    char bad1[] = "%zz";
    assert_false(http_url_decode(bad1, true));
    char bad2[] = "abc%2";
    assert_false(http_url_decode(bad2, true));
    char nul[] = "a%00b";
    assert_false(http_url_decode(nul, true));
    char utf[] = "%C3%A9";
    assert_true(http_url_decode(utf, true));
    assert_string_equal(utf, "\xc3\xa9");
}

static void test_cors_origins(void **state)
{
    (void)state;
    assert_true(http_cors_origin_allowed("*", "https://a.example"));
    assert_false(http_cors_origin_allowed("*", NULL));
    assert_false(http_cors_origin_allowed("*", ""));
    const char *list = "https://a.example, https://b.example";
    assert_true(http_cors_origin_allowed(list, "https://a.example"));
    assert_true(http_cors_origin_allowed(list, "https://b.example"));
    assert_false(http_cors_origin_allowed(list, "https://c.example"));
    assert_false(http_cors_origin_allowed(list, "https://a.example.evil"));
    assert_false(http_cors_origin_allowed(list, "https://a.exampl"));
}

static void free_resp_headers(http_request_t *req)
{
    for (size_t i = 0; i < req->nresp_headers; i++) {
        free(req->resp_headers[i].name);
        free(req->resp_headers[i].value);
    }
    req->nresp_headers = 0;
}

static void test_common_headers(void **state)
{
    (void)state;
    static http_request_t req; /* large: not on the stack */
    memset(&req, 0, sizeof(req));
    /* the bits choose, the table's order is kept, nothing else is added */
    assert_true(http_add_common_headers(&req, HTTP_HDR_NO_INDEX | HTTP_HDR_NO_STORE));
    assert_int_equal(req.nresp_headers, 2);
    assert_string_equal(req.resp_headers[0].name, "Cache-Control");
    assert_string_equal(req.resp_headers[0].value, "no-store, max-age=0");
    assert_string_equal(req.resp_headers[1].name, "X-Robots-Tag");
    assert_string_equal(req.resp_headers[1].value, "noindex");
    free_resp_headers(&req);
    assert_true(http_add_common_headers(&req, HTTP_HDR_NOSNIFF | HTTP_HDR_NO_REFERRER |
                                                  HTTP_HDR_COOP_SAME));
    assert_int_equal(req.nresp_headers, 3);
    assert_string_equal(req.resp_headers[0].name, "X-Content-Type-Options");
    assert_string_equal(req.resp_headers[0].value, "nosniff");
    assert_string_equal(req.resp_headers[1].name, "Referrer-Policy");
    assert_string_equal(req.resp_headers[1].value, "no-referrer");
    assert_string_equal(req.resp_headers[2].name, "Cross-Origin-Opener-Policy");
    assert_string_equal(req.resp_headers[2].value, "same-origin");
    free_resp_headers(&req);
    assert_true(http_add_common_headers(&req, 0));
    assert_int_equal(req.nresp_headers, 0);
    /* one slot left: the first fits, the answer says the rest did not */
    for (size_t i = 0; i + 1 < HTTP_MAX_RESPONSE_HEADERS; i++)
        assert_true(http_add_header(&req, "X-Filler", "1"));
    assert_false(http_add_common_headers(&req, HTTP_HDR_NO_STORE | HTTP_HDR_NO_REFERRER));
    assert_int_equal(req.nresp_headers, HTTP_MAX_RESPONSE_HEADERS);
    assert_string_equal(req.resp_headers[HTTP_MAX_RESPONSE_HEADERS - 1].name, "Cache-Control");
    free_resp_headers(&req);
}

/* Request ids: 32 lower-case hex digits, and no two alike, also when
 * several threads take them at once (the counter is shared, the threads are
 * not told apart by anything else). */
#define RID_THREADS 8
#define RID_EACH    20000

static char rid_all[RID_THREADS * RID_EACH][HTTP_REQUEST_ID_LEN + 1];

static void *rid_worker(void *arg)
{
    size_t t = (size_t)(uintptr_t)arg;
    for (size_t i = 0; i < RID_EACH; i++)
        http_make_request_id(rid_all[t * RID_EACH + i]);
    return NULL;
}

static int cmp_rid(const void *a, const void *b)
{
    return memcmp(a, b, HTTP_REQUEST_ID_LEN + 1);
}

static void test_request_ids_unique(void **state)
{
    (void)state;
    pthread_t th[RID_THREADS];
    for (size_t t = 0; t < RID_THREADS; t++)
        assert_int_equal(pthread_create(&th[t], NULL, rid_worker, (void *)(uintptr_t)t), 0);
    for (size_t t = 0; t < RID_THREADS; t++)
        assert_int_equal(pthread_join(th[t], NULL), 0);
    size_t n = RID_THREADS * RID_EACH;
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(strlen(rid_all[i]), HTTP_REQUEST_ID_LEN);
        assert_int_equal(strspn(rid_all[i], "0123456789abcdef"), HTTP_REQUEST_ID_LEN);
    }
    qsort(rid_all, n, sizeof(rid_all[0]), cmp_rid);
    for (size_t i = 1; i < n; i++)
        assert_int_not_equal(cmp_rid(rid_all[i - 1], rid_all[i]), 0);
    /* one process prefix, the rest varies: the ids are not one counter in hex
     * (first and last of the sorted list differ past the prefix's 16 digits) */
    assert_memory_equal(rid_all[0], rid_all[n - 1], 16);
    assert_memory_not_equal(rid_all[0] + 16, rid_all[n - 1] + 16, 16);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_route_literal),      cmocka_unit_test(test_route_params),
        cmocka_unit_test(test_route_wildcard),     cmocka_unit_test(test_url_decode),
        cmocka_unit_test(test_cors_origins),       cmocka_unit_test(test_common_headers),
        cmocka_unit_test(test_request_ids_unique),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
