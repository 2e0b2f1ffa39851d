/* Unit tests for api/provider_settings.c: an admin's stored value wins over the
 * environment's, an empty or missing one does not, and unset values are ""
 * (never NULL) for the providers. Reading the values from the database is
 * tested by tests/sql/039_provider_settings.sql and, end to end, by
 * tests/integration/send-settings.test.js. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "api/provider_settings.h"

static config_t env(void)
{
    config_t c;
    memset(&c, 0, sizeof(c));
    c.email_provider = (char *)"smtp";
    c.smtp_url = (char *)"smtp://env:secret@127.0.0.1:2525";
    c.email_from = (char *)"env@example.org";
    c.sendgrid_api_key = (char *)"SG.env";
    c.sendgrid_api_base = (char *)"https://api.sendgrid.com";
    c.twilio_account_sid = (char *)"ACenv";
    c.twilio_auth_token = (char *)"env-token";
    c.twilio_from = (char *)"+15550000000";
    c.twilio_api_base = (char *)"https://api.twilio.com";
    return c;
}

static void test_environment_only(void **state)
{
    (void)state;
    config_t c = env();
    provider_config_t s;
    memset(&s, 0, sizeof(s));
    provider_config_merge(&c, &s);
    assert_string_equal(s.ps.email_provider, "smtp");
    assert_string_equal(s.ps.smtp_url, "smtp://env:secret@127.0.0.1:2525");
    assert_string_equal(s.email_from, "env@example.org");
    assert_string_equal(s.ps.twilio_auth_token, "env-token");
    assert_string_equal(s.twilio_from, "+15550000000");
    assert_int_equal(s.ps.timeout_seconds, 30);
}

static void test_stored_wins(void **state)
{
    (void)state;
    config_t c = env();
    provider_config_t s;
    memset(&s, 0, sizeof(s));
    static const char *const stored[PCFG_COUNT] = {
        "sendgrid",           "smtp://admin@127.0.0.1:2626",
        "admin@example.org",  "SG.admin",
        "http://127.0.0.1:9", "ACadmin",
        "admin-token",        "+15551111111",
        "http://127.0.0.1:8"};
    for (int i = 0; i < PCFG_COUNT; i++)
        s.stored[i] = strdup(stored[i]);
    provider_config_merge(&c, &s);
    assert_string_equal(s.ps.email_provider, "sendgrid");
    assert_string_equal(s.ps.smtp_url, "smtp://admin@127.0.0.1:2626");
    assert_string_equal(s.email_from, "admin@example.org");
    assert_string_equal(s.ps.sendgrid_api_key, "SG.admin");
    assert_string_equal(s.ps.sendgrid_api_base, "http://127.0.0.1:9");
    assert_string_equal(s.ps.twilio_account_sid, "ACadmin");
    assert_string_equal(s.ps.twilio_auth_token, "admin-token");
    assert_string_equal(s.twilio_from, "+15551111111");
    assert_string_equal(s.ps.twilio_api_base, "http://127.0.0.1:8");
    provider_config_free(&s);
    for (int i = 0; i < PCFG_COUNT; i++)
        assert_null(s.stored[i]);
}

static void test_empty_stored_and_unset_env(void **state)
{
    (void)state;
    config_t c;
    memset(&c, 0, sizeof(c)); /* nothing in the environment */
    provider_config_t s;
    memset(&s, 0, sizeof(s));
    s.stored[PCFG_SMTP_URL] = strdup("");             /* empty: not a value */
    s.stored[PCFG_TWILIO_AUTH_TOKEN] = strdup("tok"); /* only this one */
    provider_config_merge(&c, &s);
    assert_string_equal(s.ps.smtp_url, "");
    assert_string_equal(s.ps.email_provider, "");
    assert_string_equal(s.email_from, "");
    assert_string_equal(s.ps.twilio_auth_token, "tok");
    assert_string_equal(s.ps.twilio_account_sid, "");
    provider_config_free(&s);

    config_t e = env();
    memset(&s, 0, sizeof(s));
    s.stored[PCFG_SMTP_URL] = strdup("");
    provider_config_merge(&e, &s);
    assert_string_equal(s.ps.smtp_url, "smtp://env:secret@127.0.0.1:2525");
    provider_config_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_environment_only),
        cmocka_unit_test(test_stored_wins),
        cmocka_unit_test(test_empty_stored_and_unset_env),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
