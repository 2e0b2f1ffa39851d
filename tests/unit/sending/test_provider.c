/* Unit tests for sending/provider.c: which provider the settings name, what
 * counts as configured (the 409 provider_not_configured), and that the SMTP
 * provider refuses unusable settings without any network I/O. Delivery
 * through it is tested against a real SMTP server by
 * tests/integration/sending.test.js. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sending/provider.h"

static provider_settings_t none(void)
{
    return (provider_settings_t){"", "", "", "", "", "", "", 5};
}

static void test_configured(void **state)
{
    (void)state;
    provider_settings_t s = none();
    assert_false(provider_email_configured(&s));
    assert_false(provider_sms_configured(&s));
    s.smtp_url = "smtp://127.0.0.1:1";
    assert_true(provider_email_configured(&s));
    s.email_provider = "sendgrid";
    assert_false(provider_email_configured(&s)); /* no API key */
    s.sendgrid_api_key = "SG.x";
    assert_true(provider_email_configured(&s));
    s.email_provider = "carrier-pigeon";
    assert_false(provider_email_configured(&s));
}

static void test_open(void **state)
{
    (void)state;
    provider_settings_t s = none();
    bool configured = true;
    char err[PROVIDER_ERROR_MAX];
    assert_null(provider_email_open(&s, &configured, err, sizeof(err)));
    assert_false(configured);
    assert_non_null(strstr(err, "no e-mail provider"));
    s.smtp_url = "http://127.0.0.1:1";
    assert_null(provider_email_open(&s, &configured, err, sizeof(err)));
    assert_true(configured);
    assert_non_null(strstr(err, "smtp://"));
    s.smtp_url = "smtp://127.0.0.1:1";
    email_provider_t *p = provider_email_open(&s, &configured, err, sizeof(err));
    assert_non_null(p);
    assert_string_equal(p->ops->name, "smtp");
    /* nothing listens on port 1: a temporary failure, the message never left */
    provider_email_t m = {.message_uuid = "x",
                          .from = "a@example.com",
                          .to = "b@example.com",
                          .subject = "s",
                          .text = "t"};
    provider_email_result_t r;
    p->ops->send_batch(p, &m, 1, &r);
    assert_int_equal(r.outcome, PROVIDER_TEMPFAIL);
    assert_true(strlen(r.error) > 0);
    /* an unsafe address is refused for good */
    m.to = "b@example.com\r\nBcc: c@example.com";
    p->ops->send_batch(p, &m, 1, &r);
    assert_int_equal(r.outcome, PROVIDER_PERMFAIL);
    provider_email_close(p);
    provider_email_close(NULL);
    assert_null(provider_sms_open(&s, &configured, err, sizeof(err)));
    assert_false(configured);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_configured),
        cmocka_unit_test(test_open),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
