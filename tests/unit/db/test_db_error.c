/* Unit tests for db_error.c: the one SQLSTATE table every module reads
 * (status as PostgREST gives it, and the kind of failure). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "db/db.h"

static void check(const char *sqlstate, bool anon, int status, db_err_kind_t kind)
{
    db_http_error_t e = db_error_http(sqlstate, anon);
    assert_int_equal(e.status, status);
    assert_int_equal(e.kind, kind);
    assert_int_equal(db_sqlstate_http_status(sqlstate, anon), status);
}

static void test_full_codes(void **state)
{
    (void)state;
    check("23505", false, 409, DB_ERR_UNIQUE);
    check("23503", false, 409, DB_ERR_FOREIGN_KEY);
    check("42501", false, 403, DB_ERR_PRIVILEGE);
    check("42501", true, 401, DB_ERR_PRIVILEGE);
    check("57014", false, 504, DB_ERR_TIMEOUT);
    check("25006", false, 405, DB_ERR_READ_ONLY);
    check("P0001", false, 400, DB_ERR_RAISED);
    check("42883", false, 404, DB_ERR_UNDEFINED);
    check("42P01", false, 404, DB_ERR_UNDEFINED);
    check("40001", false, 409, DB_ERR_CONFLICT);
    check("21000", false, 500, DB_ERR_INTERNAL);
}

/* A full code wins over its class: 23505 is not the class 23's 400. */
static void test_classes(void **state)
{
    (void)state;
    check("23502", false, 400, DB_ERR_INVALID_DATA);
    check("23514", false, 400, DB_ERR_INVALID_DATA);
    check("22P02", false, 400, DB_ERR_INVALID_DATA);
    check("42703", false, 400, DB_ERR_QUERY);
    check("08006", false, 503, DB_ERR_UNAVAILABLE);
    check("53200", false, 503, DB_ERR_RESOURCES);
    check("28000", true, 403, DB_ERR_ROLE);
    check("XX000", false, 500, DB_ERR_INTERNAL);
    check("40002", false, 500, DB_ERR_INTERNAL); /* class 40 beyond 40001/40P01 */
    check("ZZ999", false, 400, DB_ERR_QUERY);    /* unknown class */
}

static void test_raised_status(void **state)
{
    (void)state;
    check("PT404", false, 404, DB_ERR_RAISED);
    check("PT418", true, 418, DB_ERR_RAISED);
    check("PT99x", false, 500, DB_ERR_INTERNAL);
    check("PT600", false, 500, DB_ERR_INTERNAL);
    check("PT099", false, 500, DB_ERR_INTERNAL);
}

static void test_malformed(void **state)
{
    (void)state;
    check(NULL, false, 500, DB_ERR_INTERNAL);
    check("", false, 500, DB_ERR_INTERNAL);
    check("bad", false, 500, DB_ERR_INTERNAL);
    check("235050", false, 500, DB_ERR_INTERNAL);
}

/* The status alone, as handlers read it (moved here from the old test_core.c). */
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
        cmocka_unit_test(test_full_codes),    cmocka_unit_test(test_classes),
        cmocka_unit_test(test_raised_status), cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_sqlstate_map),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
