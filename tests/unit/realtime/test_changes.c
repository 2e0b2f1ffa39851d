/* Unit tests for realtime/changes: the postgres_changes filters. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "realtime/changes.h"

static bool match(const char *filter, const char *record)
{
    changes_filter_t f;
    const char *why = NULL;
    if (!changes_filter_parse(filter, &f, &why))
        fail_msg("filter %s: %s", filter, why);
    json_error_t e;
    json_t *r = json_loads(record, 0, &e);
    assert_non_null(r);
    bool ok = changes_filter_match(&f, r);
    json_decref(r);
    changes_filter_free(&f);
    return ok;
}

static void test_filters(void **state)
{
    (void)state;
    assert_true(match("status=eq.active", "{\"status\":\"active\"}"));
    assert_false(match("status=eq.active", "{\"status\":\"draft\"}"));
    assert_false(match("status=eq.active", "{\"other\":\"active\"}"));
    assert_false(match("status=eq.active", "{\"status\":null}"));
    assert_true(match("status=neq.draft", "{\"status\":\"active\"}"));
    assert_false(match("status=neq.draft", "{\"status\":null}")); /* SQL: null <> x is not true */
    assert_true(match("n=eq.42", "{\"n\":42}"));
    assert_true(match("n=eq.42", "{\"n\":42.0}"));
    assert_true(match("n=gt.9", "{\"n\":10}")); /* numeric, not text, comparison */
    assert_false(match("n=lt.9", "{\"n\":10}"));
    assert_true(match("n=lte.10", "{\"n\":10}"));
    assert_true(match("n=gte.10", "{\"n\":10}"));
    assert_false(match("n=gt.abc", "{\"n\":10}"));
    assert_true(match("ok=eq.true", "{\"ok\":true}"));
    assert_false(match("ok=eq.true", "{\"ok\":false}"));
    assert_true(match("d=gt.2024-01-01", "{\"d\":\"2024-06-01T00:00:00+00:00\"}"));
    assert_true(match("type=in.(sms,social)", "{\"type\":\"sms\"}"));
    assert_false(match("type=in.(sms,social)", "{\"type\":\"email\"}"));
    assert_true(match("name=in.(\"a,b\",c)", "{\"name\":\"a,b\"}"));
    assert_true(match("n=in.(1,2,3)", "{\"n\":2}"));
    assert_true(match("id=eq.00000000-0000-0000-0000-000000000001",
                      "{\"id\":\"00000000-0000-0000-0000-000000000001\"}"));
    const char *bad[] = {"",         "status",     "status=eq",    "=eq.x", "status=like.x%",
                         "n=in.1,2", "n=in.(\"a)", "n=in.(\"a\"b)"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        changes_filter_t f;
        const char *why = NULL;
        if (changes_filter_parse(bad[i], &f, &why))
            fail_msg("accepted filter: %s", bad[i]);
        assert_non_null(why);
    }
    assert_int_equal(changes_event_mask("*"), CHANGES_EV_ALL);
    assert_int_equal(changes_event_mask("insert"), CHANGES_EV_INSERT);
    assert_int_equal(changes_event_mask("DELETE"), CHANGES_EV_DELETE);
    assert_int_equal(changes_event_mask("TRUNCATE"), 0);
    assert_int_equal(changes_event_mask(NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_filters),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
