/* Unit tests for src/api: input validation, the campaign status transition
 * table, pagination links, CSV quoting with formula neutralisation and
 * download file names. No database. */
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

/* ---------------------------------------------------------- validation */

static void test_utf8(void **state)
{
    (void)state;
    size_t n = 99;
    assert_true(api__utf8_check("", 0, &n));
    assert_int_equal(n, 0);
    assert_true(api__utf8_check("abc", 3, &n));
    assert_int_equal(n, 3);
    assert_true(api__utf8_check("h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80", 15, &n));
    assert_int_equal(n, 9);
    assert_false(api__utf8_check("a\0b", 3, &n));             /* NUL */
    assert_false(api__utf8_check("\xc0\xaf", 2, &n));         /* overlong '/' */
    assert_false(api__utf8_check("\xe0\x80\xaf", 3, &n));     /* overlong, 3 bytes */
    assert_false(api__utf8_check("\xed\xa0\x80", 3, &n));     /* surrogate D800 */
    assert_false(api__utf8_check("\xf4\x90\x80\x80", 4, &n)); /* > U+10FFFF */
    assert_false(api__utf8_check("\xe2\x82", 2, &n));         /* truncated */
    assert_false(api__utf8_check("\x80", 1, &n));             /* lone continuation */
    assert_false(api__utf8_check("\xc3\x28", 2, &n));         /* bad continuation */
}

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

/* ----------------------------------------------------------- campaigns */

static void test_campaign_enums(void **state)
{
    (void)state;
    assert_true(api__campaign_type_valid("email"));
    assert_true(api__campaign_type_valid("sms"));
    assert_true(api__campaign_type_valid("social"));
    assert_false(api__campaign_type_valid("fax"));
    assert_false(api__campaign_type_valid("Email"));
    assert_false(api__campaign_type_valid(NULL));
    assert_true(api__campaign_status_known("draft"));
    assert_true(api__campaign_status_known("failed"));
    assert_false(api__campaign_status_known("archived"));
    assert_false(api__campaign_status_known(""));
    assert_false(api__campaign_status_known(NULL));
}

/* The whole matrix: every (from, to) pair of schema statuses is allowed
 * exactly when it is in this list (the brief's state machine). */
static void test_transition_matrix(void **state)
{
    (void)state;
    static const char *const statuses[] = {"draft",  "scheduled", "active",    "sending", "sent",
                                           "paused", "completed", "cancelled", "failed"};
    static const char *const allowed[] = {
        "draft>scheduled",     "draft>cancelled", "scheduled>sending", "scheduled>paused",
        "scheduled>cancelled", "sending>sent",    "sending>paused",    "sending>cancelled",
        "paused>scheduled",    "paused>sending",  "paused>cancelled",
    };
    size_t n_allowed = 0;
    for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
        for (size_t j = 0; j < sizeof(statuses) / sizeof(statuses[0]); j++) {
            char pair[64];
            snprintf(pair, sizeof(pair), "%s>%s", statuses[i], statuses[j]);
            bool want = false;
            for (size_t k = 0; k < sizeof(allowed) / sizeof(allowed[0]); k++)
                want = want || strcmp(allowed[k], pair) == 0;
            bool got = api__campaign_transition_allowed(statuses[i], statuses[j]);
            if (got != want)
                fail_msg("%s: expected %s", pair, want ? "allowed" : "refused");
            n_allowed += got;
        }
    }
    assert_int_equal(n_allowed, sizeof(allowed) / sizeof(allowed[0]));
    assert_false(api__campaign_transition_allowed(NULL, "sent"));
    assert_false(api__campaign_transition_allowed("draft", NULL));
    assert_false(api__campaign_transition_allowed("draft", "bogus"));
}

static void test_transition_texts(void **state)
{
    (void)state;
    char out[128];
    api__campaign_allowed_targets("draft", out, sizeof(out));
    assert_string_equal(out, "scheduled, cancelled");
    api__campaign_allowed_targets("paused", out, sizeof(out));
    assert_string_equal(out, "scheduled, sending, cancelled");
    api__campaign_allowed_targets("sent", out, sizeof(out));
    assert_string_equal(out, "none");
    api__campaign_allowed_targets("cancelled", out, sizeof(out));
    assert_string_equal(out, "none");
    api__campaign_sources_literal("cancelled", out, sizeof(out));
    assert_string_equal(out, "{draft,scheduled,sending,paused}");
    api__campaign_sources_literal("scheduled", out, sizeof(out));
    assert_string_equal(out, "{draft,paused}");
    api__campaign_sources_literal("sent", out, sizeof(out));
    assert_string_equal(out, "{sending}");
    api__campaign_sources_literal("draft", out, sizeof(out));
    assert_string_equal(out, "{}");
    api__campaign_sources_literal(NULL, out, sizeof(out));
    assert_string_equal(out, "{}");
    /* truncation stays inside the buffer and NUL-terminated */
    char tiny[6];
    memset(tiny, 'x', sizeof(tiny));
    api__campaign_sources_literal("cancelled", tiny, sizeof(tiny));
    assert_true(memchr(tiny, '\0', sizeof(tiny)) != NULL);
}

/* ---------------------------------------------------------- pagination */

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

/* ----------------------------------------------------------------- CSV */

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
    assert_string_equal(field("\r=x"), "\"'\r'=x\"");
    assert_string_equal(field("=HYPERLINK(\"http://e\",\"x\")"),
                        "\"'=HYPERLINK(\"\"http://e\"\",\"\"x\"\")\"");
    assert_string_equal(field("=a,b"), "\"'=a,b\"");
    assert_string_equal(field("a=b"), "a=b"); /* '=' inside a cell starts nothing */
    /* a spreadsheet that splits on ';' (or ',' / tab / a line break) sees a new cell after
     * each: quote the field, and neutralise a formula start after every separator */
    assert_string_equal(field("a;b"), "\"a;b\"");
    assert_string_equal(field("x;=cmd|' /C calc'!A0"), "\"x;'=cmd|' /C calc'!A0\"");
    assert_string_equal(field("x,=1+1"), "\"x,'=1+1\"");
    assert_string_equal(field("x,+1"), "\"x,+1\""); /* a number after a separator stays */
    assert_string_equal(field("x;-2+3"), "\"x;'-2+3\"");
    assert_string_equal(field("x\t@SUM(A1)"), "x\t'@SUM(A1)");
    assert_string_equal(field("l1\n=HYPERLINK(1)"), "\"l1\n'=HYPERLINK(1)\"");
    assert_string_equal(field("=a;=b"), "\"'=a;'=b\"");
    assert_string_equal(field("a;;=b"), "\"a;;'=b\"");
    assert_string_equal(field("a;"), "\"a;\"");
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
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_dates),
        cmocka_unit_test(test_timestamps),
        cmocka_unit_test(test_parse_long),
        cmocka_unit_test(test_metric_names),
        cmocka_unit_test(test_campaign_enums),
        cmocka_unit_test(test_transition_matrix),
        cmocka_unit_test(test_transition_texts),
        cmocka_unit_test(test_link_header),
        cmocka_unit_test(test_query_append),
        cmocka_unit_test(test_csv_quoting),
        cmocka_unit_test(test_csv_formulas),
        cmocka_unit_test(test_csv_full_buffer),
        cmocka_unit_test(test_safe_filename),
        cmocka_unit_test(test_routes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
