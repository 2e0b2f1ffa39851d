/* Unit tests for rest/handlers.c: Accept negotiation (which media type a /rest/v1 answer
 * takes, at the root and on a table). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "rest/rest_internal.h"

static enum rest__accept table(const char *h, bool *strip)
{
    return rest__parse_accept(h, false, strip);
}

static void test_accept_table(void **state)
{
    (void)state;
    bool strip = true;
    assert_int_equal(table(NULL, &strip), REST__ACCEPT_JSON);
    assert_false(strip);
    assert_int_equal(table("", &strip), REST__ACCEPT_JSON);
    assert_int_equal(table("*/*", &strip), REST__ACCEPT_JSON);
    assert_int_equal(table("application/json", &strip), REST__ACCEPT_JSON);
    assert_int_equal(table("Application/JSON", &strip), REST__ACCEPT_JSON);
    assert_int_equal(table("application/vnd.pgrst.array+json", &strip), REST__ACCEPT_JSON);
    assert_int_equal(table("application/vnd.pgrst.object+json", &strip), REST__ACCEPT_SINGULAR);
    assert_int_equal(table("application/vnd.pgrst.object", &strip), REST__ACCEPT_SINGULAR);
    assert_int_equal(table("text/csv", &strip), REST__ACCEPT_CSV);
    /* the first type it can produce wins, whatever the q= weights say */
    assert_int_equal(table("image/png, text/csv;q=0.1, application/json", &strip),
                     REST__ACCEPT_CSV);
    assert_int_equal(table(" text/html ,  application/vnd.pgrst.object+json ", &strip),
                     REST__ACCEPT_SINGULAR);
    /* nothing it can produce: 406 */
    assert_int_equal(table("text/html", &strip), REST__ACCEPT_NONE);
    assert_int_equal(table("application/openapi+json", &strip), REST__ACCEPT_NONE);
    assert_int_equal(table("text/html, image/png", &strip), REST__ACCEPT_NONE);
    /* only empty items: as if absent */
    assert_int_equal(table(" , ", &strip), REST__ACCEPT_JSON);
}

static void test_accept_nulls_stripped(void **state)
{
    (void)state;
    bool strip = false;
    assert_int_equal(table("application/vnd.pgrst.array+json;nulls=stripped", &strip),
                     REST__ACCEPT_JSON);
    assert_true(strip);
    assert_int_equal(table("application/json; charset=utf-8 ; nulls=stripped", &strip),
                     REST__ACCEPT_JSON);
    assert_true(strip);
    /* the parameter belongs to its own type only */
    assert_int_equal(table("text/html;nulls=stripped, application/json", &strip),
                     REST__ACCEPT_JSON);
    assert_false(strip);
    assert_int_equal(table("application/json;nulls=kept", &strip), REST__ACCEPT_JSON);
    assert_false(strip);
}

static void test_accept_root(void **state)
{
    (void)state;
    bool strip = false;
    assert_int_equal(rest__parse_accept(NULL, true, &strip), REST__ACCEPT_JSON);
    assert_int_equal(rest__parse_accept("*/*", true, &strip), REST__ACCEPT_OPENAPI);
    assert_int_equal(rest__parse_accept("application/json", true, &strip), REST__ACCEPT_OPENAPI);
    assert_int_equal(rest__parse_accept("application/openapi+json", true, &strip),
                     REST__ACCEPT_OPENAPI);
    assert_int_equal(rest__parse_accept("text/csv", true, &strip), REST__ACCEPT_NONE);
    assert_int_equal(rest__parse_accept("application/vnd.pgrst.object+json", true, &strip),
                     REST__ACCEPT_NONE);
    assert_int_equal(rest__parse_accept("text/csv, application/openapi+json", true, &strip),
                     REST__ACCEPT_OPENAPI);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accept_table),
        cmocka_unit_test(test_accept_nulls_stripped),
        cmocka_unit_test(test_accept_root),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
