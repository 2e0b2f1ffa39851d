/* Unit tests for core/buf: bounded buffers refuse growth past their maximum. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/buf.h"

static void test_buf_bounded(void **state)
{
    (void)state;
    cd_buf_t b;
    cd_buf_init(&b, 8);
    assert_string_equal(cd_buf_str(&b), "");
    assert_true(cd_buf_adds(&b, "abcd"));
    assert_true(cd_buf_printf(&b, "%d", 123));
    assert_string_equal(cd_buf_str(&b), "abcd123");
    assert_false(cd_buf_adds(&b, "xy")); /* 9 > 8: refused, unchanged */
    assert_string_equal(cd_buf_str(&b), "abcd123");
    assert_true(cd_buf_adds(&b, "z"));
    assert_int_equal(b.len, 8);
    assert_false(cd_buf_printf(&b, "%s", "q"));
    char *s = cd_buf_take(&b);
    assert_string_equal(s, "abcd123z");
    free(s);
    assert_int_equal(b.len, 0);
    s = cd_buf_take(&b);
    assert_string_equal(s, "");
    free(s);
    cd_buf_free(&b);
}

/* Room reserved at once: the appends within it move nothing. */
static void test_buf_reserve(void **state)
{
    (void)state;
    cd_buf_t b;
    cd_buf_init(&b, 100);
    assert_false(cd_buf_reserve(&b, 101));
    assert_true(cd_buf_reserve(&b, 100));
    const char *data = b.data;
    assert_string_equal(cd_buf_str(&b), "");
    for (int i = 0; i < 10; i++)
        assert_true(cd_buf_adds(&b, "0123456789"));
    assert_ptr_equal(b.data, data);
    assert_int_equal(b.len, 100);
    assert_false(cd_buf_adds(&b, "x"));
    assert_true(cd_buf_reserve(&b, 0));
    cd_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf_bounded),
        cmocka_unit_test(test_buf_reserve),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
