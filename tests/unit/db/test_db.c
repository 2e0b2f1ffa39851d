/* Unit tests for db.c that need no server: the per-connection cache of
 * prepared statements (which statements are prepared, reused, evicted or run
 * unnamed), and db_run's and db_batch_send's answers when there is no
 * connection. The pipelines themselves are exercised against PostgreSQL by
 * every integration test (the batches by realtime-batch.test.js). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "db/db_internal.h"

static struct db_conn conn; /* no PGconn: planning never touches the server */

static int reset(void **state)
{
    (void)state;
    db__cache_clear(&conn);
    conn.next_id = 0;
    return 0;
}

static void plan1(const char *sql, struct db_stmt_plan *plan, unsigned long long *evict,
                  size_t *nevict)
{
    db_stmt_t st = {sql, 0, NULL};
    db__plan_stmts(&conn, &st, 1, plan, evict, nevict);
}

/* Another SQL text that falls into the same cache slot as sql. */
static void colliding(const char *sql, char *out, size_t outlen)
{
    size_t want = db__sql_slot(sql);
    for (unsigned i = 0;; i++) {
        snprintf(out, outlen, "select %u", i);
        if (db__sql_slot(out) == want && strcmp(out, sql) != 0)
            return;
    }
}

static void test_prepare_then_reuse(void **state)
{
    (void)state;
    struct db_stmt_plan plan;
    unsigned long long evict[1];
    size_t nevict = 9;
    plan1("select 1", &plan, evict, &nevict);
    assert_int_equal(plan.how, DB_PLAN_PREPARE);
    assert_int_equal(plan.slot, db__sql_slot("select 1"));
    assert_int_equal(nevict, 0);
    unsigned long long id = plan.id;
    /* until the server accepted the PREPARE, nothing is cached */
    plan1("select 1", &plan, evict, &nevict);
    assert_int_equal(plan.how, DB_PLAN_PREPARE);
    assert_true(plan.id > id);
    id = plan.id;
    db__cache_store(&conn, plan.slot, "select 1");
    plan1("select 1", &plan, evict, &nevict);
    assert_int_equal(plan.how, DB_PLAN_CACHED);
    assert_int_equal(plan.id, id);
    assert_int_equal(nevict, 0);
}

static void test_same_slot_in_one_request(void **state)
{
    (void)state;
    char other[64];
    colliding("select 2", other, sizeof(other));
    db_stmt_t st[3] = {{"select 2", 0, NULL}, {"select 2", 0, NULL}, {other, 0, NULL}};
    struct db_stmt_plan plan[3];
    unsigned long long evict[3];
    size_t nevict;
    db__plan_stmts(&conn, st, 3, plan, evict, &nevict);
    assert_int_equal(plan[0].how, DB_PLAN_PREPARE);
    /* the slot is claimed by the first: the others run unnamed */
    assert_int_equal(plan[1].how, DB_PLAN_UNNAMED);
    assert_int_equal(plan[2].how, DB_PLAN_UNNAMED);
    assert_int_equal(nevict, 0);
}

static void test_eviction(void **state)
{
    (void)state;
    char other[64];
    colliding("select 3", other, sizeof(other));
    struct db_stmt_plan plan;
    unsigned long long evict[1];
    size_t nevict;
    plan1("select 3", &plan, evict, &nevict);
    db__cache_store(&conn, plan.slot, "select 3");
    unsigned long long old = plan.id;
    plan1(other, &plan, evict, &nevict);
    assert_int_equal(plan.how, DB_PLAN_PREPARE);
    assert_int_equal(nevict, 1);
    assert_int_equal(evict[0], old);
    assert_true(plan.id != old);
    /* the evicted text is forgotten at once: it must be prepared again */
    db__cache_store(&conn, plan.slot, other);
    plan1("select 3", &plan, evict, &nevict);
    assert_int_equal(plan.how, DB_PLAN_PREPARE);
    assert_int_equal(nevict, 1);
}

static void test_long_sql_unnamed(void **state)
{
    (void)state;
    size_t n = DB_STMT_MAX_CACHED_SQL + 16;
    char *sql = malloc(n + 1);
    assert_non_null(sql);
    memcpy(sql, "select 1", 8);
    memset(sql + 8, ' ', n - 8);
    sql[n] = '\0';
    struct db_stmt_plan plan;
    unsigned long long evict[1];
    size_t nevict;
    plan1(sql, &plan, evict, &nevict);
    assert_int_equal(plan.how, DB_PLAN_UNNAMED);
    assert_int_equal(nevict, 0);
    assert_int_equal(conn.next_id, 0);
    free(sql);
}

static void test_clear(void **state)
{
    (void)state;
    struct db_stmt_plan plan;
    unsigned long long evict[1];
    size_t nevict;
    plan1("select 4", &plan, evict, &nevict);
    db__cache_store(&conn, plan.slot, "select 4");
    db__cache_clear(&conn);
    assert_null(conn.cache[plan.slot].sql);
    plan1("select 4", &plan, evict, &nevict);
    assert_int_equal(plan.how, DB_PLAN_PREPARE);
    assert_int_equal(nevict, 0); /* a cleared slot has nothing to DEALLOCATE */
}

/* Without a configured database there is no connection: db_run says so
 * itself, with the connection-failure SQLSTATE, and leaves no result. */
static void test_run_without_connection(void **state)
{
    (void)state;
    db_caller_t who = {.role = "anon", .read_only = true};
    db_stmt_t st[2] = {{"select 1", 0, NULL}, {"select 2", 0, NULL}};
    PGresult *res[2] = {(PGresult *)&conn, (PGresult *)&conn};
    db_error_t err;
    assert_int_equal(db_run(&who, st, 2, res, &err), DB_UNAVAILABLE);
    assert_null(res[0]);
    assert_null(res[1]);
    assert_string_equal(err.sqlstate, "08006");
    assert_int_equal(err.failed_stmt, -1);
    assert_int_equal(db_error_http(err.sqlstate, false).kind, DB_ERR_UNAVAILABLE);
}

/* A batch on a connection that is not connected sends nothing: every
 * transaction is unavailable with no result, and a checking connection of its
 * own cannot connect without a configured database. */
static void test_batch_without_connection(void **state)
{
    (void)state;
    db_caller_t who = {.role = "anon", .read_only = true};
    db_stmt_t st[2] = {{"select 1", 0, NULL}, {"select 2", 0, NULL}};
    PGresult *res0[2] = {(PGresult *)&conn, (PGresult *)&conn};
    PGresult *res1[1] = {(PGresult *)&conn};
    db_txn_t txns[2] = {{.who = &who, .stmts = st, .nstmts = 2, .results = res0, .status = DB_OK},
                        {.who = &who, .stmts = st + 1, .nstmts = 1, .results = res1}};
    db_conn_t *c = db_conn_new();
    assert_non_null(c);
    assert_false(db_conn_ready(c));
    assert_null(db_batch_send(c, txns, 2));
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(txns[i].status, DB_UNAVAILABLE);
        assert_int_equal(txns[i].err.failed_stmt, -1);
    }
    assert_null(res0[0]);
    assert_null(res0[1]);
    assert_null(res1[0]);
    db_conn_free(c);
    db_conn_free(NULL);
}

/* A session connection that cannot connect: db_run_session answers
 * unavailable with the connection-failure SQLSTATE and no result, and the
 * session prelude counts as not given, so a later success gives it again. */
static void test_session_without_connection(void **state)
{
    (void)state;
    db_caller_t who = {.role = "service_role", .claims_json = "{\"role\":\"service_role\"}"};
    db_stmt_t st[2] = {{"select 1", 0, NULL}, {"select 2", 0, NULL}};
    PGresult *res[2] = {(PGresult *)&conn, (PGresult *)&conn};
    db_conn_t *c = db_conn_new();
    assert_non_null(c);
    c->session_set = true; /* as if it had run on a connection that then broke */
    db_error_t err;
    assert_int_equal(db_run_session(c, &who, st, 2, res, &err), DB_UNAVAILABLE);
    assert_null(res[0]);
    assert_null(res[1]);
    assert_string_equal(err.sqlstate, "08006");
    assert_int_equal(err.failed_stmt, -1);
    assert_false(c->session_set);
    db_conn_free(c);
}

/* db_session_send on a connection that cannot connect: unavailable like
 * db_run_session, with nothing pending (nothing to finish) and the session
 * prelude counted as not given. */
static void test_session_send_without_connection(void **state)
{
    (void)state;
    db_caller_t who = {.role = "service_role", .claims_json = "{\"role\":\"service_role\"}"};
    db_stmt_t st[1] = {{"select 1", 0, NULL}};
    db_conn_t *c = db_conn_new();
    assert_non_null(c);
    c->session_set = true;
    db_pending_t *pending = (db_pending_t *)&conn;
    db_error_t err;
    assert_int_equal(db_session_send(c, &who, st, 1, &pending, &err), DB_UNAVAILABLE);
    assert_null(pending);
    assert_string_equal(err.sqlstate, "08006");
    assert_int_equal(err.failed_stmt, -1);
    assert_false(c->session_set);
    db_conn_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_prepare_then_reuse, reset),
        cmocka_unit_test_setup(test_same_slot_in_one_request, reset),
        cmocka_unit_test_setup(test_eviction, reset),
        cmocka_unit_test_setup(test_long_sql_unnamed, reset),
        cmocka_unit_test_setup(test_clear, reset),
        cmocka_unit_test(test_run_without_connection),
        cmocka_unit_test(test_batch_without_connection),
        cmocka_unit_test(test_session_without_connection),
        cmocka_unit_test(test_session_send_without_connection),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    db__cache_clear(&conn);
    return rc;
}
