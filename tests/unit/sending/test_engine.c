/* Unit tests for sending/engine.c's pure parts: how a claimed batch is cut
 * into groups (sending__balanced_group), how many messages a worker claims
 * (sending__claim_size). The engine's database side is
 * tested by pgTAP (tests/sql/0xx_send*.sql) and its sends end to end by
 * tests/integration/sending*.test.js. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sending/engine_internal.h"

static void test_balanced_examples(void **state)
{
    (void)state;
    assert_int_equal(sending__balanced_group(50, 16), 13);  /* 13 13 13 11 */
    assert_int_equal(sending__balanced_group(100, 16), 15); /* 6 x 15, 10 */
    assert_int_equal(sending__balanced_group(20, 16), 10);  /* 10 10, not 16 4 */
    assert_int_equal(sending__balanced_group(16, 16), 16);
    assert_int_equal(sending__balanced_group(32, 16), 16);
    assert_int_equal(sending__balanced_group(3, 16), 3);
    assert_int_equal(sending__balanced_group(7, 1), 1);
    assert_int_equal(sending__balanced_group(0, 16), 16);
    assert_int_equal(sending__balanced_group(5, 0), 0);
}

/* For every batch and bound: never above the bound, as many groups as
 * groups of the bound, and the last group (what hides the next claim) at
 * least as large as it is when cut at the bound. */
static void test_balanced_properties(void **state)
{
    (void)state;
    for (size_t g = 1; g <= 50; g++) {
        for (size_t n = 1; n <= 200; n++) {
            size_t b = sending__balanced_group(n, g);
            assert_true(b >= 1 && b <= g);
            size_t groups = (n + b - 1) / b, plain = (n + g - 1) / g;
            assert_int_equal(groups, plain);
            assert_int_equal(b, (n + plain - 1) / plain); /* evened out, not g */
            size_t last = n - (groups - 1) * b, plain_last = n - (plain - 1) * g;
            assert_true(last >= 1 && last <= b);
            assert_true(last >= plain_last);
        }
    }
}

/* SEND_BATCH_SIZE, at most a second of the rate (the largest burst). */
static void test_claim_size(void **state)
{
    (void)state;
    assert_int_equal(sending__claim_size(100, 0), 100); /* no limit: the batch */
    assert_int_equal(sending__claim_size(100, 10), 10); /* 10 a second: 10 at once */
    assert_int_equal(sending__claim_size(100, 50), 50);
    assert_int_equal(sending__claim_size(20, 50), 20); /* the batch bounds it too */
    assert_int_equal(sending__claim_size(100, 100), 100);
    assert_int_equal(sending__claim_size(100, 1), 1);
    assert_int_equal(sending__claim_size(0, 0), 1); /* never nothing */
    assert_int_equal(sending__claim_size(100, -1), 100);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_balanced_examples),
        cmocka_unit_test(test_balanced_properties),
        cmocka_unit_test(test_claim_size),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
