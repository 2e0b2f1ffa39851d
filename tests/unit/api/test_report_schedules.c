/* Unit tests for api/report_schedules.c: the text of a scheduled report's
 * mail. The runs themselves (generation as the owner, the CSV attachment, the
 * signed link, one mail per recipient) are tested end to end in
 * tests/integration/reports.test.js; the schedule's rules in
 * tests/sql/032_report_schedules.sql. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "api/api.h"
#include "api/api_internal.h"

static void test_mail_text(void **state)
{
    (void)state;
    char *t =
        api__report_mail_text("Weekly numbers", "channel_comparison", "2026-11-23", "2026-11-29",
                              "CSV", "http://x.test/storage/v1/object/sign/a?token=t");
    assert_non_null(t);
    assert_non_null(strstr(t, "Weekly numbers\r\n"));
    assert_non_null(strstr(t, "Channel comparison, 2026-11-23 to 2026-11-29."));
    assert_non_null(strstr(t, "\r\nhttp://x.test/storage/v1/object/sign/a?token=t\r\n"));
    assert_non_null(strstr(t, "attached as CSV."));
    free(t);
    t = api__report_mail_text("Monthly", "audience", "2026-11-01", "2026-11-30", "PDF", "u");
    assert_non_null(t);
    assert_non_null(strstr(t, "attached as PDF."));
    free(t);
    assert_null(api__report_mail_text("x", "campaign_performance", "a", "b", "CSV", "u"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mail_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
