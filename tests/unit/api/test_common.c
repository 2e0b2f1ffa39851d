/* Unit tests for api/common: input validation (dates, timestamps, numbers, metric names),
 * pagination links and the route table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "api/api.h"
#include "api/api_internal.h"

static void test_dates(void **state)
{
    (void)state;
    int y, m, d;
    assert_true(api__parse_date("2024-02-29", &y, &m, &d));
    assert_int_equal(y, 2024);
    assert_int_equal(m, 2);
    assert_int_equal(d, 29);
    assert_true(api__parse_date("2000-02-29", &y, &m, &d));
    assert_false(api__parse_date("1900-02-29", &y, &m, &d)); /* not a leap year */
    assert_false(api__parse_date("2023-02-29", &y, &m, &d));
    assert_false(api__parse_date("2024-04-31", &y, &m, &d));
    assert_false(api__parse_date("2024-13-01", &y, &m, &d));
    assert_false(api__parse_date("2024-00-10", &y, &m, &d));
    assert_false(api__parse_date("0000-01-01", &y, &m, &d));
    assert_false(api__parse_date("2024-1-01", &y, &m, &d));
    assert_false(api__parse_date("2024-01-01T00:00:00Z", &y, &m, &d));
    assert_false(api__parse_date(" 2024-01-01", &y, &m, &d));
    assert_false(api__parse_date("", &y, &m, &d));
    assert_false(api__parse_date(NULL, &y, &m, &d));
    assert_int_equal(api__days_from_civil(1970, 1, 1), 0);
    assert_int_equal(api__days_from_civil(2000, 3, 1), 11017);
    assert_int_equal(api__days_from_civil(2024, 3, 1) - api__days_from_civil(2024, 2, 28), 2);
    assert_int_equal(api__days_from_civil(1969, 12, 31), -1);
}

static void test_timestamps(void **state)
{
    (void)state;
    static const char *const good[] = {
        "2030-01-31T09:00:00Z",
        "2030-01-31T09:00Z",
        "2030-01-31 09:00:00+02:00",
        "2030-01-31T09:00:00.123Z",
        "2030-01-31T09:00:00.123456789-05:30",
        "2030-01-31T23:59:59+0100",
        "2030-01-31T00:00:00-08",
        "2030-01-31T09:00:00z",
    };
    static const char *const bad[] = {
        "2030-01-31",
        "2030-01-31T09:00:00", /* no offset: ambiguous */
        "2030-01-31T24:00:00Z",
        "2030-01-31T09:60:00Z",
        "2030-01-31T09:00:60Z",
        "2030-02-30T09:00:00Z",
        "2030-01-31T09:00:00.Z",
        "2030-01-31T09:00:00.1234567890Z",
        "2030-01-31T09:00:00+16:00",
        "2030-01-31T09:00:00+01:",
        "2030-01-31T09:00:00+1",
        "2030-01-31T09:00:00Z junk",
        "2030-01-31X09:00:00Z",
        "now",
        "",
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        if (!api__valid_timestamp(good[i]))
            fail_msg("should be valid: %s", good[i]);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (api__valid_timestamp(bad[i]))
            fail_msg("should be invalid: %s", bad[i]);
    }
    assert_false(api__valid_timestamp(NULL));
}

static void test_parse_long(void **state)
{
    (void)state;
    long v = 0;
    assert_true(api__parse_long("1", 1, 10, &v));
    assert_int_equal(v, 1);
    assert_true(api__parse_long("1000", 1, 1000, &v));
    assert_false(api__parse_long("1001", 1, 1000, &v));
    assert_false(api__parse_long("0", 1, 1000, &v));
    assert_false(api__parse_long("-1", 1, 1000, &v));
    assert_true(api__parse_long("-1", -5, 5, &v));
    assert_int_equal(v, -1);
    assert_false(api__parse_long("", 1, 10, &v));
    assert_false(api__parse_long("1.5", 1, 10, &v));
    assert_false(api__parse_long(" 1", 1, 10, &v));
    assert_false(api__parse_long("1x", 1, 10, &v));
    assert_false(api__parse_long("+1", 1, 10, &v));
    assert_false(api__parse_long("99999999999999999999999", 1, 10, &v)); /* no overflow */
    assert_false(api__parse_long(NULL, 1, 10, &v));
}

static void test_metric_names(void **state)
{
    (void)state;
    assert_true(api__valid_metric_name("visits"));
    assert_true(api__valid_metric_name("email.open_rate"));
    assert_true(api__valid_metric_name("ga4:sessions-total"));
    assert_true(api__valid_metric_name("7day_users"));
    char longest[API_MAX_METRIC_CHARS + 2];
    memset(longest, 'a', sizeof(longest));
    longest[API_MAX_METRIC_CHARS] = '\0';
    assert_true(api__valid_metric_name(longest));
    longest[API_MAX_METRIC_CHARS] = 'a';
    longest[API_MAX_METRIC_CHARS + 1] = '\0';
    assert_false(api__valid_metric_name(longest));
    assert_false(api__valid_metric_name(""));
    assert_false(api__valid_metric_name(NULL));
    assert_false(api__valid_metric_name("_hidden"));
    assert_false(api__valid_metric_name("page views"));
    assert_false(api__valid_metric_name("a;drop"));
    assert_false(api__valid_metric_name("caf\xc3\xa9"));
    assert_false(api__valid_metric_name("=1+1"));
}

static void test_link_header(void **state)
{
    (void)state;
    cd_buf_t b;
    cd_buf_init(&b, 4096);
    api_page_t p = {1, 2};
    assert_true(api__link_header(&b, "/api/campaigns", "", &p, 5));
    assert_string_equal(cd_buf_str(&b), "</api/campaigns?page=1&per_page=2>; rel=\"first\", "
                                        "</api/campaigns?page=2&per_page=2>; rel=\"next\", "
                                        "</api/campaigns?page=3&per_page=2>; rel=\"last\"");
    cd_buf_reset(&b);
    p.page = 2;
    assert_true(api__link_header(&b, "/api/campaigns", "&status=draft", &p, 5));
    assert_string_equal(cd_buf_str(&b),
                        "</api/campaigns?page=1&per_page=2&status=draft>; rel=\"first\", "
                        "</api/campaigns?page=1&per_page=2&status=draft>; rel=\"prev\", "
                        "</api/campaigns?page=3&per_page=2&status=draft>; rel=\"next\", "
                        "</api/campaigns?page=3&per_page=2&status=draft>; rel=\"last\"");
    cd_buf_reset(&b);
    p.page = 3;
    assert_true(api__link_header(&b, "/x", "", &p, 5));
    assert_string_equal(cd_buf_str(&b), "</x?page=1&per_page=2>; rel=\"first\", "
                                        "</x?page=2&per_page=2>; rel=\"prev\", "
                                        "</x?page=3&per_page=2>; rel=\"last\"");
    cd_buf_reset(&b);
    p = (api_page_t){1, 50};
    assert_true(api__link_header(&b, "/x", "", &p, 0)); /* empty list: one (empty) page */
    assert_string_equal(cd_buf_str(&b), "</x?page=1&per_page=50>; rel=\"first\", "
                                        "</x?page=1&per_page=50>; rel=\"last\"");
    cd_buf_reset(&b);
    p = (api_page_t){9, 10};
    assert_true(api__link_header(&b, "/x", "", &p, 25)); /* past the end: prev is the last */
    assert_string_equal(cd_buf_str(&b), "</x?page=1&per_page=10>; rel=\"first\", "
                                        "</x?page=3&per_page=10>; rel=\"prev\", "
                                        "</x?page=3&per_page=10>; rel=\"last\"");
    cd_buf_free(&b);
    cd_buf_init(&b, 10); /* too small: a clean failure */
    p = (api_page_t){1, 2};
    assert_false(api__link_header(&b, "/api/campaigns", "", &p, 5));
    cd_buf_free(&b);
}

static void test_query_append(void **state)
{
    (void)state;
    cd_buf_t b;
    cd_buf_init(&b, 256);
    assert_true(api__query_append(&b, "status", "draft"));
    assert_true(api__query_append(&b, "q", "a b&c=d/\xc3\xa9~"));
    assert_string_equal(cd_buf_str(&b), "&status=draft&q=a%20b%26c%3Dd%2F%C3%A9~");
    cd_buf_free(&b);
}

static void test_routes(void **state)
{
    (void)state;
    /* every endpoint of the specification, plus the export-to-storage POST */
    static const char *const want[][2] = {
        {"GET", "/api/analytics"},
        {"POST", "/api/analytics"},
        {"GET", "/api/campaigns"},
        {"POST", "/api/campaigns"},
        {"PUT", "/api/campaigns/:id"},
        {"DELETE", "/api/campaigns/:id"},
        {"GET", "/api/reports"},
        {"POST", "/api/reports"},
        {"GET", "/api/reports/:id/export"},
        {"POST", "/api/reports/:id/export"},
    };
    for (size_t w = 0; w < sizeof(want) / sizeof(want[0]); w++) {
        bool found = false;
        for (size_t i = 0; i < api_routes_len; i++)
            if (strcmp(api_routes[i].method, want[w][0]) == 0 &&
                strcmp(api_routes[i].pattern, want[w][1]) == 0)
                found = true;
        if (!found)
            fail_msg("no route %s %s", want[w][0], want[w][1]);
    }
    for (size_t i = 0; i < api_routes_len; i++) {
        assert_true(strncmp(api_routes[i].pattern, "/api/", 5) == 0);
        assert_non_null(api_routes[i].handler);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dates),       cmocka_unit_test(test_timestamps),
        cmocka_unit_test(test_parse_long),  cmocka_unit_test(test_metric_names),
        cmocka_unit_test(test_link_header), cmocka_unit_test(test_query_append),
        cmocka_unit_test(test_routes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
