/* Unit tests for src/importer/rest_api.c's pure pieces: how incremental
 * values compare (numbers as numbers, else text). Paging, spooling and the
 * requests are tested against a local API in
 * tests/integration/connectors-http.test.js. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "importer/connectors.h"

static void test_value_cmp(void **state)
{
    (void)state;
    assert_true(conn_value_cmp("10", "9") > 0); /* numbers, not text */
    assert_true(conn_value_cmp("9", "10") < 0);
    assert_true(conn_value_cmp("1.50", "1.5") == 0);
    assert_true(conn_value_cmp("-2", "1") < 0);
    assert_true(conn_value_cmp("2024-01-07T10:00:00Z", "2024-01-05T10:00:00Z") > 0);
    assert_true(conn_value_cmp("2024-01-05", "2024-01-05") == 0);
    assert_true(conn_value_cmp("abc", "abd") < 0);
    assert_true(conn_value_cmp("10", "9a") < 0); /* one is not a number: text */
    assert_true(conn_value_cmp("", "1") < 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_value_cmp),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
