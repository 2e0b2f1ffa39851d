/* Unit tests of src/rest/rest_prefer.c: the Prefer and Range headers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "rest/rest_parse.h"

static struct rest_error g_err;

static bool prefer(const char *const *values, size_t n, struct rest_prefer *out, cd_arena_t *arena)
{
    size_t lens[16];

    assert_true(n <= 16);
    for (size_t i = 0; i < n; i++)
        lens[i] = values[i] != NULL ? strlen(values[i]) : 0;
    return rest_parse_prefer(arena, values, lens, n, out, &g_err);
}

static void test_prefer(void **state)
{
    cd_arena_t arena;
    struct rest_prefer pr;
    const char *one[] = {"count=exact, return=representation"};
    const char *several[] = {"resolution=ignore-duplicates",
                             "count=planned",
                             "missing=default",
                             NULL,
                             "handling=lenient",
                             "invalid",
                             "max-affected=5999",
                             "tx=rollback"};
    const char *firsts[] = {"tx=commit, tx=rollback", "return=minimal",
                            "return=headers-only,count=estimated,count=exact"};
    const char *spaces[] = {"count=exact,    tx=commit   ,return=representation , "
                            "missing=null, handling=strict, timezone=Europe/Paris, "
                            "params=single-object,,resolution=merge-duplicates"};

    (void)state;
    cd_arena_init(&arena, REST_ARENA_MAX_BYTES);
    assert_true(prefer(one, 1, &pr, &arena));
    assert_int_equal(pr.count, REST_COUNT_EXACT);
    assert_int_equal(pr.ret, REST_RETURN_REPRESENTATION);
    assert_int_equal(pr.resolution, REST_RESOLUTION_UNSET);
    assert_int_equal(pr.n_invalid, 0);

    assert_true(prefer(several, CD_ARRAY_LEN(several), &pr, &arena));
    assert_int_equal(pr.resolution, REST_RESOLUTION_IGNORE_DUPLICATES);
    assert_int_equal(pr.count, REST_COUNT_PLANNED);
    assert_int_equal(pr.missing, REST_MISSING_DEFAULT);
    assert_int_equal(pr.handling, REST_HANDLING_LENIENT);
    assert_int_equal(pr.tx, REST_TX_ROLLBACK);
    assert_true(pr.has_max_affected);
    assert_int_equal(pr.max_affected, 5999);
    assert_int_equal(pr.n_invalid, 1);
    assert_string_equal(pr.invalid[0], "invalid");

    assert_true(prefer(firsts, CD_ARRAY_LEN(firsts), &pr, &arena));
    assert_int_equal(pr.tx, REST_TX_COMMIT);
    assert_int_equal(pr.ret, REST_RETURN_MINIMAL);
    assert_int_equal(pr.count, REST_COUNT_ESTIMATED);

    assert_true(prefer(spaces, 1, &pr, &arena));
    assert_int_equal(pr.count, REST_COUNT_EXACT);
    assert_int_equal(pr.tx, REST_TX_COMMIT);
    assert_int_equal(pr.ret, REST_RETURN_REPRESENTATION);
    assert_int_equal(pr.missing, REST_MISSING_NULL);
    assert_int_equal(pr.handling, REST_HANDLING_STRICT);
    assert_int_equal(pr.resolution, REST_RESOLUTION_MERGE_DUPLICATES);
    assert_true(pr.params_single_object);
    assert_string_equal(pr.timezone, "Europe/Paris");
    assert_int_equal(pr.n_invalid, 0);

    assert_true(prefer(NULL, 0, &pr, &arena));
    assert_int_equal(pr.ret, REST_RETURN_UNSET);
    cd_arena_free(&arena);
}

static void test_prefer_strict_and_limits(void **state)
{
    cd_arena_t arena;
    struct rest_prefer pr;
    const char *strict[] = {"handling=strict, foo, return=representation", "bar=1"};
    const char *lenient[] = {"foo", "handling=lenient"};
    const char *max[] = {"max-affected=abc, max-affected=5", "handling=strict"};
    const char *neg[] = {"max-affected=-3"};
    char many[1024];
    char big[REST_MAX_PREFER_BYTES + 2];
    const char *v[1];
    size_t o = 0;

    (void)state;
    cd_arena_init(&arena, REST_ARENA_MAX_BYTES);
    assert_false(prefer(strict, 2, &pr, &arena));
    assert_int_equal(g_err.http_status, 400);
    assert_string_equal(g_err.code, "PGRST122");
    assert_string_equal(g_err.message, "Invalid preferences given with handling=strict");
    assert_string_equal(g_err.details, "Invalid preferences: foo, bar=1");
    assert_true(prefer(lenient, 2, &pr, &arena));
    assert_int_equal(pr.n_invalid, 1);
    /* the first max-affected decides even when it is not a number */
    assert_true(prefer(max, 2, &pr, &arena));
    assert_false(pr.has_max_affected);
    assert_true(prefer(neg, 1, &pr, &arena));
    assert_true(pr.has_max_affected);
    assert_int_equal(pr.max_affected, -3);

    for (int i = 0; i <= (int)REST_MAX_PREFER_ITEMS; i++)
        o += (size_t)snprintf(many + o, sizeof many - o, "x%d,", i);
    v[0] = many;
    assert_false(prefer(v, 1, &pr, &arena));
    assert_string_equal(g_err.details, "too many preferences");
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    v[0] = big;
    assert_false(prefer(v, 1, &pr, &arena));
    assert_string_equal(g_err.code, "PGRST100");
    v[0] = "return=\xff";
    assert_false(prefer(v, 1, &pr, &arena));
    cd_arena_free(&arena);
}

static bool range(const char *r, const char *unit, struct rest_range_header *out)
{
    return rest_parse_range(r, r != NULL ? strlen(r) : 0, unit, unit != NULL ? strlen(unit) : 0,
                            out, &g_err);
}

static void test_range(void **state)
{
    struct rest_range_header h;

    (void)state;
    assert_true(range("0-9", NULL, &h));
    assert_true(h.present && h.has_last);
    assert_int_equal(h.first, 0);
    assert_int_equal(h.last, 9);
    assert_true(range("10-", "items", &h));
    assert_true(h.present && !h.has_last);
    assert_int_equal(h.first, 10);
    assert_true(range("5-5", "ITEMS", &h));
    assert_true(h.present);
    assert_true(range("0-9", "bytes", &h));
    assert_false(h.present);
    assert_true(range(NULL, NULL, &h));
    assert_false(h.present);
    assert_true(range("abc", NULL, &h));
    assert_false(h.present);
    assert_true(range("-5", NULL, &h));
    assert_false(h.present);
    assert_true(range("1-2-3", NULL, &h));
    assert_false(h.present);
    assert_true(range(" 0-9", NULL, &h));
    assert_false(h.present);
    assert_false(range("5-2", NULL, &h));
    assert_int_equal(g_err.http_status, 416);
    assert_string_equal(g_err.code, "PGRST103");
    assert_string_equal(g_err.details, "The lower boundary must be lower than or equal to the "
                                       "upper boundary in the Range header.");
    assert_false(range("99999999999999999999-", NULL, &h));
    assert_int_equal(g_err.http_status, 416);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prefer),
        cmocka_unit_test(test_prefer_strict_and_limits),
        cmocka_unit_test(test_range),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
