/* Unit tests for api/reports_pdf.c: how a stored report's text cells become
 * a PDF document: the campaign report (totals as "metric, total" lines, the
 * per-day table, the main series), the period summary (totals per channel,
 * one series per channel summed per day), the channel comparison (rows are
 * the KPIs, bars per channel), malformed cells and the row limit. The SQL
 * and the download are tested in tests/integration/reports-pdf.test.js. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "api/api_internal.h"
#include "api/reports_pdf.h"

static api_pdf_report_t report(const char *type, const char *tables)
{
    return (api_pdf_report_t){.type = type,
                              .name = "November",
                              .from = "2026-11-01",
                              .to = "2026-11-02",
                              .timezone = "Europe/Paris",
                              .campaign = "Black Friday",
                              .channel = "email",
                              .generated = "2026-12-01 10:00 UTC",
                              .tables_json = tables,
                              .created = "2026-12-05T10:00:00Z"};
}

static const char *param(const api_pdf_model_t *m, const char *name)
{
    for (size_t i = 0; i < m->doc.nparams; i++)
        if (strcmp(m->doc.param_names[i], name) == 0)
            return m->doc.param_values[i];
    return "(absent)";
}

static void test_campaign(void **state)
{
    (void)state;
    api_pdf_report_t in = report("campaign_performance",
                                 "{\"columns\":[\"date\",\"messages\",\"sent\",\"open_rate\"],"
                                 "\"rows\":[[\"2026-11-01\",\"3\",\"2\",null],"
                                 "[\"2026-11-02\",\"5\",\"4\",\"25.00\"]],"
                                 "\"totals\":[[\"total\",\"8\",\"6\",\"16.67\"]]}");
    api_pdf_model_t m;
    assert_int_equal(api__report_pdf_model(&in, &m), API_PDF_OK);
    assert_string_equal(m.doc.title, "November");
    assert_string_equal(m.doc.subtitle, "Campaign performance");
    assert_string_equal(param(&m, "Campaign"), "Black Friday");
    assert_string_equal(param(&m, "Channel"), "email");
    assert_string_equal(param(&m, "Period"), "2026-11-01 to 2026-11-02");
    assert_string_equal(param(&m, "Time zone"), "Europe/Paris");
    /* the totals row as metric/total lines, without the date */
    assert_int_equal(m.doc.kpi.ncols, 2);
    assert_int_equal(m.doc.kpi.nrows, 3);
    assert_string_equal(m.doc.kpi.cells[0], "messages");
    assert_string_equal(m.doc.kpi.cells[1], "8");
    assert_string_equal(m.doc.kpi.cells[4], "open_rate");
    assert_string_equal(m.doc.kpi.cells[5], "16.67");
    /* the per-day table keeps every column; null stays empty */
    assert_int_equal(m.doc.daily.ncols, 4);
    assert_int_equal(m.doc.daily.nrows, 2);
    assert_null(m.doc.daily.cells[3]);
    assert_string_equal(m.doc.daily.cells[7], "25.00");
    /* the main series: sent per day, as bars for two days */
    assert_int_equal(m.doc.chart.npoints, 2);
    assert_int_equal(m.doc.chart.nseries, 1);
    assert_string_equal(m.doc.chart.series[0].label, "sent");
    assert_true(m.doc.chart.series[0].values[1] == 4.0);
    assert_string_equal(m.doc.chart.labels[0], "2026-11-01");
    assert_true(m.doc.chart.bars);
    api__report_pdf_model_free(&m);

    /* no period: all time */
    in.from = in.to = NULL;
    assert_int_equal(api__report_pdf_model(&in, &m), API_PDF_OK);
    assert_string_equal(param(&m, "Period"), "all time");
    api__report_pdf_model_free(&m);
}

static void test_period_summary(void **state)
{
    (void)state;
    api_pdf_report_t in = report(
        "period_summary", "{\"columns\":[\"date\",\"channel\",\"sent\"],"
                          "\"rows\":[[\"2026-11-01\",\"email\",\"3\"],"
                          "[\"2026-11-01\",\"sms\",\"1\"],"
                          "[\"2026-11-02\",\"email\",\"5\"],"
                          "[\"2026-11-02\",\"sms\",\"0\"]],"
                          "\"totals\":[[\"total\",\"email\",\"8\"],[\"total\",\"sms\",\"1\"]]}");
    api_pdf_model_t m;
    assert_int_equal(api__report_pdf_model(&in, &m), API_PDF_OK);
    assert_string_equal(m.doc.subtitle, "Period summary");
    assert_string_equal(param(&m, "Campaign"), "(absent)");
    assert_string_equal(param(&m, "Channel"), "email, sms, social");
    /* totals per channel: a table without the date column */
    assert_int_equal(m.doc.kpi.ncols, 2);
    assert_int_equal(m.doc.kpi.nrows, 2);
    assert_string_equal(m.doc.kpi.head[0], "channel");
    assert_string_equal(m.doc.kpi.cells[2], "sms");
    assert_string_equal(m.doc.kpi.cells[3], "1");
    assert_int_equal(m.doc.daily.nrows, 4);
    /* one series per channel over the two days */
    assert_int_equal(m.doc.chart.npoints, 2);
    assert_int_equal(m.doc.chart.nseries, 2);
    assert_string_equal(m.doc.chart.series[0].label, "email sent");
    assert_string_equal(m.doc.chart.series[1].label, "sms sent");
    assert_true(m.doc.chart.series[0].values[1] == 5.0);
    assert_true(m.doc.chart.series[1].values[0] == 1.0);
    assert_string_equal(m.doc.chart.labels[1], "2026-11-02");
    api__report_pdf_model_free(&m);
}

static void test_channel_comparison(void **state)
{
    (void)state;
    api_pdf_report_t in =
        report("channel_comparison", "{\"columns\":[\"channel\",\"sent\",\"delivered\"],"
                                     "\"rows\":[[\"email\",\"10\",\"9\"],[\"sms\",\"4\",\"4\"],"
                                     "[\"social\",\"0\",\"0\"]],\"totals\":[]}");
    api_pdf_model_t m;
    assert_int_equal(api__report_pdf_model(&in, &m), API_PDF_OK);
    assert_int_equal(m.doc.kpi.nrows, 3);
    assert_int_equal(m.doc.kpi.ncols, 3);
    assert_int_equal(m.doc.daily.ncols, 0); /* no per-day table */
    assert_int_equal(m.doc.chart.npoints, 3);
    assert_int_equal(m.doc.chart.nseries, 2);
    assert_true(m.doc.chart.bars);
    assert_string_equal(m.doc.chart.labels[2], "social");
    assert_true(m.doc.chart.series[1].values[0] == 9.0);
    api__report_pdf_model_free(&m);
}

static void test_malformed_and_limits(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "not json",
        "{\"columns\":[],\"rows\":[],\"totals\":[]}",
        "{\"columns\":[\"date\",\"a\"],\"rows\":[[\"x\"]],\"totals\":[]}",
        "{\"columns\":[\"date\",\"a\"],\"rows\":[[\"x\",1]],\"totals\":[]}",
        "{\"columns\":[\"date\",7],\"rows\":[],\"totals\":[]}",
        "{\"columns\":[\"date\",\"a\"],\"rows\":[],\"totals\":[[\"total\"]]}",
        "{\"columns\":[\"date\",\"a\"],\"rows\":{},\"totals\":[]}",
    };
    api_pdf_model_t m;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        api_pdf_report_t in = report("audience", bad[i]);
        assert_int_equal(api__report_pdf_model(&in, &m), API_PDF_MALFORMED);
        api__report_pdf_model_free(&m);
    }
    api_pdf_report_t in = report("audience", NULL);
    assert_int_equal(api__report_pdf_model(&in, &m), API_PDF_MALFORMED);
    api__report_pdf_model_free(&m);

    /* an empty report is a document with empty tables */
    in = report("audience", "{\"columns\":[\"date\",\"bounces\"],\"rows\":[],\"totals\":[]}");
    assert_int_equal(api__report_pdf_model(&in, &m), API_PDF_OK);
    assert_int_equal(m.doc.daily.nrows, 0);
    assert_int_equal(m.doc.chart.npoints, 0);
    api__report_pdf_model_free(&m);

    /* one row past the limit */
    cd_buf_t b;
    cd_buf_init(&b, 1024 * 1024);
    assert_true(cd_buf_adds(&b, "{\"columns\":[\"date\"],\"totals\":[],\"rows\":["));
    for (int i = 0; i <= API_PDF_MAX_ROWS; i++)
        assert_true(cd_buf_adds(&b, i ? ",[\"d\"]" : "[\"d\"]"));
    assert_true(cd_buf_adds(&b, "]}"));
    in = report("audience", cd_buf_str(&b));
    assert_int_equal(api__report_pdf_model(&in, &m), API_PDF_TOO_MANY_ROWS);
    api__report_pdf_model_free(&m);
    cd_buf_free(&b);
}

static void test_document_renders(void **state)
{
    (void)state;
    api_pdf_report_t in = report("period_summary", "{\"columns\":[\"date\",\"channel\",\"sent\"],"
                                                   "\"rows\":[[\"2026-11-01\",\"email\",\"3\"]],"
                                                   "\"totals\":[[\"total\",\"email\",\"3\"]]}");
    api_pdf_model_t m;
    assert_int_equal(api__report_pdf_model(&in, &m), API_PDF_OK);
    cd_buf_t b;
    cd_buf_init(&b, API_EXPORT_MAX_BYTES);
    rpdf_stats_t st;
    assert_int_equal(rpdf_render(&m.doc, API_PDF_MAX_PAGES, &b, &st), RPDF_OK);
    assert_int_equal(st.pages, 1);
    assert_int_equal(st.rows_drawn, 3); /* one totals row as two KPI lines, one day */
    assert_memory_equal(b.data, "%PDF-", 5);
    cd_buf_free(&b);
    api__report_pdf_model_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_campaign),           cmocka_unit_test(test_period_summary),
        cmocka_unit_test(test_channel_comparison), cmocka_unit_test(test_malformed_and_limits),
        cmocka_unit_test(test_document_renders),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
