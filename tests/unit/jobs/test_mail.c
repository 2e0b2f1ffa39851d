/* Unit tests for jobs/mail.c: the statement that queues a mail (parameters,
 * the attachment as bytea hex, the retry settings). The job itself runs
 * against a real database and a real SMTP server in
 * tests/integration/auth-mail.test.js and reports.test.js, and the outbox's
 * rules in tests/sql/031_mail_outbox.sql. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "jobs/mail.h"

static void test_queue_stmt(void **state)
{
    (void)state;
    app_t app;
    memset(&app, 0, sizeof(app));
    app.cfg.mail_max_attempts = 5;
    app.cfg.mail_retry_delay = 12;
    mail_item_t m = {.purpose = "report",
                     .kind = "report.weekly",
                     .to = "a@example.com",
                     .subject = "s",
                     .text = "t",
                     .attachment_name = "r.csv",
                     .attachment_type = "text/csv",
                     .attachment = "a\0\xff",
                     .attachment_len = 3};
    const char *params[11];
    char attempts[16], delay[24];
    char *hex = NULL;
    db_stmt_t st;
    assert_true(mail_queue_stmt(&app, &m, params, attempts, delay, &hex, &st));
    assert_int_equal(st.nparams, 11);
    assert_ptr_equal(st.params, params);
    assert_non_null(strstr(st.sql, "jobs.queue_mail("));
    assert_string_equal(params[0], "report");
    assert_string_equal(params[2], "a@example.com");
    assert_null(params[5]); /* no HTML */
    assert_string_equal(params[6], "r.csv");
    assert_string_equal(params[8], "\\x6100ff"); /* NUL and 0xff survive */
    assert_string_equal(params[9], "5");
    assert_string_equal(params[10], "12");
    free(hex);

    /* no attachment: its name and type are not sent either */
    m.attachment = NULL;
    assert_true(mail_queue_stmt(&app, &m, params, attempts, delay, &hex, &st));
    assert_null(hex);
    assert_null(params[6]);
    assert_null(params[7]);
    assert_null(params[8]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_queue_stmt),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
