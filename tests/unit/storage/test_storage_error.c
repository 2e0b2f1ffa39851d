/* Unit tests for storage_error.c: how a failed database call becomes a
 * Storage error (storage__err_from_db, read from db/'s SQLSTATE table) and
 * how that error becomes a storage_status_t for the C API. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "storage/storage_internal.h"

static storage_err_t from_sql(const char *sqlstate, const char *message, const char *missing_fk)
{
    db_error_t err = {0};
    snprintf(err.sqlstate, sizeof(err.sqlstate), "%s", sqlstate);
    snprintf(err.message, sizeof(err.message), "%s", message);
    storage_err_t e = {0};
    storage__err_from_db(&e, DB_SQL_ERROR, &err, missing_fk);
    return e;
}

static void test_unavailable(void **state)
{
    (void)state;
    storage_err_t e = {0};
    storage__err_from_db(&e, DB_UNAVAILABLE, NULL, NULL);
    assert_string_equal(e.status_code, "503");
    assert_string_equal(e.code, "DatabaseUnavailable");
    assert_int_equal(storage__err_status(&e), STORAGE_ERR_UNAVAILABLE);
    /* db_run's own report of a missing connection reads the same */
    db_error_t err = {0};
    snprintf(err.sqlstate, sizeof(err.sqlstate), "08006");
    storage__err_from_db(&e, DB_UNAVAILABLE, &err, NULL);
    assert_string_equal(e.status_code, "503");
}

static void test_row_level_security(void **state)
{
    (void)state;
    storage_err_t e =
        from_sql("42501", "new row violates row-level security policy for table \"objects\"", NULL);
    assert_string_equal(e.status_code, "403");
    assert_string_equal(e.code, "AccessDenied");
    assert_string_equal(e.message,
                        "new row violates row-level security policy for table \"objects\"");
    assert_int_equal(storage__err_status(&e), STORAGE_ERR_DENIED);
    e = from_sql("42501", "", NULL);
    assert_string_equal(e.message, "new row violates row-level security policy");
}

static void test_duplicates(void **state)
{
    (void)state;
    storage_err_t e = from_sql("23505",
                               "duplicate key value violates unique constraint "
                               "\"buckets_pkey\"",
                               NULL);
    assert_string_equal(e.status_code, "409");
    assert_string_equal(e.code, "BucketAlreadyExists");
    e = from_sql("23505", "duplicate key value violates unique constraint \"bucketid_objname\"",
                 NULL);
    assert_string_equal(e.code, "KeyAlreadyExists");
    assert_int_equal(storage__err_status(&e), STORAGE_ERR_EXISTS);
}

static void test_foreign_keys(void **state)
{
    (void)state;
    storage_err_t e = from_sql("23503", "insert or update violates foreign key", "bucket");
    assert_string_equal(e.status_code, "404");
    assert_string_equal(e.code, "NoSuchBucket");
    assert_int_equal(storage__err_status(&e), STORAGE_ERR_NO_BUCKET);
    e = from_sql("23503", "update or delete violates foreign key", "not_empty");
    assert_string_equal(e.status_code, "409");
    assert_string_equal(e.error, "Bucket not empty");
    assert_int_equal(storage__err_status(&e), STORAGE_ERR_EXISTS);
}

static void test_invalid_data(void **state)
{
    (void)state;
    storage_err_t e = from_sql("22P02", "invalid input syntax for type uuid", NULL);
    assert_string_equal(e.status_code, "400");
    assert_string_equal(e.code, "InvalidRequest");
    assert_string_equal(e.message, "invalid input syntax for type uuid");
    assert_int_equal(storage__err_status(&e), STORAGE_ERR_INVALID);
    e = from_sql("23514", "new row violates check constraint", NULL);
    assert_string_equal(e.status_code, "400");
}

/* Storage's SQL is fixed: a bad query, a raised exception, a missing table
 * or a timeout is the server's fault, never shown as the client's. */
static void test_server_faults(void **state)
{
    (void)state;
    static const char *const codes[] = {"42703", "42P01", "42883", "P0001", "XX000",
                                        "53200", "40001", "25006", "bad"};
    for (size_t i = 0; i < CD_ARRAY_LEN(codes); i++) {
        storage_err_t e = from_sql(codes[i], "secret internals", NULL);
        assert_string_equal(e.status_code, "500");
        assert_string_equal(e.code, "InternalError");
        assert_string_equal(e.message, "Internal Server Error");
        assert_int_equal(storage__err_status(&e), STORAGE_ERR_INTERNAL);
    }
    storage_err_t e = from_sql("57014", "canceling statement due to statement timeout", NULL);
    assert_string_equal(e.status_code, "500");
    assert_string_equal(e.code, "DatabaseTimeout");
}

static void test_no_error(void **state)
{
    (void)state;
    storage_err_t e = {0};
    assert_int_equal(storage__err_status(&e), STORAGE_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unavailable),  cmocka_unit_test(test_row_level_security),
        cmocka_unit_test(test_duplicates),   cmocka_unit_test(test_foreign_keys),
        cmocka_unit_test(test_invalid_data), cmocka_unit_test(test_server_faults),
        cmocka_unit_test(test_no_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
