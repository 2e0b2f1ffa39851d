/* Unit tests for auth/limiter: the per-address request budget. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "auth/auth.h"

static void test_limiter(void **state)
{
    (void)state;
    struct auth_limiter *l = auth_limiter_new(16);
    assert_non_null(l);
    for (int i = 0; i < 3; i++)
        assert_int_equal(auth_limiter_hit(l, "10.0.0.1", 3), 0);
    int wait = auth_limiter_hit(l, "10.0.0.1", 3);
    assert_true(wait >= 1 && wait <= 300);
    assert_int_equal(auth_limiter_hit(l, "10.0.0.2", 3), 0); /* another address */
    /* a flood of distinct addresses never grows the table or crashes */
    char addr[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(addr, sizeof(addr), "192.0.2.%d", i);
        (void)auth_limiter_hit(l, addr, 3);
    }
    auth_limiter_free(l);
    assert_int_equal(auth_limiter_hit(NULL, "x", 1), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_limiter),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
