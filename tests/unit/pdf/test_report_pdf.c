/* Unit tests for pdf/report_pdf.c: the layout of a report document. Page
 * breaks (a long table continues on new pages, every row drawn once, the
 * header repeated), the page and size limits (refused cleanly, the buffer
 * left as it was), an empty report, and text: names with markup characters,
 * accents, CJK and invalid UTF-8 come out as text (checked with poppler's
 * pdftotext, which scripts/setup.sh installs for the tests), and the PDF
 * metadata (title, creation date) read back with pdfinfo. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "pdf/report_pdf.h"

static const char *const head3[] = {"date", "sent", "delivered_total"};
static const char *const pnames[] = {"Period", "Time zone"};
static const char *const pvalues[] = {"2026-11-01 to 2026-11-30", "Europe/Paris"};

/* A document with a per-day table of n rows (cells "2026-11-<r>", r, 2r). */
static rpdf_doc_t doc_with_rows(size_t n, const char ***cells_out)
{
    const char **cells = calloc(n * 3 + 1, sizeof(char *));
    assert_non_null(cells);
    for (size_t r = 0; r < n; r++) {
        char *s = malloc(64);
        assert_non_null(s);
        snprintf(s, 64, "2026-11-%03zu", r);
        cells[r * 3] = s;
        cells[r * 3 + 1] = "7";
        cells[r * 3 + 2] = "12.50";
    }
    *cells_out = cells;
    rpdf_doc_t d = {.title = "Long report", .created = "2026-12-05T10:00:00Z"};
    d.nparams = 2;
    d.param_names = pnames;
    d.param_values = pvalues;
    d.daily = (rpdf_table_t){"Per day", 3, n, head3, cells};
    return d;
}

static void free_rows(const char **cells, size_t n)
{
    for (size_t r = 0; r < n; r++)
        free((void *)cells[r * 3]);
    free(cells);
}

static void test_empty_report(void **state)
{
    (void)state;
    cd_buf_t b;
    cd_buf_init(&b, 4 * 1024 * 1024);
    rpdf_doc_t d = {.title = "Empty"};
    rpdf_stats_t st;
    assert_int_equal(rpdf_render(&d, 10, &b, &st), RPDF_OK);
    assert_int_equal(st.pages, 1);
    assert_int_equal(st.rows_drawn, 0);
    assert_true(b.len > 100);
    assert_memory_equal(b.data, "%PDF-", 5);
    assert_non_null(strstr(b.data + b.len - 8, "%%EOF"));

    /* tables with columns but no rows, a chart with no points: one page */
    cd_buf_reset(&b);
    const char **cells;
    d = doc_with_rows(0, &cells);
    d.kpi = (rpdf_table_t){"Key figures", 3, 0, head3, cells};
    d.chart.nseries = 1;
    assert_int_equal(rpdf_render(&d, 10, &b, &st), RPDF_OK);
    assert_int_equal(st.pages, 1);
    assert_int_equal(st.rows_drawn, 0);
    free_rows(cells, 0);
    cd_buf_free(&b);
}

static void test_page_breaks(void **state)
{
    (void)state;
    cd_buf_t b;
    cd_buf_init(&b, 8 * 1024 * 1024);
    const char **cells;
    rpdf_doc_t d = doc_with_rows(300, &cells);
    rpdf_stats_t st;
    assert_int_equal(rpdf_render(&d, 100, &b, &st), RPDF_OK);
    assert_int_equal(st.rows_drawn, 300);
    /* 300 rows of ~13 pt cannot fit one A4 page (~740 pt of room) */
    assert_true(st.pages >= 5);
    /* the table starts on page 1: every later page is a break inside it */
    assert_int_equal(st.table_page_breaks, st.pages - 1);

    /* one row more than fits a page count: the limit refuses, out unchanged */
    cd_buf_reset(&b);
    assert_int_equal(rpdf_render(&d, st.pages - 1, &b, &st), RPDF_TOO_MANY_PAGES);
    assert_int_equal(b.len, 0);
    free_rows(cells, 300);

    /* a short table stays on the first page */
    d = doc_with_rows(10, &cells);
    assert_int_equal(rpdf_render(&d, 1, &b, &st), RPDF_OK);
    assert_int_equal(st.pages, 1);
    assert_int_equal(st.table_page_breaks, 0);
    assert_int_equal(st.rows_drawn, 10);
    free_rows(cells, 10);
    cd_buf_free(&b);
}

static void test_output_bound(void **state)
{
    (void)state;
    cd_buf_t b;
    cd_buf_init(&b, 2000);
    assert_true(cd_buf_adds(&b, "keep"));
    const char **cells;
    rpdf_doc_t d = doc_with_rows(50, &cells);
    /* the PDF does not fit 2,000 bytes: refused, what was there is kept */
    assert_int_equal(rpdf_render(&d, 10, &b, NULL), RPDF_TOO_LARGE);
    assert_string_equal(cd_buf_str(&b), "keep");
    free_rows(cells, 50);
    cd_buf_free(&b);
}

/* Runs a poppler tool on the PDF in b and returns its output (malloc'd), or
 * NULL when the tool is missing (the test is then skipped). */
static char *poppler(const char *tool, const cd_buf_t *b)
{
    char path[] = "/tmp/test_report_pdf_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, b->data, b->len), (ssize_t)b->len);
    close(fd);
    char cmd[256];
    bool text = strcmp(tool, "pdftotext") == 0;
    snprintf(cmd, sizeof(cmd), "%s -enc UTF-8 %s %s 2>/dev/null", tool, path, text ? "-" : "");
    FILE *f = popen(cmd, "r");
    assert_non_null(f);
    char *out = calloc(1, 65536);
    assert_non_null(out);
    size_t n = fread(out, 1, 65535, f);
    int rc = pclose(f);
    unlink(path);
    if (rc != 0 || n == 0) {
        free(out);
        return NULL;
    }
    return out;
}

static void test_text_is_text(void **state)
{
    (void)state;
    static const char *const kh[] = {"metric", "total"};
    static const char *const kc[] = {"sent", "1234", "cost", "56.78"};
    static const char *const names[] = {"Campaign"};
    static const char *const values[] = {"Cr\xc3\xa8me br\xc3\xbbl\xc3\xa9\xc3\xa9 <i>&amp;"};
    rpdf_doc_t d = {.title = "No\xc3\xabl <b>sale</b> & \xe6\x9d\xb1\xe4\xba\xac \xff end",
                    .subtitle = "Campaign performance",
                    .created = "2026-12-05T10:11:12Z",
                    .nparams = 1,
                    .param_names = names,
                    .param_values = values,
                    .kpi = {"Key figures", 2, 2, kh, kc}};
    cd_buf_t b;
    cd_buf_init(&b, 4 * 1024 * 1024);
    assert_int_equal(rpdf_render(&d, 10, &b, NULL), RPDF_OK);
    char *text = poppler("pdftotext", &b);
    if (!text) {
        cd_buf_free(&b);
        skip();
    }
    /* markup characters are text, accents survive, the invalid byte is replaced */
    assert_non_null(strstr(text, "No\xc3\xabl <b>sale</b> &"));
    assert_non_null(strstr(text, "Cr\xc3\xa8me br\xc3\xbbl\xc3\xa9\xc3\xa9 <i>&amp;"));
    assert_non_null(strstr(text, "1234"));
    assert_non_null(strstr(text, "56.78"));
    assert_non_null(strstr(text, "Key figures"));
    assert_null(strstr(text, "\xff"));
    free(text);
    char *info = poppler("pdfinfo", &b);
    assert_non_null(info);
    assert_non_null(strstr(info, "Title:"));
    assert_non_null(strstr(info, "No\xc3\xabl <b>sale</b> &"));
    assert_non_null(strstr(info, "campaignd"));
    assert_non_null(strstr(info, "2026"));
    assert_non_null(strstr(info, "A4"));
    assert_non_null(strstr(info, "Pages:"));
    free(info);
    cd_buf_free(&b);
}

static void test_wide_table_is_landscape(void **state)
{
    (void)state;
    static const char *const head[12] = {"date", "a", "b", "c", "d", "e",
                                         "f",    "g", "h", "i", "j", "k"};
    static const char *const cells[12] = {"2026-11-01", "1", "2", "3", "4",  "5",
                                          "6",          "7", "8", "9", "10", "11"};
    static const double v[1] = {3};
    static const char *const labels[1] = {"2026-11-01"};
    rpdf_doc_t d = {.title = "Wide", .daily = {"Per day", 12, 1, head, cells}};
    d.chart = (rpdf_chart_t){"Per day", 1, labels, 1, {{"sent", v}}, true};
    cd_buf_t b;
    cd_buf_init(&b, 4 * 1024 * 1024);
    rpdf_stats_t st;
    assert_int_equal(rpdf_render(&d, 10, &b, &st), RPDF_OK);
    assert_int_equal(st.rows_drawn, 1);
    char *info = poppler("pdfinfo", &b);
    if (!info) {
        cd_buf_free(&b);
        skip();
    }
    assert_non_null(strstr(info, "841.89 x 595.276"));
    free(info);
    cd_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_report),
        cmocka_unit_test(test_page_breaks),
        cmocka_unit_test(test_output_bound),
        cmocka_unit_test(test_text_is_text),
        cmocka_unit_test(test_wide_table_is_landscape),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
