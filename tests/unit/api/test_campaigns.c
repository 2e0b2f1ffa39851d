/* Unit tests for api/campaigns: the campaign enums and the status transition table. */
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
 * exactly when it is in this list (the state machine of docs/api.md; sending,
 * sent, active, completed and failed are the delivery work's, issue 9). */
static void test_transition_matrix(void **state)
{
    (void)state;
    static const char *const statuses[] = {"draft",  "scheduled", "active",    "sending", "sent",
                                           "paused", "completed", "cancelled", "failed"};
    static const char *const allowed[] = {
        "draft>scheduled", "draft>cancelled",   "scheduled>paused", "scheduled>cancelled",
        "sending>paused",  "sending>cancelled", "paused>scheduled", "paused>cancelled",
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
    assert_string_equal(out, "scheduled, cancelled");
    api__campaign_allowed_targets("scheduled", out, sizeof(out));
    assert_string_equal(out, "paused, cancelled");
    api__campaign_allowed_targets("sent", out, sizeof(out));
    assert_string_equal(out, "none");
    api__campaign_allowed_targets("cancelled", out, sizeof(out));
    assert_string_equal(out, "none");
    api__campaign_sources_literal("cancelled", out, sizeof(out));
    assert_string_equal(out, "{draft,scheduled,sending,paused}");
    api__campaign_sources_literal("scheduled", out, sizeof(out));
    assert_string_equal(out, "{draft,paused}");
    api__campaign_sources_literal("sent", out, sizeof(out));
    assert_string_equal(out, "{}");
    api__campaign_sources_literal("sending", out, sizeof(out));
    assert_string_equal(out, "{}");
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_campaign_enums),
        cmocka_unit_test(test_transition_matrix),
        cmocka_unit_test(test_transition_texts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
