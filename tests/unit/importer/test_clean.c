/* Unit tests for import plans (src/importer/clean*.c): every cleaning rule,
 * every on_invalid, every row filter, the column types, COPY text, config
 * errors, type inference and column-name proposals. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "importer/clean.h"

#define MAXC 8

typedef struct fixture {
    imp_cell_t header[MAXC];
    size_t nheader;
    imp_plan_t *plan;
    imp_error_t err;
    imp_result_t res;
    cd_buf_t out;
} fixture_t;

static fixture_t F;

static void set_header(const char *const *names)
{
    F.nheader = 0;
    for (; names[F.nheader]; F.nheader++) {
        F.header[F.nheader].data = names[F.nheader];
        F.header[F.nheader].len = strlen(names[F.nheader]);
    }
}

/* Compiles cfg (JSON text) against the header; NULL plan = error in F.err. */
static imp_plan_t *compile(const char *cfg)
{
    json_error_t je;
    json_t *j = json_loads(cfg, JSON_DECODE_ANY, &je);
    if (!j)
        fail_msg("bad test JSON: %s: %s", je.text, cfg);
    imp_plan_free(F.plan);
    memset(&F.err, 0, sizeof(F.err));
    F.plan = imp_plan_compile(j, F.header, F.nheader, &F.err);
    json_decref(j);
    return F.plan;
}

/* Applies the plan to one row of NUL-terminated cells (NULL-terminated
 * list) and returns the COPY line, "SKIP:reason", or "FAIL:message". */
static const char *apply(const char *const *cells)
{
    imp_cell_t row_cells[MAXC];
    imp_row_t row = {row_cells, 0, 7, false};
    for (; cells[row.ncells]; row.ncells++) {
        row_cells[row.ncells].data = cells[row.ncells];
        row_cells[row.ncells].len = strlen(cells[row.ncells]);
    }
    assert_true(imp_plan_apply(F.plan, &row, &F.res));
    cd_buf_reset(&F.out);
    switch (F.res.outcome) {
    case IMP_ROW_OK:
        assert_null(F.res.message);
        assert_true(imp_copy_append_row(&F.out, &F.res));
        break;
    case IMP_ROW_SKIP:
        assert_non_null(F.res.message);
        assert_true(cd_buf_printf(&F.out, "SKIP:%s", imp_skip_reason_name(F.res.reason)));
        break;
    case IMP_ROW_FAIL:
        assert_true(cd_buf_printf(&F.out, "FAIL:%s", F.res.message));
        break;
    }
    return cd_buf_str(&F.out);
}

/* One column "v" (text unless type says), rules as JSON, value in. */
static const char *one(const char *type, const char *rules, const char *value)
{
    static const char *const h[] = {"v", NULL};
    set_header(h);
    char cfg[2048];
    snprintf(cfg, sizeof(cfg),
             "{\"columns\":[{\"source_name\":\"v\",\"target_name\":\"v\",\"type\":\"%s\","
             "\"cleaning_rules\":%s}]}",
             type, rules);
    if (!compile(cfg))
        fail_msg("compile failed: %s", F.err.message);
    const char *cells[] = {value, NULL};
    return apply(cells);
}

#define T(rules, in) one("text", rules, in)

static int setup(void **state)
{
    (void)state;
    memset(&F, 0, sizeof(F));
    cd_buf_init(&F.out, 1 << 20);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    imp_plan_free(F.plan);
    F.plan = NULL;
    cd_buf_free(&F.out);
    return 0;
}

static void test_text_rules(void **state)
{
    (void)state;
    assert_string_equal(T("[{\"type\":\"trim\"}]", " \t a b \xC2\xA0\n"), "a b\n");
    assert_string_equal(T("[{\"type\":\"lowercase\"}]", "MiXeD"), "mixed\n");
    assert_string_equal(T("[{\"type\":\"lowercase\"}]", "\xC3\x89LODIE"), "\xC3\xA9lodie\n");
    assert_string_equal(T("[{\"type\":\"uppercase\"}]", "stra\xC3\x9F"
                                                        "e"),
                        "STRASSE\n");
    assert_string_equal(T("[{\"type\":\"uppercase\"}]", "abc"), "ABC\n");
    assert_string_equal(T("[{\"type\":\"title_case\"}]", "jean-luc o'neil SMITH"),
                        "Jean-Luc O'neil Smith\n");
    assert_string_equal(T("[{\"type\":\"title_case\"}]", "\xC3\xA9milie dupont"),
                        "\xC3\x89milie Dupont\n");
    assert_string_equal(T("[{\"type\":\"collapse_whitespace\"}]", "a  \t b\xC2\xA0\xC2\xA0"
                                                                  "c"),
                        "a b c\n");
    assert_string_equal(T("[{\"type\":\"replace\",\"find\":\"-\",\"replace\":\"\"}]", "555-12-34"),
                        "5551234\n");
    assert_string_equal(
        T("[{\"type\":\"replace\",\"find\":\"ab\",\"replace\":\"xyz\"}]", "abcabab"),
        "xyzcxyzxyz\n");
    /* default fills empty values only (after earlier rules) */
    assert_string_equal(T("[{\"type\":\"trim\"},{\"type\":\"default\",\"value\":\"n/a\"}]", "  "),
                        "n/a\n");
    assert_string_equal(T("[{\"type\":\"default\",\"value\":\"n/a\"}]", "x"), "x\n");
    assert_string_equal(T("[{\"type\":\"default\",\"value\":0}]", ""), "0\n");
    /* rules run in order */
    assert_string_equal(T("[{\"type\":\"trim\"},{\"type\":\"lowercase\"},"
                          "{\"type\":\"replace\",\"find\":\" \",\"replace\":\"_\"}]",
                          "  Big Deal "),
                        "big_deal\n");
    /* empty text is NULL */
    assert_string_equal(T("[]", ""), "\\N\n");
}

static void test_validate_email(void **state)
{
    (void)state;
    const char *ok[] = {"a@b.co", "first.last+tag@sub.example.org", "o'hara@x.ie",
                        "j\xC3\xBCrgen@b\xC3\xBC"
                        "cher.de"};
    const char *bad[] = {"bob@",     "@x.com",   "bob",      "a@b",       "a@b.c",     "a..b@x.com",
                         ".a@x.com", "a@-x.com", "a@x..com", "a b@x.com", "a@b@c.com", "a@x.123"};
    for (size_t i = 0; i < CD_ARRAY_LEN(ok); i++) {
        char want[128];
        snprintf(want, sizeof(want), "%s\n", ok[i]);
        assert_string_equal(T("[{\"type\":\"validate_email\",\"on_invalid\":\"skip\"}]", ok[i]),
                            want);
    }
    for (size_t i = 0; i < CD_ARRAY_LEN(bad); i++)
        assert_string_equal(T("[{\"type\":\"validate_email\",\"on_invalid\":\"skip\"}]", bad[i]),
                            "SKIP:invalid_email");
    /* the skip message names the line, the column and the value */
    T("[{\"type\":\"validate_email\"}]", "bob@");
    assert_int_equal(F.res.outcome, IMP_ROW_SKIP);
    assert_int_equal(F.res.line, 7);
    assert_string_equal(F.res.message, "line 7: column 'v': 'bob@' is not a valid e-mail address");
    /* empty values are missing, not invalid */
    assert_string_equal(T("[{\"type\":\"validate_email\"}]", ""), "\\N\n");
}

static void test_on_invalid(void **state)
{
    (void)state;
#define RULE(oi)                                                                                   \
    snprintf(r, sizeof(r),                                                                         \
             "[{\"type\":\"validate_email\",\"on_invalid\":\"%s\"},{\"type\":\"uppercase\"}]", oi)
    char r[256];
    RULE("skip");
    assert_string_equal(T(r, "nope"), "SKIP:invalid_email");
    assert_int_equal(F.res.reason, IMP_SKIP_INVALID_EMAIL);
    RULE("null");
    assert_string_equal(T(r, "nope"), "\\N\n"); /* later rules do not revive it */
    RULE("keep");
    assert_string_equal(T(r, "nope"), "NOPE\n");
    RULE("fail");
    assert_string_equal(T(r, "nope"),
                        "FAIL:line 7: column 'v': 'nope' is not a valid e-mail address");
    assert_int_equal(F.res.outcome, IMP_ROW_FAIL);
    /* null then default */
    assert_string_equal(T("[{\"type\":\"validate_email\",\"on_invalid\":\"null\"},"
                          "{\"type\":\"default\",\"value\":\"unknown@example.com\"}]",
                          "x"),
                        "unknown@example.com\n");
    /* a non-validator takes no on_invalid */
    static const char *const h[] = {"v", NULL};
    set_header(h);
    assert_null(compile("[{\"source_name\":\"v\",\"cleaning_rules\":[{\"type\":\"trim\","
                        "\"on_invalid\":\"skip\"}]}]"));
    assert_int_equal(F.err.code, IMP_ERR_CONFIG);
    assert_null(compile("[{\"source_name\":\"v\",\"cleaning_rules\":[{\"type\":\"validate_email\","
                        "\"on_invalid\":\"explode\"}]}]"));
}

static void test_normalize_phone(void **state)
{
    (void)state;
    const char *us = "[{\"type\":\"normalize_phone\",\"default_country\":\"US\"}]";
    assert_string_equal(T(us, "(415) 555-0132"), "+14155550132\n");
    assert_string_equal(T(us, "+44 20 7946 0958"), "+442079460958\n");
    assert_string_equal(
        T("[{\"type\":\"normalize_phone\",\"default_country\":\"fr\"}]", "01 42 68 53 00"),
        "+33142685300\n");
    assert_string_equal(T(us, "12"), "SKIP:invalid_phone");
    assert_string_equal(T(us, "not a phone"), "SKIP:invalid_phone");
    /* without a country the number must be international */
    assert_string_equal(T("[{\"type\":\"normalize_phone\"}]", "4155550132"), "SKIP:invalid_phone");
    assert_string_equal(T("[{\"type\":\"normalize_phone\",\"on_invalid\":\"keep\"}]", "x1"),
                        "x1\n");
    static const char *const h[] = {"v", NULL};
    set_header(h);
    assert_null(compile("[{\"source_name\":\"v\",\"cleaning_rules\":[{\"type\":"
                        "\"normalize_phone\",\"default_country\":\"XX\"}]}]"));
    assert_non_null(strstr(F.err.message, "XX"));
    assert_null(compile("[{\"source_name\":\"v\",\"cleaning_rules\":[{\"type\":"
                        "\"normalize_phone\",\"default_country\":\"USA\"}]}]"));
}

static void test_parse_date(void **state)
{
    (void)state;
    assert_string_equal(
        one("date", "[{\"type\":\"parse_date\",\"format\":\"DD/MM/YYYY\"}]", "29/02/2024"),
        "2024-02-29\n");
    assert_string_equal(
        one("date", "[{\"type\":\"parse_date\",\"format\":\"MM/DD/YYYY\"}]", "2/9/2024"),
        "2024-02-09\n");
    assert_string_equal(
        one("date", "[{\"type\":\"parse_date\",\"format\":\"DD/MM/YYYY\"}]", "29/02/2023"),
        "SKIP:invalid_date");
    assert_string_equal(
        one("date", "[{\"type\":\"parse_date\",\"format\":\"DD/MM/YYYY\"}]", "31/04/2024"),
        "SKIP:invalid_date");
    assert_string_equal(
        one("date", "[{\"type\":\"parse_date\",\"format\":\"DD/MM/YYYY\"}]", "2024-01-01"),
        "SKIP:invalid_date");
    assert_string_equal(one("timestamp",
                            "[{\"type\":\"parse_date\",\"format\":\"DD.MM.YYYY HH:mm:ss\"}]",
                            "01.12.2026 09:05:07"),
                        "2026-12-01 09:05:07\n");
    assert_string_equal(one("timestamp", "[{\"type\":\"parse_date\",\"format\":\"YYYYMMDD HHmm\"}]",
                            "20261201 2400"),
                        "SKIP:invalid_date");
    assert_string_equal(one("date",
                            "[{\"type\":\"parse_date\",\"format\":\"DD/MM/YYYY\","
                            "\"on_invalid\":\"null\"}]",
                            "soon"),
                        "\\N\n");
    static const char *const h[] = {"v", NULL};
    set_header(h);
    assert_null(compile("[{\"source_name\":\"v\",\"cleaning_rules\":[{\"type\":\"parse_date\","
                        "\"format\":\"DD/MM/YY\"}]}]"));
    assert_non_null(strstr(F.err.message, "parse_date"));
    assert_null(compile("[{\"source_name\":\"v\",\"cleaning_rules\":[{\"type\":\"parse_date\","
                        "\"format\":\"MM/YYYY\"}]}]"));
}

static void test_parse_number(void **state)
{
    (void)state;
    const char *comma = "[{\"type\":\"parse_number\",\"decimal_separator\":\",\"}]";
    const char *dot = "[{\"type\":\"parse_number\"}]";
    assert_string_equal(one("number", comma, "1.234,56"), "1234.56\n");
    assert_string_equal(one("number", comma, "-0,5 \xE2\x82\xAC"), "-0.5\n");
    assert_string_equal(one("number", dot, "$1,234.50"), "1234.50\n");
    assert_string_equal(one("number", dot, "(12.5)"), "-12.5\n");
    assert_string_equal(one("number", dot, "1 000 000"), "1000000\n");
    assert_string_equal(one("integer", dot, "+42"), "42\n");
    assert_string_equal(one("number", dot, "12."), "12\n");
    assert_string_equal(one("number", dot, "1.2.3"), "SKIP:invalid_number");
    assert_string_equal(one("number", dot, "abc"), "SKIP:invalid_number");
    assert_string_equal(one("number", dot, "--1"), "SKIP:invalid_number");
    assert_string_equal(one("number", dot, "12%"), "SKIP:invalid_number");
    assert_string_equal(one("number", "[{\"type\":\"parse_number\",\"on_invalid\":\"fail\"}]", "x"),
                        "FAIL:line 7: column 'v': 'x' is not a number");
    static const char *const h[] = {"v", NULL};
    set_header(h);
    assert_null(compile("[{\"source_name\":\"v\",\"cleaning_rules\":[{\"type\":\"parse_number\","
                        "\"decimal_separator\":\";\"}]}]"));
}

static void test_max_length(void **state)
{
    (void)state;
    /* characters, not bytes; truncates by default */
    assert_string_equal(T("[{\"type\":\"max_length\",\"length\":3}]", "\xC3\xA9\xC3\xA9\xC3\xA9"
                                                                      "z"),
                        "\xC3\xA9\xC3\xA9\xC3\xA9\n");
    assert_string_equal(T("[{\"type\":\"max_length\",\"length\":3}]", "abc"), "abc\n");
    assert_string_equal(
        T("[{\"type\":\"max_length\",\"length\":3,\"on_invalid\":\"skip\"}]", "abcd"),
        "SKIP:too_long");
    assert_string_equal(
        T("[{\"type\":\"max_length\",\"length\":3,\"on_invalid\":\"null\"}]", "abcd"), "\\N\n");
    assert_string_equal(
        T("[{\"type\":\"max_length\",\"length\":3,\"on_invalid\":\"keep\"}]", "abcd"), "abcd\n");
    assert_string_equal(
        T("[{\"type\":\"max_length\",\"length\":3,\"on_invalid\":\"fail\"}]", "abcd"),
        "FAIL:line 7: column 'v': 'abcd' is longer than the maximum length");
    static const char *const h[] = {"v", NULL};
    set_header(h);
    assert_null(compile("[{\"source_name\":\"v\",\"cleaning_rules\":[{\"type\":\"max_length\","
                        "\"length\":0}]}]"));
}

static void test_types(void **state)
{
    (void)state;
    assert_string_equal(one("integer", "[]", " -2147483648 "), "-2147483648\n");
    assert_string_equal(one("integer", "[]", "2147483648"), "SKIP:invalid_value");
    assert_string_equal(one("integer", "[]", "1.0"), "SKIP:invalid_value");
    assert_string_equal(F.res.message, "line 7: column 'v': '1.0' is not an integer");
    assert_string_equal(one("number", "[]", "-1.5e3"), "-1.5e3\n");
    assert_string_equal(one("number", "[]", "NaN"), "SKIP:invalid_value");
    assert_string_equal(one("boolean", "[]", "Yes"), "t\n");
    assert_string_equal(one("boolean", "[]", "0"), "f\n");
    assert_string_equal(one("boolean", "[]", "maybe"), "SKIP:invalid_value");
    assert_string_equal(one("date", "[]", "2024/02/29"), "2024-02-29\n");
    assert_string_equal(one("date", "[]", "2024-02-30"), "SKIP:invalid_value");
    assert_string_equal(one("date", "[]", "2024-03-01 10:00:00"), "2024-03-01\n");
    assert_string_equal(one("timestamp", "[]", "2024-03-01T10:20:30.125Z"),
                        "2024-03-01 10:20:30.125+00:00\n");
    assert_string_equal(one("timestamp", "[]", "2024-03-01 10:20 -0530"),
                        "2024-03-01 10:20:00-05:30\n");
    assert_string_equal(one("timestamp", "[]", "2024-03-01"), "2024-03-01 00:00:00\n");
    assert_string_equal(one("timestamp", "[]", "2024-03-01 25:00"), "SKIP:invalid_value");
    /* a column's own on_invalid for values not of its type */
    static const char *const h[] = {"v", NULL};
    set_header(h);
    assert_non_null(
        compile("[{\"source_name\":\"v\",\"type\":\"integer\",\"on_invalid\":\"null\"}]"));
    const char *row[] = {"x", NULL};
    assert_string_equal(apply(row), "\\N\n");
    assert_non_null(
        compile("[{\"source_name\":\"v\",\"type\":\"integer\",\"on_invalid\":\"fail\"}]"));
    assert_string_equal(apply(row), "FAIL:line 7: column 'v': 'x' is not an integer");
    assert_null(compile("[{\"source_name\":\"v\",\"type\":\"integer\",\"on_invalid\":\"keep\"}]"));
    /* names */
    imp_type_t t;
    assert_true(imp_type_from_name("timestamp", &t));
    assert_int_equal(t, IMP_TYPE_TIMESTAMP);
    assert_false(imp_type_from_name("string", &t));
    assert_string_equal(imp_type_sql(IMP_TYPE_NUMBER), "NUMERIC");
    assert_string_equal(imp_type_name(IMP_TYPE_BOOLEAN), "boolean");
}

static void test_copy_escaping(void **state)
{
    (void)state;
    assert_string_equal(T("[]", "a\\b\tc\nd\re"), "a\\\\b\\tc\\nd\\re\n");
    assert_string_equal(T("[]", "\\N"), "\\\\N\n");
    /* bounded output: refused whole, buffer unchanged */
    cd_buf_t small;
    cd_buf_init(&small, 7);
    imp_value_t v[2] = {{"abc", 3, false}, {NULL, 0, true}};
    imp_result_t r = {.outcome = IMP_ROW_OK, .values = v, .nvalues = 2};
    assert_true(imp_copy_append_row(&small, &r));
    assert_string_equal(cd_buf_str(&small), "abc\t\\N\n");
    assert_false(imp_copy_append_row(&small, &r));
    assert_string_equal(cd_buf_str(&small), "abc\t\\N\n");
    cd_buf_free(&small);
}

static void test_mapping(void **state)
{
    (void)state;
    static const char *const h[] = {"Email", "Name", "Email", "Status", NULL};
    set_header(h);
    /* the k-th entry naming a repeated source reads its k-th occurrence;
     * excluded columns are not output; missing target names are proposed */
    assert_non_null(compile("{\"columns\":["
                            "{\"source_name\":\"Email\",\"target_name\":\"work_email\"},"
                            "{\"source_name\":\"Name\",\"included\":false},"
                            "{\"source_name\":\"Email\",\"type\":\"text\"}]}"));
    size_t n;
    const imp_plan_column_t *cols = imp_plan_columns(F.plan, &n);
    assert_int_equal(n, 2);
    assert_string_equal(cols[0].target_name, "work_email");
    assert_int_equal(cols[0].source_index, 0);
    assert_string_equal(cols[1].target_name, "email_2");
    assert_int_equal(cols[1].source_index, 2);
    const char *row[] = {"a@x.com", "Ann", "b@x.com", "on", NULL};
    assert_string_equal(apply(row), "a@x.com\tb@x.com\n");
    /* a ragged row: missing cells are empty */
    const char *short_row[] = {"a@x.com", NULL};
    assert_string_equal(apply(short_row), "a@x.com\t\\N\n");

    /* errors a marketer can act on */
    assert_null(compile("{\"columns\":[{\"source_name\":\"E-mail\"}]}"));
    assert_string_equal(F.err.message, "column 'E-mail' named in the mapping is not in the file");
    assert_int_equal(F.err.code, IMP_ERR_CONFIG);
    assert_null(
        compile("{\"columns\":[{\"source_name\":\"Status\"},{\"source_name\":\"Status\"}]}"));
    assert_non_null(strstr(F.err.message, "not that many times"));
    assert_null(compile("{\"columns\":[]}"));
    assert_null(compile("{}"));
    assert_null(compile("{\"columns\":[{\"source_name\":\"Name\",\"target_name\":\"id\"}]}"));
    assert_non_null(strstr(F.err.message, "reserved"));
    assert_null(compile("{\"columns\":[{\"source_name\":\"Name\",\"target_name\":\"x\"},"
                        "{\"source_name\":\"Status\",\"target_name\":\"X\"}]}"));
    assert_non_null(strstr(F.err.message, "two columns"));
    assert_null(compile("{\"columns\":[{\"source_name\":\"Name\",\"target_name\":\"a\\nb\"}]}"));
    assert_null(compile("{\"columns\":[{\"source_name\":\"Name\",\"type\":\"varchar\"}]}"));
    assert_null(compile("{\"columns\":[{\"source_name\":\"Name\",\"cleaning_rules\":"
                        "[{\"type\":\"trimm\"}]}]}"));
    assert_string_equal(F.err.message, "column 'Name': unknown cleaning rule 'trimm'");
    assert_null(compile("{\"columns\":[{\"source_name\":\"Name\",\"cleaning_rules\":"
                        "[{\"type\":\"replace\",\"find\":\"\"}]}]}"));
    assert_null(compile("{\"columns\":[{\"source_name\":\"Name\",\"included\":false}]}"));
    assert_null(compile("[1]"));
    assert_null(compile("\"x\""));
}

static const char *filtered(const char *filter, const char *status)
{
    static const char *const h[] = {"Email", "Status", "Score", NULL};
    set_header(h);
    char cfg[1024];
    snprintf(cfg, sizeof(cfg),
             "{\"columns\":[{\"source_name\":\"Email\",\"target_name\":\"email\"},"
             "{\"source_name\":\"Score\",\"target_name\":\"score\",\"type\":\"integer\","
             "\"cleaning_rules\":[{\"type\":\"trim\"}]}],"
             "\"row_filters\":[%s]}",
             filter);
    if (!compile(cfg))
        fail_msg("compile failed: %s", F.err.message);
    const char *row[] = {"a@x.com", status, " 15 ", NULL};
    return apply(row);
}

#define KEEP "a@x.com\t15\n"
#define DROP "SKIP:filtered"

static void test_filters(void **state)
{
    (void)state;
    /* on an unmapped source column (raw), case-insensitive */
    const char *eq = "{\"column\":\"Status\",\"operator\":\"equals\",\"value\":\"Active\"}";
    assert_string_equal(filtered(eq, "active"), KEEP);
    assert_string_equal(filtered(eq, "Inactive"), DROP);
    assert_string_equal(F.res.message, "line 7: excluded by a row filter");
    const char *ex = "{\"column\":\"Status\",\"operator\":\"equals\",\"value\":\"Active\","
                     "\"action\":\"exclude\"}";
    assert_string_equal(filtered(ex, "ACTIVE"), DROP);
    assert_string_equal(filtered(ex, "Lead"), KEEP);
    const char *ne = "{\"column\":\"Status\",\"operator\":\"not_equals\",\"value\":\"Lead\"}";
    assert_string_equal(filtered(ne, "Lead"), DROP);
    assert_string_equal(filtered(ne, "Client"), KEEP);
    const char *co = "{\"column\":\"Status\",\"operator\":\"contains\",\"value\":\"VIP\"}";
    assert_string_equal(filtered(co, "gold vip member"), KEEP);
    assert_string_equal(filtered(co, "gold"), DROP);
    const char *sw = "{\"column\":\"Status\",\"operator\":\"starts_with\",\"value\":\"act\"}";
    assert_string_equal(filtered(sw, "Active"), KEEP);
    assert_string_equal(filtered(sw, "Inactive"), DROP);
    const char *ew = "{\"column\":\"Status\",\"operator\":\"ends_with\",\"value\":\"ive\"}";
    assert_string_equal(filtered(ew, "Inactive"), KEEP);
    assert_string_equal(filtered(ew, "Lead"), DROP);
    const char *ie = "{\"column\":\"Status\",\"operator\":\"is_empty\"}";
    assert_string_equal(filtered(ie, "  "), KEEP);
    assert_string_equal(filtered(ie, "x"), DROP);
    const char *ine = "{\"column\":\"Status\",\"operator\":\"is_not_empty\"}";
    assert_string_equal(filtered(ine, ""), DROP);
    assert_string_equal(filtered(ine, "x"), KEEP);
    const char *in = "{\"column\":\"Status\",\"operator\":\"in\",\"value\":[\"Lead\",\"client\"]}";
    assert_string_equal(filtered(in, "CLIENT"), KEEP);
    assert_string_equal(filtered(in, "Other"), DROP);
    /* numeric comparison on a mapped column's cleaned value (by target name) */
    const char *gt = "{\"column\":\"score\",\"operator\":\"greater_than\",\"value\":10}";
    assert_string_equal(filtered(gt, ""), KEEP);
    const char *gt2 = "{\"column\":\"Score\",\"operator\":\"greater_than\",\"value\":\"15\"}";
    assert_string_equal(filtered(gt2, ""), DROP);
    const char *lt = "{\"column\":\"score\",\"operator\":\"less_than\",\"value\":20.5}";
    assert_string_equal(filtered(lt, ""), KEEP);
    const char *lt2 = "{\"column\":\"score\",\"operator\":\"less_than\",\"value\":9}";
    assert_string_equal(filtered(lt2, ""), DROP);
    /* text comparison when the filter value is not a number (ISO dates) */
    const char *gtd =
        "{\"column\":\"Status\",\"operator\":\"greater_than\",\"value\":\"2024-01-01\"}";
    assert_string_equal(filtered(gtd, "2024-06-30"), KEEP);
    assert_string_equal(filtered(gtd, "2023-12-31"), DROP);
    /* non-numbers are neither greater nor less than a number */
    const char *gtn = "{\"column\":\"Status\",\"operator\":\"greater_than\",\"value\":1}";
    assert_string_equal(filtered(gtn, "abc"), DROP);
    /* several: all includes must match, no exclude may */
    char both[512];
    snprintf(both, sizeof(both), "%s,%s", ine, ex);
    assert_string_equal(filtered(both, "Lead"), KEEP);
    assert_string_equal(filtered(both, "Active"), DROP);
    /* a filtered row is "filtered" even if a fail rule would trip on it */
    static const char *const h[] = {"Email", "Status", NULL};
    set_header(h);
    assert_non_null(compile(
        "{\"columns\":[{\"source_name\":\"Email\",\"cleaning_rules\":[{\"type\":"
        "\"validate_email\",\"on_invalid\":\"fail\"}]}],\"row_filters\":[{\"column\":\"Status\","
        "\"operator\":\"equals\",\"value\":\"ok\"}]}"));
    const char *bad_but_filtered[] = {"nope", "skip me", NULL};
    assert_string_equal(apply(bad_but_filtered), DROP);
    const char *bad[] = {"nope", "ok", NULL};
    assert_string_equal(apply(bad), "FAIL:line 7: column 'Email': 'nope' is not a valid e-mail "
                                    "address");
    /* config errors */
    assert_null(compile("{\"columns\":[{\"source_name\":\"Email\"}],\"row_filters\":[{\"column\":"
                        "\"Nope\",\"operator\":\"equals\",\"value\":\"x\"}]}"));
    assert_non_null(strstr(F.err.message, "'Nope'"));
    assert_null(compile("{\"columns\":[{\"source_name\":\"Email\"}],\"row_filters\":[{\"column\":"
                        "\"Status\",\"operator\":\"like\",\"value\":\"x\"}]}"));
    assert_null(compile("{\"columns\":[{\"source_name\":\"Email\"}],\"row_filters\":[{\"column\":"
                        "\"Status\",\"operator\":\"equals\"}]}"));
    assert_null(compile("{\"columns\":[{\"source_name\":\"Email\"}],\"row_filters\":[{\"column\":"
                        "\"Status\",\"operator\":\"in\",\"value\":\"x\"}]}"));
    assert_null(
        compile("{\"columns\":[{\"source_name\":\"Email\"}],\"row_filters\":[{\"column\":"
                "\"Status\",\"operator\":\"equals\",\"value\":\"x\",\"action\":\"drop\"}]}"));
}

static void test_duplicates(void **state)
{
    (void)state;
    static const char *const h[] = {"E-mail", "Name", NULL};
    set_header(h);
    assert_non_null(compile("{\"columns\":[{\"source_name\":\"E-mail\",\"target_name\":"
                            "\"email\"},{\"source_name\":\"Name\",\"target_name\":\"name\"}],"
                            "\"duplicate_handling\":\"keep_last\",\"duplicate_key_columns\":"
                            "[\"email\",\"Name\"]}"));
    const size_t *keys;
    const bool *ci;
    size_t nk;
    assert_int_equal(imp_plan_duplicates(F.plan, &keys, &ci, &nk), IMP_DUP_KEEP_LAST);
    assert_int_equal(nk, 2);
    assert_int_equal(keys[0], 0);
    assert_true(ci[0]);
    assert_int_equal(keys[1], 1);
    assert_false(ci[1]);
    assert_non_null(compile("{\"columns\":[{\"source_name\":\"Name\"}]}"));
    assert_int_equal(imp_plan_duplicates(F.plan, &keys, &ci, &nk), IMP_DUP_NONE);
    assert_int_equal(nk, 0);
    assert_null(compile("{\"columns\":[{\"source_name\":\"Name\"}],\"duplicate_handling\":"
                        "\"skip_all\"}"));
    assert_null(compile("{\"columns\":[{\"source_name\":\"Name\"}],\"duplicate_handling\":"
                        "\"keep_first\",\"duplicate_key_columns\":[\"E-mail\"]}"));
    assert_null(compile("{\"columns\":[{\"source_name\":\"Name\"}],\"duplicate_handling\":"
                        "\"newest\",\"duplicate_key_columns\":[\"Name\"]}"));
}

static void test_inference(void **state)
{
    (void)state;
    assert_int_equal(imp_infer_value("42", 2), IMP_TYPE_INTEGER);
    assert_int_equal(imp_infer_value("4.2", 3), IMP_TYPE_NUMBER);
    assert_int_equal(imp_infer_value("3000000000", 10), IMP_TYPE_NUMBER);
    assert_int_equal(imp_infer_value("TRUE", 4), IMP_TYPE_BOOLEAN);
    assert_int_equal(imp_infer_value("2024-02-29", 10), IMP_TYPE_DATE);
    assert_int_equal(imp_infer_value("2024-02-30", 10), IMP_TYPE_TEXT);
    assert_int_equal(imp_infer_value("2024-02-29 10:00", 16), IMP_TYPE_TIMESTAMP);
    assert_int_equal(imp_infer_value("12/02/2024", 10), IMP_TYPE_TEXT);
    assert_int_equal(imp_infer_value("", 0), IMP_TYPE_TEXT);

    const char *rows[][6] = {
        {"1", "1.5", "yes", "2024-01-01", "2024-01-01", "a"},
        {"2", "2", "no", "2024-01-02", "2024-01-02 10:00:00", ""},
        {"", "-3e2", "", "", "", "3"},
    };
    imp_infer_t *inf = imp_infer_new(7);
    assert_non_null(inf);
    for (size_t r = 0; r < 3; r++) {
        imp_cell_t cells[6];
        for (size_t c = 0; c < 6; c++) {
            cells[c].data = rows[r][c];
            cells[c].len = strlen(rows[r][c]);
        }
        imp_row_t row = {cells, 6, (long long)r + 2, false};
        imp_infer_add_row(inf, &row);
    }
    assert_int_equal(imp_infer_type(inf, 0), IMP_TYPE_INTEGER);
    assert_int_equal(imp_infer_type(inf, 1), IMP_TYPE_NUMBER);
    assert_int_equal(imp_infer_type(inf, 2), IMP_TYPE_BOOLEAN);
    assert_int_equal(imp_infer_type(inf, 3), IMP_TYPE_DATE);
    assert_int_equal(imp_infer_type(inf, 4), IMP_TYPE_TIMESTAMP);
    assert_int_equal(imp_infer_type(inf, 5), IMP_TYPE_TEXT);
    assert_int_equal(imp_infer_type(inf, 6), IMP_TYPE_TEXT); /* never seen */
    assert_int_equal(imp_infer_type(inf, 99), IMP_TYPE_TEXT);

    /* the proposed config compiles and maps every column */
    static const char *const h[] = {"Id", "Amount", "Opt In", "Day", "When", "Note", NULL};
    set_header(h);
    json_t *cfg = imp_propose_config(F.header, 6, inf);
    assert_non_null(cfg);
    json_t *c0 = json_array_get(json_object_get(cfg, "columns"), 0);
    assert_string_equal(json_string_value(json_object_get(c0, "target_name")), "id_col");
    assert_string_equal(json_string_value(json_object_get(c0, "type")), "integer");
    assert_true(json_is_true(json_object_get(c0, "included")));
    imp_plan_free(F.plan);
    F.plan = imp_plan_compile(cfg, F.header, 6, &F.err);
    assert_non_null(F.plan);
    size_t n;
    const imp_plan_column_t *cols = imp_plan_columns(F.plan, &n);
    assert_int_equal(n, 6);
    assert_string_equal(cols[2].target_name, "opt_in");
    assert_int_equal(cols[4].type, IMP_TYPE_TIMESTAMP);
    json_decref(cfg);
    imp_infer_free(inf);
}

static void test_names(void **state)
{
    (void)state;
    static const char *const h[] = {"First Name", "eMailAddress", "Pr\xC3\xA9nom", "2024 Sales",
                                    "select",     "first_name",   "!!!",           NULL};
    set_header(h);
    char *out[7];
    const char *const extra[] = {"contact_id", NULL};
    assert_true(imp_propose_names(F.header, 7, extra, out));
    assert_string_equal(out[0], "first_name");
    assert_string_equal(out[1], "e_mail_address");
    assert_string_equal(out[2], "prenom");
    assert_string_equal(out[3], "c_2024_sales");
    assert_string_equal(out[4], "select_col");
    assert_string_equal(out[5], "first_name_2");
    assert_string_equal(out[6], "column_7");
    for (size_t i = 0; i < 7; i++)
        free(out[i]);
    static const char *const h2[] = {"HTMLParser",
                                     "Contact ID",
                                     "created_at",
                                     "Stra\xC3\x9F"
                                     "e",
                                     "\xE6\x97\xA5\xE6\x9C\xAC",
                                     NULL};
    set_header(h2);
    char *o2[5];
    const char *const extra2[] = {"contact_id", NULL};
    assert_true(imp_propose_names(F.header, 5, extra2, o2));
    assert_string_equal(o2[0], "html_parser");
    assert_string_equal(o2[1], "contact_id_col");
    assert_string_equal(o2[2], "created_at_col");
    assert_string_equal(o2[3], "strasse");
    assert_string_equal(o2[4], "column_5");
    for (size_t i = 0; i < 5; i++)
        free(o2[i]);
    /* long names stay within PostgreSQL's 63 bytes, suffix included */
    char longname[200];
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    imp_cell_t two[2] = {{longname, strlen(longname)}, {longname, strlen(longname)}};
    char *o3[2];
    assert_true(imp_propose_names(two, 2, NULL, o3));
    assert_int_equal(strlen(o3[0]), 63);
    assert_int_equal(strlen(o3[1]), 63);
    assert_string_equal(o3[1] + 61, "_2");
    free(o3[0]);
    free(o3[1]);
    assert_true(imp_is_reserved_word("ORDER"));
    assert_false(imp_is_reserved_word("orders"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_text_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_validate_email, setup, teardown),
        cmocka_unit_test_setup_teardown(test_on_invalid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_normalize_phone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_parse_date, setup, teardown),
        cmocka_unit_test_setup_teardown(test_parse_number, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_length, setup, teardown),
        cmocka_unit_test_setup_teardown(test_types, setup, teardown),
        cmocka_unit_test_setup_teardown(test_copy_escaping, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mapping, setup, teardown),
        cmocka_unit_test_setup_teardown(test_filters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_inference, setup, teardown),
        cmocka_unit_test_setup_teardown(test_names, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
