/* Unit tests for src/importer/records.c: where the records are in an API's
 * answer (records_path), RFC 8288 Link headers, Retry-After, NDJSON, and the
 * flattening of a record into text cells. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "importer/connectors.h"

static void test_json_path(void **state)
{
    (void)state;
    json_t *root = json_loads("{\"data\":{\"items\":[1,2,3],\"n\":null},\"x\":5}", 0, NULL);
    assert_non_null(root);
    const json_t *items = conn_json_path(root, "data.items");
    assert_true(json_is_array(items));
    assert_int_equal(json_array_size(items), 3);
    assert_ptr_equal(conn_json_path(root, NULL), root);
    assert_ptr_equal(conn_json_path(root, ""), root);
    assert_int_equal(json_integer_value(conn_json_path(root, "x")), 5);
    assert_null(conn_json_path(root, "data.missing"));
    assert_null(conn_json_path(root, "x.y")); /* through a scalar */
    assert_null(conn_json_path(root, "data..items"));
    assert_null(conn_json_path(root, ".data"));
    assert_true(json_is_null(conn_json_path(root, "data.n")));
    char longkey[400];
    memset(longkey, 'a', sizeof(longkey) - 1);
    longkey[sizeof(longkey) - 1] = '\0';
    assert_null(conn_json_path(root, longkey));
    json_decref(root);
}

static void test_link_next(void **state)
{
    (void)state;
    char out[256];
    assert_true(
        conn_link_next("<https://api.example.com/items?page=2>; rel=\"next\"", out, sizeof(out)));
    assert_string_equal(out, "https://api.example.com/items?page=2");
    /* several links, next is not the first; unquoted rel; case */
    assert_true(
        conn_link_next("<https://a/1>; rel=\"prev\", <https://a/3>; rel=NEXT", out, sizeof(out)));
    assert_string_equal(out, "https://a/3");
    /* several relation types in one rel; other parameters around it */
    assert_true(
        conn_link_next("</p?c=x,y>; title=\"a;b,c\"; rel=\"last next\"; type=x", out, sizeof(out)));
    assert_string_equal(out, "/p?c=x,y");
    /* "nextish" is not next; none at all */
    assert_false(conn_link_next("<https://a/2>; rel=\"nextish\"", out, sizeof(out)));
    assert_false(conn_link_next("<https://a/2>; rel=\"prev\"", out, sizeof(out)));
    assert_false(conn_link_next("", out, sizeof(out)));
    assert_false(conn_link_next(NULL, out, sizeof(out)));
    /* malformed: no brackets, unterminated quote, unterminated URI */
    assert_false(conn_link_next("https://a/2; rel=next", out, sizeof(out)));
    assert_false(conn_link_next("<https://a/2>; rel=\"next", out, sizeof(out)));
    assert_false(conn_link_next("<https://a/2; rel=next", out, sizeof(out)));
    /* does not fit */
    char small[8];
    assert_false(conn_link_next("<https://a/long/path>; rel=next", small, sizeof(small)));
}

static void test_retry_after(void **state)
{
    (void)state;
    time_t now = 1700000000; /* Tue, 14 Nov 2023 22:13:20 GMT */
    assert_int_equal(conn_retry_after("3", now), 3);
    assert_int_equal(conn_retry_after(" 120 ", now), 120);
    assert_int_equal(conn_retry_after("0", now), 0);
    assert_int_equal(conn_retry_after("Tue, 14 Nov 2023 22:13:50 GMT", now), 30);
    assert_int_equal(conn_retry_after("Tue, 14 Nov 2023 22:00:00 GMT", now), 0);
    assert_int_equal(conn_retry_after("-1", now), -1);
    assert_int_equal(conn_retry_after("3s", now), -1);
    assert_int_equal(conn_retry_after("soon", now), -1);
    assert_int_equal(conn_retry_after("99999999999999999999", now), -1);
    assert_int_equal(conn_retry_after(NULL, now), -1);
}

typedef struct seen {
    int n;
    char last[64];
} seen_t;

static int count_rec(json_t *rec, void *arg)
{
    seen_t *s = arg;
    s->n++;
    const char *id = json_string_value(json_object_get(rec, "id"));
    snprintf(s->last, sizeof(s->last), "%s", id ? id : "?");
    return s->n == 100 ? 7 : 0;
}

static void test_ndjson(void **state)
{
    (void)state;
    char err[256] = "";
    seen_t s = {0};
    const char *ok = "{\"id\":\"a\"}\r\n\n  \n{\"id\":\"b\"}\n{\"id\":\"c\"}";
    assert_int_equal(conn_ndjson_each(ok, strlen(ok), count_rec, &s, err, sizeof(err)), 0);
    assert_int_equal(s.n, 3);
    assert_string_equal(s.last, "c");
    memset(&s, 0, sizeof(s));
    const char *bad = "{\"id\":\"a\"}\n{\"id\":\n";
    assert_int_equal(conn_ndjson_each(bad, strlen(bad), count_rec, &s, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "line 2"));
    assert_int_equal(s.n, 1);
    /* the callback's own result stops the walk */
    char many[4000];
    size_t used = 0;
    for (int i = 0; i < 150; i++)
        used += (size_t)snprintf(many + used, sizeof(many) - used, "{\"id\":\"x\"}\n");
    memset(&s, 0, sizeof(s));
    assert_int_equal(conn_ndjson_each(many, strlen(many), count_rec, &s, err, sizeof(err)), 7);
    assert_int_equal(s.n, 100);
    /* empty input: nothing */
    memset(&s, 0, sizeof(s));
    assert_int_equal(conn_ndjson_each("", 0, count_rec, &s, err, sizeof(err)), 0);
    assert_int_equal(s.n, 0);
}

static void test_flatten(void **state)
{
    (void)state;
    json_t *rec = json_loads("{\"id\":7,\"name\":\"Ada\",\"ok\":true,\"score\":1.5,\"gone\":null,"
                             "\"owner\":{\"email\":\"a@x\",\"geo\":{\"city\":\"Paris\"}},"
                             "\"tags\":[\"a\",\"b\"]}",
                             0, NULL);
    json_t *f = conn_flatten_record(rec);
    assert_non_null(f);
    assert_string_equal(json_string_value(json_object_get(f, "id")), "7");
    assert_string_equal(json_string_value(json_object_get(f, "name")), "Ada");
    assert_string_equal(json_string_value(json_object_get(f, "ok")), "true");
    assert_string_equal(json_string_value(json_object_get(f, "score")), "1.5");
    assert_null(json_object_get(f, "gone"));
    assert_string_equal(json_string_value(json_object_get(f, "owner.email")), "a@x");
    assert_string_equal(json_string_value(json_object_get(f, "owner.geo.city")), "Paris");
    assert_string_equal(json_string_value(json_object_get(f, "tags")), "[\"a\",\"b\"]");
    json_decref(f);
    json_decref(rec);
    /* deeper than 4 levels: kept as JSON text */
    rec = json_loads("{\"a\":{\"b\":{\"c\":{\"d\":{\"e\":1}}}}}", 0, NULL);
    f = conn_flatten_record(rec);
    assert_string_equal(json_string_value(json_object_get(f, "a.b.c.d")), "{\"e\":1}");
    json_decref(f);
    json_decref(rec);
    /* a scalar record */
    rec = json_string("plain");
    f = conn_flatten_record(rec);
    assert_string_equal(json_string_value(json_object_get(f, "value")), "plain");
    json_decref(f);
    json_decref(rec);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_path),   cmocka_unit_test(test_link_next),
        cmocka_unit_test(test_retry_after), cmocka_unit_test(test_ndjson),
        cmocka_unit_test(test_flatten),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
