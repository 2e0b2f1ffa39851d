/* Unit tests for src/importer/metrics.c's pure pieces: the days the
 * analytics APIs send (GA4's YYYYMMDD, Snowflake's days and seconds since
 * the epoch, timestamps) and which types are analytics sources. The API
 * conversations themselves are tested against local servers in
 * tests/integration/connectors-http.test.js. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "importer/connectors.h"

static void test_norm_date(void **state)
{
    (void)state;
    char d[11];
    assert_true(conn_norm_date("2024-03-01", false, d));
    assert_string_equal(d, "2024-03-01");
    assert_true(conn_norm_date("2024-03-01T23:59:59Z", false, d));
    assert_string_equal(d, "2024-03-01");
    assert_true(conn_norm_date("20240229", false, d)); /* GA4, a leap day */
    assert_string_equal(d, "2024-02-29");
    assert_false(conn_norm_date("20230229", false, d)); /* not a leap year */
    assert_false(conn_norm_date("2024-02-30", false, d));
    assert_false(conn_norm_date("2024-13-01", false, d));
    assert_false(conn_norm_date("19783", false, d)); /* days only when asked */
    assert_true(conn_norm_date("19783", true, d));   /* Snowflake DATE */
    assert_string_equal(d, "2024-03-01");
    assert_true(conn_norm_date("1709251199.000000000", true, d)); /* TIMESTAMP seconds */
    assert_string_equal(d, "2024-02-29");
    assert_false(conn_norm_date("12abc", true, d));
    assert_false(conn_norm_date("", true, d));
    assert_false(conn_norm_date(NULL, false, d));
    assert_false(conn_norm_date("yesterday", false, d));
}

static void test_metrics_types(void **state)
{
    (void)state;
    const char *yes[] = {"google_analytics", "meta_pixel", "bigquery", "snowflake"};
    const char *no[] = {"rest_api", "csv_url", "postgres", "", "GOOGLE_ANALYTICS"};
    for (size_t i = 0; i < sizeof(yes) / sizeof(*yes); i++)
        assert_true(conn_is_metrics_type(yes[i]));
    for (size_t i = 0; i < sizeof(no) / sizeof(*no); i++)
        assert_false(conn_is_metrics_type(no[i]));
    assert_false(conn_is_metrics_type(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_norm_date),
        cmocka_unit_test(test_metrics_types),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
