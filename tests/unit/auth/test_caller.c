/* Unit tests for auth/caller: request.headers as JSON. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "auth/auth.h"

/* What the headers' JSON must mean: built the way jansson would (one object,
 * lower-cased keys, set in order so the last repeat wins, invalid UTF-8 and
 * names of 256 bytes or more left out, x-real-ip from the server). */
static json_t *expected(const char *const *names, const char *const *values, size_t n,
                        const char *ip)
{
    json_t *o = json_object();
    for (size_t i = 0; i < n; i++) {
        char lname[256];
        size_t len = strlen(names[i]);
        if (len >= sizeof(lname))
            continue;
        for (size_t k = 0; k <= len; k++)
            lname[k] =
                (char)(names[i][k] >= 'A' && names[i][k] <= 'Z' ? names[i][k] + 32 : names[i][k]);
        if (strcmp(lname, "x-real-ip") == 0)
            continue;
        json_t *v = json_string(values[i]);
        if (v)
            json_object_set_new(o, lname, v);
    }
    json_object_set_new(o, "x-real-ip", json_string(ip));
    return o;
}

static void check(const char *const *names, const char *const *values, size_t n, const char *ip)
{
    char *s = auth_headers_json_of(names, values, n, ip);
    assert_non_null(s);
    json_error_t e;
    json_t *got = json_loads(s, JSON_REJECT_DUPLICATES, &e);
    if (!got)
        fail_msg("not JSON without repeated keys: %s (%s)", s, e.text);
    json_t *want = expected(names, values, n, ip);
    if (!json_equal(got, want)) {
        char *w = json_dumps(want, JSON_COMPACT);
        fail_msg("got %s, want %s", s, w);
    }
    json_decref(got);
    json_decref(want);
    free(s);
}

static void test_headers_plain(void **state)
{
    (void)state;
    const char *n[] = {"Host", "apikey", "Authorization", "Accept", "Prefer"};
    const char *v[] = {"127.0.0.1:8080", "eyJ.a.b", "Bearer eyJ.c.d", "*/*", "count=exact"};
    check(n, v, 5, "127.0.0.1");
    char *s = auth_headers_json_of(n, v, 2, "::1");
    assert_string_equal(
        s, "{\"host\":\"127.0.0.1:8080\",\"apikey\":\"eyJ.a.b\",\"x-real-ip\":\"::1\"}");
    free(s);
    s = auth_headers_json_of(NULL, NULL, 0, "10.0.0.1");
    assert_string_equal(s, "{\"x-real-ip\":\"10.0.0.1\"}");
    free(s);
}

static void test_headers_hostile(void **state)
{
    (void)state;
    char longname[300];
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    const char *n[] = {"X-Real-IP", "X-Q",   "x-q",   "X-Ctl",      "X-Bad",      "X-Utf8",
                       longname,    "X-Dup", "x-dup", "X-\xc3\xa9", "X-Backslash"};
    const char *v[] = {"6.6.6.6",  "\"quoted\"",
                       "second",   "a\tb\x01\x1f\x7f",
                       "\xff\xfe", "caf\xc3\xa9 \xe2\x82\xac",
                       "long",     "kept",
                       "\xc0\xaf", "name",
                       "a\\b\\\\"};
    check(n, v, 11, "192.0.2.7");
    /* the client's x-real-ip never gets through, and the later of two x-dup is
     * invalid UTF-8, so the earlier stays */
    char *s = auth_headers_json_of(n, v, 11, "192.0.2.7");
    assert_null(strstr(s, "6.6.6.6"));
    assert_non_null(strstr(s, "\"x-dup\":\"kept\""));
    assert_non_null(strstr(s, "\"x-ctl\":\"a\\u0009b\\u0001\\u001f\x7f\""));
    free(s);
}

static void test_headers_bound(void **state)
{
    (void)state;
    /* past the 256 KiB bound: no headers at all */
    size_t big = 300 * 1024;
    char *val = malloc(big + 1);
    assert_non_null(val);
    memset(val, 'x', big);
    val[big] = '\0';
    const char *n[] = {"X-Big"};
    const char *v[] = {val};
    char *s = auth_headers_json_of(n, v, 1, "127.0.0.1");
    assert_string_equal(s, "{}");
    free(s);
    free(val);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_headers_plain),
        cmocka_unit_test(test_headers_hostile),
        cmocka_unit_test(test_headers_bound),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
