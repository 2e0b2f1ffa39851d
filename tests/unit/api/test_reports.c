/* Unit tests for api/reports: CSV quoting with formula neutralisation and download file names. */
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

/* The CSV text of one field. */
static const char *field(const char *s)
{
    static char out[512];
    cd_buf_t b;
    cd_buf_init(&b, 400);
    assert_true(api__csv_append_field(&b, s, s ? strlen(s) : 0));
    snprintf(out, sizeof(out), "%s", cd_buf_str(&b));
    cd_buf_free(&b);
    return out;
}

static void test_csv_quoting(void **state)
{
    (void)state;
    assert_string_equal(field("plain"), "plain");
    assert_string_equal(field(""), "");
    assert_string_equal(field(NULL), "");
    assert_string_equal(field("a,b"), "\"a,b\"");
    assert_string_equal(field("say \"hi\""), "\"say \"\"hi\"\"\"");
    assert_string_equal(field("\""), "\"\"\"\"");
    assert_string_equal(field("line1\nline2"), "\"line1\nline2\"");
    assert_string_equal(field("cr\rlf"), "\"cr\rlf\"");
    assert_string_equal(field("caf\xc3\xa9"), "caf\xc3\xa9");
    assert_string_equal(field("it's"), "it's");
    assert_string_equal(field(" leading space"), " leading space");
    /* an embedded NUL is written as is (the length counts, not strlen) */
    cd_buf_t b;
    cd_buf_init(&b, 64);
    assert_true(api__csv_append_field(&b, "a\0b", 3));
    assert_int_equal(b.len, 3);
    cd_buf_free(&b);
}

static void test_csv_formulas(void **state)
{
    (void)state;
    assert_string_equal(field("=1+1"), "'=1+1");
    assert_string_equal(field("+cmd"), "'+cmd");
    assert_string_equal(field("-2+3"), "'-2+3");
    assert_string_equal(field("@SUM(A1)"), "'@SUM(A1)");
    assert_string_equal(field("\tx"), "'\tx");
    assert_string_equal(field("\r=x"), "\"'\r=x\"");
    assert_string_equal(field("=HYPERLINK(\"http://e\",\"x\")"),
                        "\"'=HYPERLINK(\"\"http://e\"\",\"\"x\"\")\"");
    assert_string_equal(field("=a,b"), "\"'=a,b\"");
    assert_string_equal(field("a=b"), "a=b"); /* only the first character counts */
    /* plain numbers stay numbers */
    assert_string_equal(field("-5"), "-5");
    assert_string_equal(field("-0.0075"), "-0.0075");
    assert_string_equal(field("+12"), "+12");
    assert_string_equal(field("42"), "42");
    assert_string_equal(field("-"), "'-");
    assert_string_equal(field("-1e5"), "'-1e5");
    assert_string_equal(field("-1."), "'-1.");
    assert_string_equal(field("-.5"), "'-.5");
    assert_true(api__csv_is_number("100.00", 6));
    assert_true(api__csv_is_number("-3", 2));
    assert_false(api__csv_is_number("", 0));
    assert_false(api__csv_is_number("1,5", 3));
    assert_false(api__csv_is_number("1.2.3", 5));
    assert_false(api__csv_is_number("0x10", 4));
}

static void test_csv_full_buffer(void **state)
{
    (void)state;
    cd_buf_t b;
    cd_buf_init(&b, 8);
    assert_true(cd_buf_adds(&b, "ab,"));
    /* does not fit: refused and the buffer is left exactly as it was */
    assert_false(api__csv_append_field(&b, "x,\"yz\"", 6));
    assert_int_equal(b.len, 3);
    assert_string_equal(cd_buf_str(&b), "ab,");
    assert_true(api__csv_append_field(&b, "=q", 2)); /* "'=q" fits: 6 bytes */
    assert_string_equal(cd_buf_str(&b), "ab,'=q");
    cd_buf_free(&b);
}

static void test_safe_filename(void **state)
{
    (void)state;
    char out[API_FILENAME_MAX];
    api__safe_filename("report-2030-01-31", "Spring Sale (EU)", "csv", out, sizeof(out));
    assert_string_equal(out, "report-2030-01-31-spring-sale-eu.csv");
    api__safe_filename("report", "=HYPERLINK(\"x\")\r\nSet-Cookie: a=b", "json", out, sizeof(out));
    assert_string_equal(out, "report-hyperlink-x-set-cookie-a-b.json");
    api__safe_filename("report", "../../etc/passwd", "csv", out, sizeof(out));
    assert_string_equal(out, "report-etc-passwd.csv");
    api__safe_filename("report", "\xe2\x82\xac\xe2\x82\xac", "csv", out, sizeof(out));
    assert_string_equal(out, "report-report.csv");
    api__safe_filename("report", NULL, "csv", out, sizeof(out));
    assert_string_equal(out, "report-report.csv");
    char name[300];
    memset(name, 'a', sizeof(name) - 1);
    name[sizeof(name) - 1] = '\0';
    api__safe_filename("r", name, "csv", out, sizeof(out));
    assert_int_equal(strlen(out), 2 + 48 + 4);
    for (const char *p = out; *p; p++)
        assert_true(strchr("abcdefghijklmnopqrstuvwxyz0123456789-.", *p) != NULL);
    char small[8];
    api__safe_filename("report", "x", "csv", small, sizeof(small));
    assert_int_equal(strlen(small), 7);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_csv_quoting),
        cmocka_unit_test(test_csv_formulas),
        cmocka_unit_test(test_csv_full_buffer),
        cmocka_unit_test(test_safe_filename),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
