/* Unit tests for core/arena: alignment, the hard maximum, reuse after free and
 * bounded string copies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/arena.h"

static void test_alloc_and_limit(void **state)
{
    cd_arena_t arena;
    void *a, *b;

    (void)state;
    cd_arena_init(&arena, 4096);
    a = cd_arena_alloc(&arena, 10);
    b = cd_arena_alloc(&arena, 10);
    assert_non_null(a);
    assert_non_null(b);
    assert_true((uintptr_t)a % _Alignof(max_align_t) == 0);
    assert_true((uintptr_t)b % _Alignof(max_align_t) == 0);
    assert_true(a != b);
    memset(a, 0xaa, 10);
    memset(b, 0xbb, 10);
    assert_int_equal(((unsigned char *)a)[9], 0xaa);
    assert_null(cd_arena_alloc(&arena, 5000));
    assert_true(arena.total <= arena.max);
    /* fill the arena to its maximum: allocations stop, total never passes max */
    size_t got = 0;
    while (cd_arena_alloc(&arena, 100) != NULL)
        got++;
    assert_true(got > 0);
    assert_true(arena.total <= arena.max);
    cd_arena_free(&arena);
    assert_int_equal(arena.total, 0);
    assert_null(arena.head);
    /* reusable after free, with the same maximum */
    assert_non_null(cd_arena_alloc(&arena, 0));
    assert_int_equal(arena.max, 4096);
    cd_arena_free(&arena);
}

static void test_strndup(void **state)
{
    cd_arena_t arena;

    (void)state;
    cd_arena_init(&arena, 1 << 16);
    char *s = cd_arena_strndup(&arena, "hello", 64);
    assert_string_equal(s, "hello");
    s = cd_arena_strndup(&arena, "hello", 3);
    assert_string_equal(s, "hel");
    s = cd_arena_strndup(&arena, "", 3);
    assert_string_equal(s, "");
    cd_arena_free(&arena);
    cd_arena_init(&arena, 8);
    assert_null(cd_arena_strndup(&arena, "too big for the arena", 64));
    cd_arena_free(&arena);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alloc_and_limit),
        cmocka_unit_test(test_strndup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
