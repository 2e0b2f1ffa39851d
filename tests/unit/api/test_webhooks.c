/* Unit tests for api/webhooks.c: the URL a Twilio signature covers. The
 * handlers themselves are exercised through the real server by
 * tests/integration/providers.test.js (signatures, replays, regressions). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "api/webhooks.h"

static void test_twilio_url(void **state)
{
    (void)state;
    char out[64];
    assert_true(webhooks_twilio_url("https://api.example.com", "/webhooks/twilio/status?m=1", out,
                                    sizeof(out)));
    assert_string_equal(out, "https://api.example.com/webhooks/twilio/status?m=1");
    /* a base with a path prefix (behind a proxy) keeps it */
    assert_true(
        webhooks_twilio_url("https://x.test/cd", "/webhooks/twilio/inbound", out, sizeof(out)));
    assert_string_equal(out, "https://x.test/cd/webhooks/twilio/inbound");
    char small[16];
    assert_false(webhooks_twilio_url("https://api.example.com", "/webhooks", small, sizeof(small)));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_twilio_url),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
