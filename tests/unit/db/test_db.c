/* Unit tests for db/db: the SQLSTATE to HTTP status table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "db/db.h"

static void test_sqlstate_map(void **state)
{
    (void)state;
    assert_int_equal(db_sqlstate_http_status("23505", false), 409);
    assert_int_equal(db_sqlstate_http_status("23503", false), 409);
    assert_int_equal(db_sqlstate_http_status("23502", false), 400);
    assert_int_equal(db_sqlstate_http_status("42501", true), 401);
    assert_int_equal(db_sqlstate_http_status("42501", false), 403);
    assert_int_equal(db_sqlstate_http_status("22P02", false), 400);
    assert_int_equal(db_sqlstate_http_status("P0001", false), 400);
    assert_int_equal(db_sqlstate_http_status("42883", false), 404);
    assert_int_equal(db_sqlstate_http_status("42P01", false), 404);
    assert_int_equal(db_sqlstate_http_status("57014", false), 504);
    assert_int_equal(db_sqlstate_http_status("08006", false), 503);
    assert_int_equal(db_sqlstate_http_status("25006", false), 405);
    assert_int_equal(db_sqlstate_http_status("PT404", false), 404);
    assert_int_equal(db_sqlstate_http_status("PT99x", false), 500);
    assert_int_equal(db_sqlstate_http_status("XX000", false), 500);
    assert_int_equal(db_sqlstate_http_status("bad", false), 500);
    assert_int_equal(db_sqlstate_http_status(NULL, false), 500);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sqlstate_map),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
