/* Unit tests for the idle source connections kept between database syncs
 * (src/importer/dbconn_keep.c): the key changes with every field of the
 * target (a changed password or host never gets the old session), a kept
 * connection is handed back only to its source, under its key and within
 * its time, and everything else is closed, never leaked. Connections are
 * stand-in pointers; close_fn counts what is closed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "importer/dbconn_keep.h"

static int closed;
static void *last_closed;

static void count_close(void *conn)
{
    closed++;
    last_closed = conn;
}

static int setup(void **state)
{
    (void)state;
    (void)imp_db_keep_clear(NULL);
    closed = 0;
    last_closed = NULL;
    return 0;
}

static import_db_target_t target(void)
{
    import_db_target_t t = {.port = 5432, .connect_timeout_s = 15, .statement_timeout_s = 3600};
    snprintf(t.host, sizeof(t.host), "db.example.com");
    snprintf(t.address, sizeof(t.address), "192.0.2.10");
    snprintf(t.database, sizeof(t.database), "crm");
    snprintf(t.user, sizeof(t.user), "reader");
    snprintf(t.password, sizeof(t.password), "pw-1");
    snprintf(t.sslmode, sizeof(t.sslmode), "prefer");
    return t;
}

static void test_key_covers_every_field(void **state)
{
    (void)state;
    import_db_target_t a = target();
    imp_db_keep_key_t base, k;
    imp_db_keep_key(&a, base);
    assert_int_equal(strlen(base), CD_SHA256_HEX_LEN);
    assert_null(strstr(base, "pw-1"));
    imp_db_keep_key(&a, k);
    assert_string_equal(base, k); /* the same target, the same key */

    import_db_target_t b = a;
    snprintf(b.password, sizeof(b.password), "pw-2");
    imp_db_keep_key(&b, k);
    assert_string_not_equal(base, k);
    b = a;
    snprintf(b.user, sizeof(b.user), "writer");
    imp_db_keep_key(&b, k);
    assert_string_not_equal(base, k);
    b = a;
    snprintf(b.address, sizeof(b.address), "192.0.2.11"); /* DNS now answers elsewhere */
    imp_db_keep_key(&b, k);
    assert_string_not_equal(base, k);
    b = a;
    snprintf(b.host, sizeof(b.host), "other.example.com");
    imp_db_keep_key(&b, k);
    assert_string_not_equal(base, k);
    b = a;
    snprintf(b.database, sizeof(b.database), "crm2");
    imp_db_keep_key(&b, k);
    assert_string_not_equal(base, k);
    b = a;
    snprintf(b.sslmode, sizeof(b.sslmode), "require");
    imp_db_keep_key(&b, k);
    assert_string_not_equal(base, k);
    b = a;
    b.port = 5433;
    imp_db_keep_key(&b, k);
    assert_string_not_equal(base, k);
    b = a;
    b.statement_timeout_s = 60;
    imp_db_keep_key(&b, k);
    assert_string_not_equal(base, k);
    /* field boundaries count: "ab"+"c" is not "a"+"bc" */
    b = a;
    snprintf(b.database, sizeof(b.database), "crmr");
    snprintf(b.user, sizeof(b.user), "eader");
    imp_db_keep_key(&b, k);
    assert_string_not_equal(base, k);
}

static void test_take_returns_own_connection_once(void **state)
{
    (void)state;
    import_db_target_t t = target();
    imp_db_keep_key_t key;
    imp_db_keep_key(&t, key);
    int conn = 0;
    imp_db_keep_put("src-1", key, &conn, 1000, count_close);
    assert_null(imp_db_keep_take("src-2", key, 60, 2000, count_close)); /* another source */
    assert_int_equal(closed, 0);
    assert_ptr_equal(imp_db_keep_take("src-1", key, 60, 2000, count_close), &conn);
    assert_null(imp_db_keep_take("src-1", key, 60, 2000, count_close)); /* handed out once */
    assert_int_equal(closed, 0);
    assert_int_equal(imp_db_keep_clear(count_close), 0);
}

static void test_changed_target_closes(void **state)
{
    (void)state;
    import_db_target_t t = target();
    imp_db_keep_key_t key, other;
    imp_db_keep_key(&t, key);
    snprintf(t.password, sizeof(t.password), "rotated");
    imp_db_keep_key(&t, other);
    int conn = 0;
    imp_db_keep_put("src-1", key, &conn, 1000, count_close);
    assert_null(imp_db_keep_take("src-1", other, 60, 1500, count_close));
    assert_int_equal(closed, 1);
    assert_ptr_equal(last_closed, &conn);
    assert_int_equal(imp_db_keep_clear(count_close), 0);
}

static void test_expired_closes(void **state)
{
    (void)state;
    import_db_target_t t = target();
    imp_db_keep_key_t key;
    imp_db_keep_key(&t, key);
    int a = 0, b = 0;
    imp_db_keep_put("src-1", key, &a, 1000, count_close);
    imp_db_keep_put("src-2", key, &b, 1000, count_close);
    /* 60 s later exactly: still good; a take for src-2 after that closes src-1's too */
    assert_ptr_equal(imp_db_keep_take("src-1", key, 60, 61000, count_close), &a);
    imp_db_keep_put("src-1", key, &a, 61000, count_close);
    assert_null(imp_db_keep_take("src-2", key, 60, 61001, count_close));
    assert_int_equal(closed, 1);
    assert_ptr_equal(last_closed, &b);
    assert_null(imp_db_keep_take("src-1", key, 0, 61002, count_close)); /* keeping turned off */
    assert_int_equal(closed, 2);
    assert_int_equal(imp_db_keep_clear(count_close), 0);
}

static void test_put_replaces_and_evicts_oldest(void **state)
{
    (void)state;
    import_db_target_t t = target();
    imp_db_keep_key_t key;
    imp_db_keep_key(&t, key);
    int conns[IMP_DB_KEEP_SLOTS + 2];
    char id[16];
    for (int i = 0; i < IMP_DB_KEEP_SLOTS; i++) {
        snprintf(id, sizeof(id), "src-%d", i);
        imp_db_keep_put(id, key, &conns[i], 1000 + i, count_close);
    }
    assert_int_equal(closed, 0);
    /* a second connection of src-3 replaces its first */
    imp_db_keep_put("src-3", key, &conns[IMP_DB_KEEP_SLOTS], 2000, count_close);
    assert_int_equal(closed, 1);
    assert_ptr_equal(last_closed, &conns[3]);
    /* a full table: the oldest (src-0) goes */
    imp_db_keep_put("src-new", key, &conns[IMP_DB_KEEP_SLOTS + 1], 2001, count_close);
    assert_int_equal(closed, 2);
    assert_ptr_equal(last_closed, &conns[0]);
    assert_int_equal(imp_db_keep_clear(count_close), IMP_DB_KEEP_SLOTS);
    assert_int_equal(closed, 2 + IMP_DB_KEEP_SLOTS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_key_covers_every_field, setup),
        cmocka_unit_test_setup(test_take_returns_own_connection_once, setup),
        cmocka_unit_test_setup(test_changed_target_closes, setup),
        cmocka_unit_test_setup(test_expired_closes, setup),
        cmocka_unit_test_setup(test_put_replaces_and_evicts_oldest, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
