/* Unit tests for api/reports_types.c: the type table and the CSV writer of
 * the reports beyond one campaign (header, rows and totals as JSON arrays of
 * text, formulas neutralised, malformed input refused). The numbers are
 * tested on a seeded database in tests/integration/reports.test.js. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "api/api.h"
#include "api/api_internal.h"

static void test_types(void **state)
{
    (void)state;
    assert_string_equal(api_report_type_title("period_summary"), "Period summary");
    assert_string_equal(api_report_type_title("channel_comparison"), "Channel comparison");
    assert_string_equal(api_report_type_title("audience"), "Audience");
    assert_null(api_report_type_title("campaign_performance"));
    assert_null(api_report_type_title("Audience"));
    assert_null(api_report_type_title(NULL));
    assert_non_null(strstr(api__flat_csv_sql(), "$1::uuid"));
}

static void test_csv_flat(void **state)
{
    (void)state;
    cd_buf_t b;
    cd_buf_init(&b, 4096);
    assert_true(api__csv_write_flat("[\"date\",\"channel\",\"sent\"]",
                                    "[[\"2026-11-02\",\"email\",\"3\"],"
                                    "[\"2026-11-02\",\"=HYPERLINK(1)\",null],"
                                    "[\"total\",\"a,b\",\"-1.50\"]]",
                                    &b));
    assert_string_equal(cd_buf_str(&b), "date,channel,sent\r\n"
                                        "2026-11-02,email,3\r\n"
                                        "2026-11-02,'=HYPERLINK(1),\r\n"
                                        "total,\"a,b\",-1.50\r\n");
    cd_buf_reset(&b);
    /* a row of the wrong width, a number instead of text, no columns: refused */
    assert_false(api__csv_write_flat("[\"a\",\"b\"]", "[[\"1\"]]", &b));
    cd_buf_reset(&b);
    assert_false(api__csv_write_flat("[\"a\"]", "[[1]]", &b));
    cd_buf_reset(&b);
    assert_false(api__csv_write_flat("[]", "[]", &b));
    cd_buf_reset(&b);
    assert_false(api__csv_write_flat("not json", "[]", &b));
    cd_buf_free(&b);

    /* a full buffer is a failure, never a truncated file that looks whole */
    cd_buf_init(&b, 16);
    assert_false(api__csv_write_flat("[\"date\",\"channel\",\"sent\"]",
                                     "[[\"2026-11-02\",\"email\",\"3\"]]", &b));
    cd_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_types),
        cmocka_unit_test(test_csv_flat),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
