/* Unit tests for http/body: JSON request bodies (shape, duplicates, nesting limit). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "http/body.h"

static void test_body_json(void **state)
{
    (void)state;
    json_t *j;
    char err[256];
    assert_true(body_parse_json("{\"a\":1}", 7, BODY_JSON_OBJECT, &j, err, sizeof(err)));
    assert_true(json_is_object(j));
    json_decref(j);
    assert_true(body_parse_json("  ", 2, BODY_JSON_OBJECT | BODY_JSON_EMPTY, &j, err, sizeof(err)));
    assert_true(json_is_object(j));
    json_decref(j);
    assert_false(body_parse_json("", 0, BODY_JSON_OBJECT, &j, err, sizeof(err)));
    assert_non_null(strstr(err, "empty"));
    assert_false(body_parse_json("[1]", 3, BODY_JSON_OBJECT, &j, err, sizeof(err)));
    assert_non_null(strstr(err, "object"));
    assert_false(body_parse_json("{\"a\":", 5, BODY_JSON_OBJECT, &j, err, sizeof(err)));
    assert_non_null(strstr(err, "not valid JSON"));
    assert_false(body_parse_json("{\"a\":1,\"a\":2}", 13, BODY_JSON_OBJECT, &j, err, sizeof(err)));
    assert_false(
        body_parse_json("\"s\"", 3, BODY_JSON_OBJECT | BODY_JSON_ARRAY, &j, err, sizeof(err)));
    /* nesting limit */
    char deep[200];
    size_t n = 0;
    for (int i = 0; i < 40; i++)
        deep[n++] = '[';
    for (int i = 0; i < 40; i++)
        deep[n++] = ']';
    assert_false(body_parse_json(deep, n, BODY_JSON_ARRAY, &j, err, sizeof(err)));
    assert_non_null(strstr(err, "deeper"));
    n = 0;
    for (int i = 0; i < 10; i++)
        deep[n++] = '[';
    for (int i = 0; i < 10; i++)
        deep[n++] = ']';
    assert_true(body_parse_json(deep, n, BODY_JSON_ARRAY, &j, err, sizeof(err)));
    json_decref(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_body_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
