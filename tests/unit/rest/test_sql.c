/*
 * Unit tests of the /rest/v1 SQL builder (src/rest/sql.c) and of the schema cache it reads
 * (src/rest/schema.c), over a schema cache built by hand from a small catalog document: the
 * exact SQL of representative requests, identifiers always quoted, request values only ever
 * as $n parameters, and unknown or hostile names and casts refused with PostgREST's errors.
 * No database is involved.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "rest/rest_internal.h"

/* Two tables with a foreign key, a junction for many-to-many, a self reference, a view that
 * shows a table's columns, two functions, and a column whose name needs quoting. */
static const char CATALOG[] =
    "{\"tables\":["
    "{\"name\":\"clients\",\"kind\":\"r\",\"ins\":true,\"upd\":true,\"del\":true,"
    " \"cols\":["
    "  {\"name\":\"id\",\"type\":\"integer\",\"base\":\"int4\",\"cat\":\"N\",\"null\":false,"
    "   \"def\":\"nextval('clients_id_seq'::regclass)\",\"gen\":false,\"maxlen\":0},"
    "  {\"name\":\"name\",\"type\":\"text\",\"base\":\"text\",\"cat\":\"S\",\"null\":false,"
    "   \"gen\":false,\"maxlen\":0},"
    "  {\"name\":\"we\\\"ird\",\"type\":\"text\",\"base\":\"text\",\"cat\":\"S\",\"null\":true,"
    "   \"gen\":false,\"maxlen\":0}],"
    " \"pk\":[\"id\"],\"uniq\":[[\"id\"]]},"
    "{\"name\":\"projects\",\"kind\":\"r\",\"ins\":true,\"upd\":true,\"del\":true,"
    " \"cols\":["
    "  {\"name\":\"id\",\"type\":\"integer\",\"base\":\"int4\",\"cat\":\"N\",\"null\":false},"
    "  {\"name\":\"client_id\",\"type\":\"integer\",\"base\":\"int4\",\"cat\":\"N\","
    "   \"null\":true},"
    "  {\"name\":\"meta\",\"type\":\"jsonb\",\"base\":\"jsonb\",\"cat\":\"U\",\"null\":true,"
    "   \"def\":\"'{}'::jsonb\"},"
    "  {\"name\":\"doc\",\"type\":\"tsvector\",\"base\":\"tsvector\",\"cat\":\"U\","
    "   \"null\":true},"
    "  {\"name\":\"created_at\",\"type\":\"timestamp with time zone\",\"base\":\"timestamptz\","
    "   \"cat\":\"D\",\"null\":false,\"def\":\"now()\"}],"
    " \"pk\":[\"id\"],\"uniq\":[[\"id\"]]},"
    "{\"name\":\"people\",\"kind\":\"r\",\"ins\":true,\"upd\":true,\"del\":true,"
    " \"cols\":["
    "  {\"name\":\"id\",\"type\":\"integer\",\"base\":\"int4\",\"cat\":\"N\",\"null\":false},"
    "  {\"name\":\"manager_id\",\"type\":\"integer\",\"base\":\"int4\",\"cat\":\"N\","
    "   \"null\":true}],"
    " \"pk\":[\"id\"],\"uniq\":[[\"id\"]]},"
    "{\"name\":\"members\",\"kind\":\"r\",\"ins\":true,\"upd\":true,\"del\":true,"
    " \"cols\":["
    "  {\"name\":\"person_id\",\"type\":\"integer\",\"base\":\"int4\",\"cat\":\"N\","
    "   \"null\":false},"
    "  {\"name\":\"project_id\",\"type\":\"integer\",\"base\":\"int4\",\"cat\":\"N\","
    "   \"null\":false}],"
    " \"pk\":[\"person_id\",\"project_id\"],\"uniq\":[[\"person_id\",\"project_id\"]]},"
    "{\"name\":\"tasks\",\"kind\":\"r\",\"ins\":true,\"upd\":true,\"del\":true,"
    " \"cols\":["
    "  {\"name\":\"id\",\"type\":\"integer\",\"base\":\"int4\",\"cat\":\"N\",\"null\":false},"
    "  {\"name\":\"assignee_id\",\"type\":\"integer\",\"base\":\"int4\",\"cat\":\"N\"},"
    "  {\"name\":\"reviewer_id\",\"type\":\"integer\",\"base\":\"int4\",\"cat\":\"N\"}],"
    " \"pk\":[\"id\"],\"uniq\":[[\"id\"]]},"
    "{\"name\":\"open_projects\",\"kind\":\"v\",\"ins\":false,\"upd\":false,\"del\":false,"
    " \"cols\":["
    "  {\"name\":\"id\",\"type\":\"integer\",\"base\":\"int4\",\"cat\":\"N\",\"null\":true},"
    "  {\"name\":\"owner\",\"type\":\"integer\",\"base\":\"int4\",\"cat\":\"N\",\"null\":true}]}"
    "],"
    "\"fks\":["
    "{\"name\":\"projects_client_id_fkey\",\"from\":\"projects\",\"to\":\"clients\","
    " \"from_cols\":[\"client_id\"],\"to_cols\":[\"id\"]},"
    "{\"name\":\"people_manager_id_fkey\",\"from\":\"people\",\"to\":\"people\","
    " \"from_cols\":[\"manager_id\"],\"to_cols\":[\"id\"]},"
    "{\"name\":\"members_person_id_fkey\",\"from\":\"members\",\"to\":\"people\","
    " \"from_cols\":[\"person_id\"],\"to_cols\":[\"id\"]},"
    "{\"name\":\"tasks_assignee_id_fkey\",\"from\":\"tasks\",\"to\":\"people\","
    " \"from_cols\":[\"assignee_id\"],\"to_cols\":[\"id\"]},"
    "{\"name\":\"tasks_reviewer_id_fkey\",\"from\":\"tasks\",\"to\":\"people\","
    " \"from_cols\":[\"reviewer_id\"],\"to_cols\":[\"id\"]},"
    "{\"name\":\"members_project_id_fkey\",\"from\":\"members\",\"to\":\"projects\","
    " \"from_cols\":[\"project_id\"],\"to_cols\":[\"id\"]}"
    "],"
    "\"viewcols\":["
    "{\"view\":\"open_projects\",\"col\":\"id\",\"table\":\"projects\",\"base\":\"id\"},"
    "{\"view\":\"open_projects\",\"col\":\"owner\",\"table\":\"projects\",\"base\":\"client_id\"}"
    "],"
    "\"funcs\":["
    "{\"name\":\"add\",\"set\":false,\"vol\":\"i\",\"rettype\":\"integer\",\"rettyp\":\"b\","
    " \"ndef\":0,\"args\":[{\"name\":\"a\",\"type\":\"integer\",\"mode\":\"i\"},"
    "                     {\"name\":\"b\",\"type\":\"integer\",\"mode\":\"i\"}]},"
    "{\"name\":\"client_projects\",\"set\":true,\"vol\":\"s\",\"rettype\":\"projects\","
    " \"rettyp\":\"c\",\"rettable\":\"projects\",\"ndef\":0,"
    " \"args\":[{\"name\":\"cid\",\"type\":\"integer\",\"mode\":\"i\"}],"
    " \"retcols\":[{\"name\":\"id\",\"type\":\"integer\",\"base\":\"int4\"},"
    "              {\"name\":\"client_id\",\"type\":\"integer\",\"base\":\"int4\"}]}"
    "],"
    "\"types\":[\"int4\",\"text\",\"jsonb\",\"timestamptz\"]}";

static rest_schema_t *schema;

static int setup_schema(void **state)
{
    (void)state;
    char why[256] = "";
    schema = rest__schema_from_json(CATALOG, strlen(CATALOG), why, sizeof(why));
    if (!schema)
        fprintf(stderr, "catalog: %s\n", why);
    return schema ? 0 : -1;
}

static int teardown_schema(void **state)
{
    (void)state;
    rest__schema_release(schema);
    return 0;
}

/* One built request. */
struct built {
    cd_arena_t arena;
    struct rest_query q;
    struct rest_prefer prefer;
    rest_request_t req;
    rest_stmt_t st;
    rest__err_t err;
    json_t *body;
    bool ok;
};

static void built_free(struct built *b)
{
    cd_buf_free(&b->st.sql);
    json_decref(b->body);
    cd_arena_free(&b->arena);
    free(b);
}

/* Parses query (and Prefer, body) and builds the statement of action on table/func. */
static struct built *build(enum rest_action action, const char *target, const char *query,
                           const char *prefer, const char *body)
{
    struct built *b = calloc(1, sizeof(*b));
    assert_non_null(b);
    cd_arena_init(&b->arena, REST_ARENA_MAX_BYTES);
    struct rest_error pe;
    bool parsed = action == REST_ACT_CALL
                      ? rest_parse_query_rpc(&b->arena, query, strlen(query), &b->q, &pe)
                      : rest_parse_query(&b->arena, query, strlen(query), &b->q, &pe);
    if (!parsed)
        fail_msg("parse %s: %s %s", query, pe.message, pe.details);
    const char *pv[1] = {prefer};
    size_t pl[1] = {prefer ? strlen(prefer) : 0};
    assert_true(rest_parse_prefer(&b->arena, pv, pl, prefer ? 1 : 0, &b->prefer, &pe));
    b->req.action = action;
    b->req.schema = schema;
    b->req.query = &b->q;
    b->req.prefer = &b->prefer;
    b->req.media = REST_MEDIA_JSON;
    b->req.limit = -1;
    if (action == REST_ACT_CALL) {
        size_t n;
        b->req.func = rest__schema_funcs(schema, target, &n);
        assert_non_null(b->req.func);
        b->req.args_text = body;
    } else {
        b->req.table = rest__schema_table(schema, target);
        assert_non_null(b->req.table);
    }
    if (body && action != REST_ACT_CALL) {
        b->body = json_loads(body, 0, NULL);
        assert_non_null(b->body);
        b->req.body_json = b->body;
        b->req.body_text = body;
    }
    return b;
}

static void run_build(struct built *b)
{
    b->ok = rest__build(&b->arena, &b->req, &b->st, &b->err);
}

static struct built *build_ok(enum rest_action action, const char *target, const char *query,
                              const char *prefer, const char *body)
{
    struct built *b = build(action, target, query, prefer, body);
    run_build(b);
    if (!b->ok)
        fail_msg("build %s?%s: %s %s (%s)", target, query, b->err.code, b->err.message,
                 b->err.details);
    return b;
}

static void expect_error(enum rest_action action, const char *target, const char *query,
                         const char *body, int status, const char *code)
{
    struct built *b = build(action, target, query, NULL, body);
    run_build(b);
    if (b->ok)
        fail_msg("%s?%s built: %s", target, query, cd_buf_str(&b->st.sql));
    assert_int_equal(b->err.status, status);
    assert_string_equal(b->err.code, code);
    built_free(b);
}

/* The SELECT that every statement ends with (columns after total_result_set). */
#define TAIL_JSON                                                                                  \
    "pg_catalog.count(_postgrest_t) AS page_total, coalesce(pg_catalog.json_agg(_postgrest_t), "   \
    "'[]')::text AS body, nullif(pg_catalog.current_setting('response.headers', true), '') AS "    \
    "response_headers, nullif(pg_catalog.current_setting('response.status', true), '') AS "        \
    "response_status, NULL::text AS location"

/* ------------------------------------------------------------------------------------------
 * Reads
 */

static void test_read_benchmark_query(void **state)
{
    (void)state;
    struct built *b =
        build(REST_ACT_READ, "projects", "select=*&order=created_at.desc", NULL, NULL);
    b->req.limit = 20;
    run_build(b);
    assert_true(b->ok);
    assert_string_equal(cd_buf_str(&b->st.sql),
                        "SELECT NULL::bigint AS total_result_set, " TAIL_JSON
                        " FROM (SELECT \"pgrst_t0\".* FROM \"public\".\"projects\" AS "
                        "\"pgrst_t0\" ORDER BY \"pgrst_t0\".\"created_at\" DESC LIMIT 20) AS "
                        "_postgrest_t");
    assert_int_equal(b->st.n_params, 0);
    built_free(b);
}

static void test_read_filters_are_parameters(void **state)
{
    (void)state;
    struct built *b = build_ok(REST_ACT_READ, "clients",
                               "select=id,name&name=eq.x%27)%3B%20drop%20table%20clients%3B--"
                               "&id=in.(1,%22a,b%22)&name=like.A*",
                               NULL, NULL);
    assert_string_equal(cd_buf_str(&b->st.sql),
                        "SELECT NULL::bigint AS total_result_set, " TAIL_JSON
                        " FROM (SELECT \"pgrst_t0\".\"id\" AS \"id\", \"pgrst_t0\".\"name\" AS "
                        "\"name\" FROM \"public\".\"clients\" AS \"pgrst_t0\" WHERE "
                        "\"pgrst_t0\".\"name\" = $1 AND \"pgrst_t0\".\"id\" = ANY ($2) AND "
                        "\"pgrst_t0\".\"name\" LIKE $3) AS _postgrest_t");
    assert_int_equal(b->st.n_params, 3);
    assert_string_equal(b->st.params[0], "x'); drop table clients;--");
    assert_string_equal(b->st.params[1], "{\"1\",\"a,b\"}");
    assert_string_equal(b->st.params[2], "A%");
    assert_null(strstr(cd_buf_str(&b->st.sql), "drop"));
    built_free(b);
}

static void test_read_logic_json_path_and_count(void **state)
{
    (void)state;
    struct built *b = build(REST_ACT_READ, "projects",
                            "select=id,color:meta->>color&or=(id.eq.1,not.and(id.gt.5,"
                            "meta->n.is.null))&meta->>color=neq.red",
                            NULL, NULL);
    b->req.count_exact = true;
    b->req.offset = 10;
    b->req.limit = 5;
    run_build(b);
    assert_true(b->ok);
    assert_string_equal(
        cd_buf_str(&b->st.sql),
        "SELECT (SELECT pg_catalog.count(*) FROM (SELECT 1 FROM \"public\".\"projects\" AS "
        "\"pgrst_t0\" WHERE \"pgrst_t0\".\"meta\"->>$1::text <> $2 AND (\"pgrst_t0\".\"id\" = $3 "
        "OR NOT (\"pgrst_t0\".\"id\" > $4 AND \"pgrst_t0\".\"meta\"->$5::text IS NULL))) AS "
        "_pgrst_count) AS total_result_set, " TAIL_JSON
        " FROM (SELECT \"pgrst_t0\".\"id\" AS \"id\", \"pgrst_t0\".\"meta\"->>$6::text AS "
        "\"color\" FROM \"public\".\"projects\" AS \"pgrst_t0\" WHERE "
        "\"pgrst_t0\".\"meta\"->>$7::text <> $8 AND (\"pgrst_t0\".\"id\" = $9 OR NOT "
        "(\"pgrst_t0\".\"id\" > $10 AND \"pgrst_t0\".\"meta\"->$11::text IS NULL)) LIMIT 5 "
        "OFFSET 10) AS _postgrest_t");
    assert_int_equal(b->st.n_params, 11);
    assert_string_equal(b->st.params[0], "color");
    assert_string_equal(b->st.params[1], "red");
    built_free(b);
}

static void test_read_fts_and_operators(void **state)
{
    (void)state;
    struct built *b = build_ok(REST_ACT_READ, "projects",
                               "select=id&doc=fts(english).cat&meta=cs.%7B%22a%22:1%7D"
                               "&id=not.is.null&meta->>t=wfts.a%20b",
                               NULL, NULL);
    const char *sql = cd_buf_str(&b->st.sql);
    assert_non_null(
        strstr(sql, "\"pgrst_t0\".\"doc\" @@ pg_catalog.to_tsquery($1::regconfig, $2)"));
    assert_non_null(strstr(sql, "\"pgrst_t0\".\"meta\" @> $3"));
    assert_non_null(strstr(sql, "NOT (\"pgrst_t0\".\"id\" IS NULL)"));
    assert_non_null(strstr(sql, "pg_catalog.to_tsvector(\"pgrst_t0\".\"meta\"->>$4::text) @@ "
                                "pg_catalog.websearch_to_tsquery($5)"));
    assert_string_equal(b->st.params[0], "english");
    assert_string_equal(b->st.params[2], "{\"a\":1}");
    built_free(b);
}

static void test_read_quotes_identifiers(void **state)
{
    (void)state;
    struct built *b = build_ok(REST_ACT_READ, "clients", "select=%22we%5C%22ird%22", NULL, NULL);
    assert_non_null(strstr(cd_buf_str(&b->st.sql), "\"pgrst_t0\".\"we\"\"ird\" AS \"we\"\"ird\""));
    built_free(b);
}

static void test_read_embeds(void **state)
{
    (void)state;
    struct built *b = build_ok(REST_ACT_READ, "clients",
                               "select=name,projects!inner(id)&projects.id=gt.1"
                               "&projects.order=id.desc&projects.limit=3",
                               NULL, NULL);
    assert_string_equal(
        cd_buf_str(&b->st.sql),
        "SELECT NULL::bigint AS total_result_set, " TAIL_JSON
        " FROM (SELECT \"pgrst_t0\".\"name\" AS \"name\", COALESCE(\"pgrst_l1\".\"pgrst_body\", "
        "'[]'::json) AS \"projects\" FROM \"public\".\"clients\" AS \"pgrst_t0\" LEFT JOIN "
        "LATERAL (SELECT pg_catalog.json_agg(\"pgrst_s1\") AS \"pgrst_body\" FROM (SELECT "
        "\"pgrst_t1\".\"id\" AS \"id\" FROM \"public\".\"projects\" AS \"pgrst_t1\" WHERE "
        "\"pgrst_t1\".\"client_id\" = \"pgrst_t0\".\"id\" AND \"pgrst_t1\".\"id\" > $1 ORDER BY "
        "\"pgrst_t1\".\"id\" DESC LIMIT 3) AS \"pgrst_s1\") AS \"pgrst_l1\" ON TRUE WHERE "
        "\"pgrst_l1\".\"pgrst_body\" IS NOT NULL) AS _postgrest_t");
    built_free(b);

    b = build_ok(REST_ACT_READ, "projects", "select=id,owner:clients(name),...clients(id)", NULL,
                 NULL);
    const char *sql = cd_buf_str(&b->st.sql);
    assert_non_null(strstr(sql, "\"pgrst_l1\".\"pgrst_body\" AS \"owner\""));
    assert_non_null(strstr(sql, "SELECT pg_catalog.row_to_json(\"pgrst_s1\") AS \"pgrst_body\""));
    assert_non_null(strstr(sql, "\"pgrst_t1\".\"id\" = \"pgrst_t0\".\"client_id\""));
    assert_non_null(strstr(sql, "\"pgrst_l2\".*")); /* the spread */
    built_free(b);
}

static void test_read_embed_kinds(void **state)
{
    (void)state;
    /* many-to-many through the junction */
    struct built *b = build_ok(REST_ACT_READ, "people", "select=id,projects(id)", NULL, NULL);
    assert_non_null(strstr(cd_buf_str(&b->st.sql),
                           "FROM \"public\".\"projects\" AS \"pgrst_t1\" INNER JOIN "
                           "\"public\".\"members\" AS \"pgrst_j1\" ON \"pgrst_j1\".\"project_id\" "
                           "= \"pgrst_t1\".\"id\" WHERE \"pgrst_j1\".\"person_id\" = "
                           "\"pgrst_t0\".\"id\""));
    built_free(b);
    /* self reference: the table name gives the children, the column the parent */
    b = build_ok(REST_ACT_READ, "people", "select=id,people(id),manager_id(id)", NULL, NULL);
    const char *sql = cd_buf_str(&b->st.sql);
    assert_non_null(strstr(sql, "\"pgrst_t1\".\"manager_id\" = \"pgrst_t0\".\"id\""));
    assert_non_null(strstr(sql, "\"pgrst_t2\".\"id\" = \"pgrst_t0\".\"manager_id\""));
    built_free(b);
    /* a view inherits its base table's foreign key */
    b = build_ok(REST_ACT_READ, "open_projects", "select=id,clients(name)", NULL, NULL);
    assert_non_null(strstr(cd_buf_str(&b->st.sql), "\"pgrst_t1\".\"id\" = \"pgrst_t0\".\"owner\""));
    built_free(b);
    /* null filter on an embed */
    b = build_ok(REST_ACT_READ, "clients", "select=id,projects()&projects=not.is.null", NULL, NULL);
    sql = cd_buf_str(&b->st.sql);
    assert_non_null(strstr(sql, "WHERE \"pgrst_l1\".\"pgrst_body\" IS NOT NULL"));
    assert_null(strstr(sql, "AS \"projects\""));
    built_free(b);
}

static void test_read_singular_csv_head(void **state)
{
    (void)state;
    struct built *b = build(REST_ACT_READ, "clients", "select=id", NULL, NULL);
    b->req.media = REST_MEDIA_SINGULAR;
    run_build(b);
    assert_true(b->ok);
    const char *sql = cd_buf_str(&b->st.sql);
    assert_non_null(strstr(sql, "coalesce((pg_catalog.json_agg(_postgrest_t)->0)::text, 'null')"));
    assert_non_null(
        strstr(sql, ", pgrst.check_result(pg_catalog.count(_postgrest_t), true, NULL)"));
    built_free(b);

    b = build(REST_ACT_READ, "clients", "select=id", NULL, NULL);
    b->req.media = REST_MEDIA_CSV;
    run_build(b);
    assert_non_null(strstr(cd_buf_str(&b->st.sql), "pgrst.csv_row("));
    built_free(b);

    b = build(REST_ACT_READ, "clients", "select=id", NULL, NULL);
    b->req.head = true;
    run_build(b);
    assert_non_null(strstr(cd_buf_str(&b->st.sql), "NULL::text AS body"));
    built_free(b);
}

static void test_read_casts(void **state)
{
    (void)state;
    struct built *b =
        build_ok(REST_ACT_READ, "clients", "select=id::text,n:name::TEXT", NULL, NULL);
    assert_non_null(
        strstr(cd_buf_str(&b->st.sql),
               "CAST(\"pgrst_t0\".\"id\" AS text) AS \"id\", CAST(\"pgrst_t0\".\"name\" "
               "AS text) AS \"n\""));
    built_free(b);
    /* known SQL spellings that are not pg_type names */
    b = build_ok(REST_ACT_READ, "clients", "select=id::double%20precision", NULL, NULL);
    assert_non_null(strstr(cd_buf_str(&b->st.sql), "AS double precision)"));
    built_free(b);
    expect_error(REST_ACT_READ, "clients", "select=id::nosuchtype", NULL, 400, "42704");
}

static void test_hostile_cast_in_tree(void **state)
{
    (void)state;
    /* The parser never lets these through; the builder must refuse them anyway. */
    static const char *const hostile[] = {"text) from pg_authid --", "text;drop", "int4\"x",
                                          "pg_catalog.text", ""};
    for (size_t i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
        struct built *b = build(REST_ACT_READ, "clients", "select=id::text", NULL, NULL);
        b->q.select[0].cast = (char *)hostile[i];
        run_build(b);
        assert_false(b->ok);
        assert_int_equal(b->err.status, 400);
        built_free(b);
    }
}

static void test_hostile_names_refused(void **state)
{
    (void)state;
    expect_error(REST_ACT_READ, "clients", "select=nope", NULL, 400, "42703");
    expect_error(REST_ACT_READ, "clients", "select=id&%22id%5C%22%3B--%22=eq.1", NULL, 400,
                 "42703");
    expect_error(REST_ACT_READ, "clients", "select=id&order=%22name%3Bdrop%22.desc", NULL, 400,
                 "42703");
    expect_error(REST_ACT_READ, "clients", "select=id,people(*)", NULL, 400, "PGRST200");
    expect_error(REST_ACT_READ, "clients", "select=id&projects.id=eq.1", NULL, 400, "PGRST108");
    expect_error(REST_ACT_READ, "clients", "select=id,projects(id)&projects=eq.1", NULL, 400,
                 "PGRST120");
    expect_error(REST_ACT_READ, "clients", "select=id,projects(id)&order=projects(id)", NULL, 400,
                 "PGRST118");
    expect_error(REST_ACT_READ, "clients", "select=id.count()", NULL, 400, "PGRST123");
    expect_error(REST_ACT_READ, "clients", "select=id,...projects(id)", NULL, 400, "PGRST119");
}

static void test_ambiguous_embed(void **state)
{
    (void)state;
    /* tasks has two foreign keys to people: the bare name is ambiguous (300 PGRST201 with
     * the candidates in details), a hint or the column name picks one. */
    struct built *b = build(REST_ACT_READ, "tasks", "select=id,people(id)", NULL, NULL);
    run_build(b);
    assert_false(b->ok);
    assert_int_equal(b->err.status, 300);
    assert_string_equal(b->err.code, "PGRST201");
    assert_true(b->err.details_json);
    json_t *details = json_loads(b->err.details, 0, NULL);
    assert_int_equal(json_array_size(details), 2);
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(details, 0), "cardinality")),
        "many-to-one");
    json_decref(details);
    assert_non_null(strstr(b->err.hint, "'people!tasks_assignee_id_fkey'"));
    built_free(b);

    b = build_ok(REST_ACT_READ, "tasks", "select=id,people!tasks_reviewer_id_fkey(id)", NULL, NULL);
    assert_non_null(
        strstr(cd_buf_str(&b->st.sql), "\"pgrst_t1\".\"id\" = \"pgrst_t0\".\"reviewer_id\""));
    built_free(b);
    b = build_ok(REST_ACT_READ, "tasks", "select=id,assignee:assignee_id(id)", NULL, NULL);
    assert_non_null(
        strstr(cd_buf_str(&b->st.sql), "\"pgrst_t1\".\"id\" = \"pgrst_t0\".\"assignee_id\""));
    built_free(b);
    /* and from the other side, one-to-many */
    rest__err_t err;
    rest_rel_t rel;
    const rest_table_t *people = rest__schema_table(schema, "people");
    assert_true(
        rest__find_rel(schema, (size_t)(people - schema->tables), "members", NULL, &rel, &err));
    assert_int_equal(rel.card, REST_O2M);
    assert_false(
        rest__find_rel(schema, (size_t)(people - schema->tables), "clients", NULL, &rel, &err));
    assert_string_equal(err.code, "PGRST200");
}

/* ------------------------------------------------------------------------------------------
 * Writes
 */

static void test_insert(void **state)
{
    (void)state;
    struct built *b = build_ok(REST_ACT_INSERT, "clients", "", NULL, "{\"name\":\"a\"}");
    assert_string_equal(
        cd_buf_str(&b->st.sql),
        "WITH \"pgrst_source\" AS (INSERT INTO \"public\".\"clients\" AS \"pgrst_m\" (\"name\") "
        "SELECT \"pgrst_body\".\"name\" FROM pg_catalog.json_to_record($1::json) AS "
        "\"pgrst_body\"(\"name\" text) RETURNING 1) SELECT NULL::bigint AS total_result_set, "
        "pg_catalog.count(_postgrest_t) AS page_total, NULL::text AS body, "
        "nullif(pg_catalog.current_setting('response.headers', true), '') AS response_headers, "
        "nullif(pg_catalog.current_setting('response.status', true), '') AS response_status, "
        "NULL::text AS location FROM (SELECT * FROM \"pgrst_source\") AS _postgrest_t");
    assert_int_equal(b->st.n_params, 1);
    assert_string_equal(b->st.params[0], "{\"name\":\"a\"}");
    built_free(b);
}

static void test_insert_bulk_columns_defaults_upsert(void **state)
{
    (void)state;
    struct built *b = build_ok(REST_ACT_INSERT, "clients", "columns=%22id%22,%22name%22",
                               "missing=default, resolution=merge-duplicates, "
                               "return=representation",
                               "[{\"name\":\"a\"},{\"id\":5,\"name\":\"b\"}]");
    const char *sql = cd_buf_str(&b->st.sql);
    assert_non_null(strstr(sql, "CASE WHEN \"pgrst_e\".\"j\" ? 'id' THEN \"pgrst_body\".\"id\" "
                                "ELSE nextval('clients_id_seq'::regclass) END"));
    assert_non_null(strstr(sql, "ON CONFLICT (\"id\") DO UPDATE SET \"id\" = EXCLUDED.\"id\", "
                                "\"name\" = EXCLUDED.\"name\" RETURNING \"pgrst_m\".*"));
    assert_non_null(
        strstr(sql, "FROM (SELECT \"pgrst_t1\".* FROM \"pgrst_source\" AS \"pgrst_t1\")"));
    built_free(b);

    /* without columns=, every object must have the same keys */
    expect_error(REST_ACT_INSERT, "clients", "", "[{\"name\":\"a\"},{\"id\":1}]", 400, "PGRST102");
    /* unknown keys and columns */
    expect_error(REST_ACT_INSERT, "clients", "", "{\"nope\":1}", 400, "PGRST204");
    expect_error(REST_ACT_INSERT, "clients", "columns=nope", "{\"name\":1}", 400, "PGRST204");
}

static void test_update_delete(void **state)
{
    (void)state;
    struct built *b = build_ok(REST_ACT_UPDATE, "clients", "id=eq.3", NULL, "{\"name\":\"z\"}");
    assert_string_equal(
        cd_buf_str(&b->st.sql),
        "WITH \"pgrst_source\" AS (UPDATE \"public\".\"clients\" AS \"pgrst_m\" SET \"name\" = "
        "\"pgrst_body\".\"name\" FROM pg_catalog.json_to_record($1::json) AS "
        "\"pgrst_body\"(\"name\" text) WHERE \"pgrst_m\".\"id\" = $2 RETURNING 1) SELECT "
        "NULL::bigint AS total_result_set, pg_catalog.count(_postgrest_t) AS page_total, "
        "NULL::text AS body, nullif(pg_catalog.current_setting('response.headers', true), '') AS "
        "response_headers, nullif(pg_catalog.current_setting('response.status', true), '') AS "
        "response_status, NULL::text AS location FROM (SELECT * FROM \"pgrst_source\") AS "
        "_postgrest_t");
    built_free(b);

    b = build(REST_ACT_DELETE, "clients", "name=like.*x&order=id", NULL, NULL);
    b->req.limit = 2;
    run_build(b);
    assert_true(b->ok);
    assert_non_null(strstr(cd_buf_str(&b->st.sql),
                           "DELETE FROM \"public\".\"clients\" AS \"pgrst_m\" WHERE "
                           "\"pgrst_m\".ctid = ANY (ARRAY(SELECT \"pgrst_u\".ctid FROM "
                           "\"public\".\"clients\" AS \"pgrst_u\" WHERE \"pgrst_u\".\"name\" LIKE "
                           "$1 ORDER BY \"pgrst_u\".\"id\" LIMIT 2)) RETURNING 1"));
    built_free(b);

    /* no filter: refused before any SQL exists */
    expect_error(REST_ACT_UPDATE, "clients", "", "{\"name\":\"z\"}", 400, "21000");
    expect_error(REST_ACT_DELETE, "clients", "select=id", NULL, 400, "21000");
    expect_error(REST_ACT_UPDATE, "clients", "id=eq.1", "[{\"name\":\"z\"}]", 400, "PGRST102");
}

static void test_mutation_singular_guard(void **state)
{
    (void)state;
    struct built *b =
        build(REST_ACT_UPDATE, "clients", "id=gt.0", "return=representation", "{\"name\":\"z\"}");
    b->req.media = REST_MEDIA_SINGULAR;
    run_build(b);
    assert_true(b->ok);
    /* the check runs inside the statement, so the transaction rolls back on failure */
    assert_non_null(strstr(cd_buf_str(&b->st.sql), "pgrst.check_result(pg_catalog.count("
                                                   "_postgrest_t), true, NULL)"));
    built_free(b);
}

/* ------------------------------------------------------------------------------------------
 * Functions
 */

static void test_call(void **state)
{
    (void)state;
    struct built *b = build_ok(REST_ACT_CALL, "add", "", NULL, "{\"a\":1,\"b\":2}");
    assert_string_equal(
        cd_buf_str(&b->st.sql),
        "WITH \"pgrst_source\" AS (SELECT \"public\".\"add\"(\"a\" := \"pgrst_args\".\"a\", "
        "\"b\" := \"pgrst_args\".\"b\") AS \"pgrst_scalar\" FROM "
        "pg_catalog.json_to_record($1::json) "
        "AS \"pgrst_args\"(\"a\" integer, \"b\" integer)) SELECT NULL::bigint AS total_result_set, "
        "pg_catalog.count(_postgrest_t) AS page_total, "
        "coalesce((pg_catalog.json_agg(_postgrest_t.pgrst_scalar)->0)::text, 'null') AS body, "
        "nullif(pg_catalog.current_setting('response.headers', true), '') AS response_headers, "
        "nullif(pg_catalog.current_setting('response.status', true), '') AS response_status, "
        "NULL::text AS location FROM (SELECT * FROM \"pgrst_source\") AS _postgrest_t");
    built_free(b);

    b = build_ok(REST_ACT_CALL, "client_projects", "select=id,clients(name)&id=gt.1", NULL,
                 "{\"cid\":1}");
    const char *sql = cd_buf_str(&b->st.sql);
    assert_non_null(strstr(sql, "WITH \"pgrst_source\" AS (SELECT \"pgrst_call\".* FROM "
                                "pg_catalog.json_to_record($1::json) AS \"pgrst_args\"(\"cid\" "
                                "integer), LATERAL \"public\".\"client_projects\"(\"cid\" := "
                                "\"pgrst_args\".\"cid\") AS \"pgrst_call\")"));
    assert_non_null(strstr(sql, "FROM \"pgrst_source\" AS \"pgrst_t0\""));
    assert_non_null(strstr(sql, "\"pgrst_t0\".\"id\" > $"));
    built_free(b);

    /* filters on a scalar result make no sense */
    expect_error(REST_ACT_CALL, "add", "id=eq.1", "{\"a\":1,\"b\":2}", 400, "PGRST100");
}

/* ------------------------------------------------------------------------------------------
 * Schema cache
 */

static void test_schema_lookups(void **state)
{
    (void)state;
    assert_non_null(rest__schema_table(schema, "clients"));
    assert_null(rest__schema_table(schema, "client"));
    assert_true(rest__schema_has_type(schema, "int4"));
    assert_true(rest__schema_has_type(schema, "integer"));
    assert_false(rest__schema_has_type(schema, "int4;"));
    char hint[200];
    rest__table_hint(schema, "client", hint, sizeof(hint));
    assert_string_equal(hint, "Perhaps you meant the table 'public.clients'");
    rest__table_hint(schema, "zzzzzzzz", hint, sizeof(hint));
    assert_string_equal(hint, "");
    size_t n;
    assert_non_null(rest__schema_funcs(schema, "add", &n));
    assert_int_equal(n, 1);
    assert_null(rest__schema_funcs(schema, "ad", &n));
    char why[200];
    assert_null(rest__schema_from_json("[]", 2, why, sizeof(why)));
    assert_null(rest__schema_from_json("{\"tables\":[{\"kind\":\"r\"}]}", 28, why, sizeof(why)));
}

static void test_quote_ident(void **state)
{
    (void)state;
    cd_buf_t b;
    cd_buf_init(&b, 100);
    assert_true(rest__quote_ident(&b, "a\"b\"\""));
    assert_string_equal(cd_buf_str(&b), "\"a\"\"b\"\"\"\"\"");
    cd_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_benchmark_query),
        cmocka_unit_test(test_read_filters_are_parameters),
        cmocka_unit_test(test_read_logic_json_path_and_count),
        cmocka_unit_test(test_read_fts_and_operators),
        cmocka_unit_test(test_read_quotes_identifiers),
        cmocka_unit_test(test_read_embeds),
        cmocka_unit_test(test_read_embed_kinds),
        cmocka_unit_test(test_read_singular_csv_head),
        cmocka_unit_test(test_read_casts),
        cmocka_unit_test(test_hostile_cast_in_tree),
        cmocka_unit_test(test_hostile_names_refused),
        cmocka_unit_test(test_ambiguous_embed),
        cmocka_unit_test(test_insert),
        cmocka_unit_test(test_insert_bulk_columns_defaults_upsert),
        cmocka_unit_test(test_update_delete),
        cmocka_unit_test(test_mutation_singular_guard),
        cmocka_unit_test(test_call),
        cmocka_unit_test(test_schema_lookups),
        cmocka_unit_test(test_quote_ident),
    };
    return cmocka_run_group_tests(tests, setup_schema, teardown_schema);
}
