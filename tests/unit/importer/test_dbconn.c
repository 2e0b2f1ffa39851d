/* Unit tests for the database connectors' driver-independent parts
 * (src/importer/dbconn.c): identifier and literal quoting per dialect (the
 * injection attempts included), the SELECT built from a config, incremental
 * WHERE/ORDER BY, the type mapping of PostgreSQL, MySQL and SQL Server column
 * types (checked against the drivers' own headers), the CSV the row-based
 * drivers write (read back by the file reader), and the incremental
 * position kept from the rows. SQL Server is tested only here. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <libpq-fe.h>
#include <mysql.h>
/* clang-format off */
#include <sybfront.h>
#include <sybdb.h>
/* clang-format on */

#include "importer/dbconn.h"
#include "importer/dbconn_keep.h"
#include "importer/importer.h"

static char *build(const imp_db_select_t *sel, char *err, size_t errlen)
{
    cd_buf_t b;
    cd_buf_init(&b, 1 << 20);
    if (!imp_db_build_select(sel, &b, err, errlen)) {
        cd_buf_free(&b);
        return NULL;
    }
    return cd_buf_take(&b);
}

static void expect_sql(const imp_db_select_t *sel, const char *want)
{
    char err[256];
    char *got = build(sel, err, sizeof(err));
    assert_non_null(got);
    assert_string_equal(got, want);
    free(got);
}

static void expect_refused(const imp_db_select_t *sel, const char *msg_part)
{
    char err[256] = "";
    char *got = build(sel, err, sizeof(err));
    assert_null(got);
    assert_non_null(strstr(err, msg_part));
}

static void test_quote_ident(void **state)
{
    (void)state;
    char err[256];
    cd_buf_t b;
    cd_buf_init(&b, 1024);
    assert_true(imp_db_quote_ident(IMP_DB_POSTGRES, "we\"ird", &b, err, sizeof(err)));
    assert_string_equal(cd_buf_str(&b), "\"we\"\"ird\"");
    cd_buf_reset(&b);
    assert_true(imp_db_quote_ident(IMP_DB_MYSQL, "a`; drop table t; --", &b, err, sizeof(err)));
    assert_string_equal(cd_buf_str(&b), "`a``; drop table t; --`");
    cd_buf_reset(&b);
    assert_true(imp_db_quote_ident(IMP_DB_MSSQL, "x]; drop table t", &b, err, sizeof(err)));
    assert_string_equal(cd_buf_str(&b), "[x]]; drop table t]");
    cd_buf_reset(&b);
    assert_false(imp_db_quote_ident(IMP_DB_POSTGRES, "", &b, err, sizeof(err)));
    assert_false(imp_db_quote_ident(IMP_DB_POSTGRES, "a\nb", &b, err, sizeof(err)));
    assert_false(imp_db_quote_ident(IMP_DB_POSTGRES, NULL, &b, err, sizeof(err)));
    char longname[130];
    memset(longname, 'a', sizeof(longname) - 1);
    longname[64] = '\0';
    assert_false(imp_db_quote_ident(IMP_DB_POSTGRES, longname, &b, err, sizeof(err)));
    assert_true(imp_db_quote_ident(IMP_DB_MYSQL, longname + 1, &b, err, sizeof(err)));
    longname[64] = 'a';
    longname[128] = '\0';
    assert_true(imp_db_quote_ident(IMP_DB_MSSQL, longname, &b, err, sizeof(err)));
    cd_buf_free(&b);
}

static void test_quote_literal(void **state)
{
    (void)state;
    cd_buf_t b;
    cd_buf_init(&b, 1024);
    assert_true(imp_db_quote_literal(IMP_DB_POSTGRES, "it's \\ok", &b));
    assert_string_equal(cd_buf_str(&b), "'it''s \\ok'");
    cd_buf_reset(&b);
    assert_true(imp_db_quote_literal(IMP_DB_MYSQL, "x\\' or 1=1 -- ", &b));
    assert_string_equal(cd_buf_str(&b), "'x\\\\'' or 1=1 -- '");
    cd_buf_reset(&b);
    assert_true(imp_db_quote_literal(IMP_DB_MSSQL, "o'brien", &b));
    assert_string_equal(cd_buf_str(&b), "'o''brien'");
    cd_buf_free(&b);
}

static void test_build_table(void **state)
{
    (void)state;
    json_t *cols = json_pack("[s, s]", "id", "E\"mail");
    imp_db_select_t sel = {.dialect = IMP_DB_POSTGRES, .schema = "public", .table = "leads"};
    expect_sql(&sel, "select * from \"public\".\"leads\"");
    sel.columns = cols;
    expect_sql(&sel, "select \"id\", \"E\"\"mail\" from \"public\".\"leads\"");
    sel.inc_column = "updated_at";
    expect_sql(&sel,
               "select \"id\", \"E\"\"mail\" from \"public\".\"leads\" order by \"updated_at\"");
    sel.last_value = "2024-01-01 10:00:00+00";
    expect_sql(&sel, "select \"id\", \"E\"\"mail\" from \"public\".\"leads\" where \"updated_at\" "
                     ">= '2024-01-01 10:00:00+00' order by \"updated_at\"");
    sel.dialect = IMP_DB_MYSQL;
    sel.schema = NULL;
    sel.limit = 200;
    expect_sql(&sel, "select `id`, `E\"mail` from `leads` where `updated_at` >= "
                     "'2024-01-01 10:00:00' order by `updated_at` limit 200");
    sel.dialect = IMP_DB_MSSQL;
    sel.schema = "dbo";
    expect_sql(&sel, "select top (200) [id], [E\"mail] from [dbo].[leads] where [updated_at] >= "
                     "'2024-01-01 10:00:00+00' order by [updated_at]");
    json_decref(cols);
    /* a column name that is not a string */
    json_t *bad = json_pack("[i]", 3);
    imp_db_select_t b2 = {.dialect = IMP_DB_POSTGRES, .table = "t", .columns = bad};
    expect_refused(&b2, "config.columns");
    json_decref(bad);
    imp_db_select_t none = {.dialect = IMP_DB_POSTGRES};
    expect_refused(&none, "needs a table");
}

static void test_build_query(void **state)
{
    (void)state;
    imp_db_select_t sel = {.dialect = IMP_DB_POSTGRES, .query = "select id, email from leads ;\n"};
    expect_sql(&sel, "select * from (select id, email from leads) as q");
    sel.inc_column = "id";
    sel.last_value = "41";
    expect_sql(&sel, "select * from (select id, email from leads) as q where q.\"id\" >= '41' "
                     "order by q.\"id\"");
    /* a second statement cannot ride along */
    sel.query = "select 1; drop table leads";
    expect_refused(&sel, "one SELECT statement");
    sel.query = " ; ";
    expect_refused(&sel, "one SELECT statement");
    /* the last value is a literal, never SQL */
    sel.query = "select * from leads";
    sel.last_value = "0' or '1'='1";
    expect_sql(&sel,
               "select * from (select * from leads) as q where q.\"id\" >= '0'' or ''1''=''1' "
               "order by q.\"id\"");
}

static void test_types(void **state)
{
    (void)state;
    assert_int_equal(imp_db_pg_type(16), IMP_TYPE_BOOLEAN);
    assert_int_equal(imp_db_pg_type(23), IMP_TYPE_INTEGER);
    assert_int_equal(imp_db_pg_type(20), IMP_TYPE_NUMBER);
    assert_int_equal(imp_db_pg_type(1700), IMP_TYPE_NUMBER);
    assert_int_equal(imp_db_pg_type(1082), IMP_TYPE_DATE);
    assert_int_equal(imp_db_pg_type(1184), IMP_TYPE_TIMESTAMP);
    assert_int_equal(imp_db_pg_type(3802), IMP_TYPE_TEXT); /* jsonb as text */
    assert_int_equal(imp_db_pg_type(25), IMP_TYPE_TEXT);

    assert_int_equal(imp_db_mysql_type(MYSQL_TYPE_TINY, 1, 0), IMP_TYPE_BOOLEAN);
    assert_int_equal(imp_db_mysql_type(MYSQL_TYPE_TINY, 4, 0), IMP_TYPE_INTEGER);
    assert_int_equal(imp_db_mysql_type(MYSQL_TYPE_LONG, 11, 0), IMP_TYPE_INTEGER);
    assert_int_equal(imp_db_mysql_type(MYSQL_TYPE_LONG, 10, UNSIGNED_FLAG), IMP_TYPE_NUMBER);
    assert_int_equal(imp_db_mysql_type(MYSQL_TYPE_LONGLONG, 20, 0), IMP_TYPE_NUMBER);
    assert_int_equal(imp_db_mysql_type(MYSQL_TYPE_NEWDECIMAL, 10, 0), IMP_TYPE_NUMBER);
    assert_int_equal(imp_db_mysql_type(MYSQL_TYPE_DOUBLE, 22, 0), IMP_TYPE_NUMBER);
    assert_int_equal(imp_db_mysql_type(MYSQL_TYPE_DATE, 10, 0), IMP_TYPE_DATE);
    assert_int_equal(imp_db_mysql_type(MYSQL_TYPE_DATETIME, 19, 0), IMP_TYPE_TIMESTAMP);
    assert_int_equal(imp_db_mysql_type(MYSQL_TYPE_TIMESTAMP, 19, 0), IMP_TYPE_TIMESTAMP);
    assert_int_equal(imp_db_mysql_type(MYSQL_TYPE_JSON, 0, 0), IMP_TYPE_TEXT);
    assert_int_equal(imp_db_mysql_type(MYSQL_TYPE_VAR_STRING, 255, 0), IMP_TYPE_TEXT);

    assert_int_equal(imp_db_mssql_type(SYBBIT), IMP_TYPE_BOOLEAN);
    assert_int_equal(imp_db_mssql_type(SYBINT1), IMP_TYPE_INTEGER);
    assert_int_equal(imp_db_mssql_type(SYBINT2), IMP_TYPE_INTEGER);
    assert_int_equal(imp_db_mssql_type(SYBINT4), IMP_TYPE_INTEGER);
    assert_int_equal(imp_db_mssql_type(SYBINT8), IMP_TYPE_NUMBER);
    assert_int_equal(imp_db_mssql_type(SYBFLT8), IMP_TYPE_NUMBER);
    assert_int_equal(imp_db_mssql_type(SYBREAL), IMP_TYPE_NUMBER);
    assert_int_equal(imp_db_mssql_type(SYBMONEY), IMP_TYPE_NUMBER);
    assert_int_equal(imp_db_mssql_type(SYBMONEY4), IMP_TYPE_NUMBER);
    assert_int_equal(imp_db_mssql_type(SYBDECIMAL), IMP_TYPE_NUMBER);
    assert_int_equal(imp_db_mssql_type(SYBNUMERIC), IMP_TYPE_NUMBER);
    assert_int_equal(imp_db_mssql_type(SYBMSDATE), IMP_TYPE_DATE);
    assert_int_equal(imp_db_mssql_type(SYBDATETIME), IMP_TYPE_TIMESTAMP);
    assert_int_equal(imp_db_mssql_type(SYBDATETIME4), IMP_TYPE_TIMESTAMP);
    assert_int_equal(imp_db_mssql_type(SYBMSDATETIME2), IMP_TYPE_TIMESTAMP);
    assert_int_equal(imp_db_mssql_type(SYBMSDATETIMEOFFSET), IMP_TYPE_TIMESTAMP);
    assert_int_equal(imp_db_mssql_type(SYBVARCHAR), IMP_TYPE_TEXT);
    assert_int_equal(imp_db_mssql_type(SYBTEXT), IMP_TYPE_TEXT);
}

static void test_mysql_last_value(void **state)
{
    (void)state;
    char out[64];
    imp_db_mysql_last_value("2024-03-01 10:00:00+00", out, sizeof(out));
    assert_string_equal(out, "2024-03-01 10:00:00");
    imp_db_mysql_last_value("2024-03-01 10:00:00.123456+00", out, sizeof(out));
    assert_string_equal(out, "2024-03-01 10:00:00.123456");
    imp_db_mysql_last_value("12345+00", out, sizeof(out)); /* not a date-time */
    assert_string_equal(out, "12345+00");
    imp_db_mysql_last_value("42", out, sizeof(out));
    assert_string_equal(out, "42");
}

/* What the row-based drivers write reads back cell for cell. */
static void test_csv_roundtrip(void **state)
{
    (void)state;
    const char *cells[] = {"id", "note", "1", "say \"hi\",\nthen go", "2", ""};
    cd_buf_t b;
    cd_buf_init(&b, 4096);
    for (size_t i = 0; i < 6; i++)
        assert_true(imp_db_csv_field(&b, cells[i], strlen(cells[i]), i % 2 == 1));
    imp_parse_opts_t o;
    imp_parse_opts_init(&o);
    o.delimiter = ',';
    o.encoding = IMP_ENC_UTF8;
    imp_error_t err = {0};
    imp_reader_t *r = imp_reader_open_mem(b.data, b.len, IMP_FORMAT_CSV, &o, &err);
    assert_non_null(r);
    size_t n = 0;
    const imp_cell_t *h = imp_reader_header(r, &n);
    assert_int_equal(n, 2);
    assert_string_equal(h[1].data, "note");
    imp_row_t row;
    for (size_t k = 1; k <= 2; k++) {
        assert_int_equal(imp_reader_next(r, &row, &err), 1);
        assert_int_equal(row.ncells, 2);
        assert_string_equal(row.cells[0].data, cells[2 * k]);
        assert_string_equal(row.cells[1].data, cells[2 * k + 1]);
    }
    assert_int_equal(imp_reader_next(r, &row, &err), 0);
    imp_reader_close(r);
    cd_buf_free(&b);
}

/* The incremental position is the last non-empty value of the column. */
static void test_note_row(void **state)
{
    (void)state;
    import_db_t db;
    memset(&db, 0, sizeof(db));
    db.inc_index = 1;
    imp_cell_t c1[2] = {{"a", 1}, {"2024-01-01", 10}};
    imp_cell_t c2[2] = {{"b", 1}, {"", 0}};
    imp_cell_t c3[2] = {{"c", 1}, {"2024-01-02 10:00:00+00", 22}};
    imp_cell_t c4[2] = {{"d", 1}, {"9", 1}};
    imp_row_t r1 = {.cells = c1, .ncells = 2}, r2 = {.cells = c2, .ncells = 2},
              r3 = {.cells = c3, .ncells = 2}, r4 = {.cells = c4, .ncells = 2},
              shortrow = {.cells = c1, .ncells = 1};
    import__db_note_row(&db, &r1);
    assert_string_equal(db.max_value, "2024-01-01");
    import__db_note_row(&db, &r2);
    assert_string_equal(db.max_value, "2024-01-01");
    import__db_note_row(&db, &r3);
    assert_string_equal(db.max_value, "2024-01-02 10:00:00+00");
    import__db_note_row(&db, &r4);
    assert_string_equal(db.max_value, "9");
    import__db_note_row(&db, &shortrow);
    assert_string_equal(db.max_value, "9");
    free(db.max_value);
}

static void test_type_proposal(void **state)
{
    (void)state;
    import_db_t db;
    memset(&db, 0, sizeof(db));
    imp_type_t types[3] = {IMP_TYPE_INTEGER, IMP_TYPE_TEXT, IMP_TYPE_TIMESTAMP};
    db.types = types;
    db.ncols = 3;
    imp_cell_t h[3] = {{"id", 2}, {"Email", 5}, {"updated_at", 10}};
    json_t *p = imp_propose_config(h, 3, NULL);
    assert_non_null(p);
    import__db_type_proposal(&db, p);
    json_t *cols = json_object_get(p, "columns");
    assert_string_equal(json_string_value(json_object_get(json_array_get(cols, 0), "type")),
                        "integer");
    assert_string_equal(json_string_value(json_object_get(json_array_get(cols, 1), "type")),
                        "text");
    assert_string_equal(json_string_value(json_object_get(json_array_get(cols, 2), "type")),
                        "timestamp");
    json_decref(p);
}

static void test_is_database(void **state)
{
    (void)state;
    assert_true(import__is_database("postgres"));
    assert_true(import__is_database("redshift"));
    assert_true(import__is_database("mysql"));
    assert_true(import__is_database("mssql"));
    assert_true(import__is_database("custom_database"));
    assert_false(import__is_database("csv_url"));
    assert_false(import__is_database("rest_api"));
    assert_false(import__is_database(NULL));
}

/* importer_close_kept (shutdown): every kept session closed with PQfinish
 * (ASan reports a connection left open as a leak), none left for a take. */
static void test_close_kept(void **state)
{
    (void)state;
    import_db_target_t t;
    memset(&t, 0, sizeof(t));
    snprintf(t.host, sizeof(t.host), "db.example.com");
    imp_db_keep_key_t key;
    imp_db_keep_key(&t, key);
    /* a connection object that never reaches a server */
    PGconn *a = PQconnectStart("host=/nonexistent-campaignd-test port=1 connect_timeout=1");
    PGconn *b = PQconnectStart("host=/nonexistent-campaignd-test port=1 connect_timeout=1");
    assert_non_null(a);
    assert_non_null(b);
    imp_db_keep_put("11111111-1111-4111-8111-111111111111", key, a, 1000, NULL);
    imp_db_keep_put("22222222-2222-4222-8222-222222222222", key, b, 1000, NULL);
    assert_int_equal(importer_close_kept(), 2);
    assert_int_equal(importer_close_kept(), 0);
    assert_null(imp_db_keep_take("11111111-1111-4111-8111-111111111111", key, 60, 1000, NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quote_ident),   cmocka_unit_test(test_quote_literal),
        cmocka_unit_test(test_build_table),   cmocka_unit_test(test_build_query),
        cmocka_unit_test(test_types),         cmocka_unit_test(test_mysql_last_value),
        cmocka_unit_test(test_csv_roundtrip), cmocka_unit_test(test_note_row),
        cmocka_unit_test(test_type_proposal), cmocka_unit_test(test_is_database),
        cmocka_unit_test(test_close_kept),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
