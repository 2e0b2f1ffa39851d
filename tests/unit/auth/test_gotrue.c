/* Unit tests for auth/gotrue: the e-mail address check. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "auth/auth.h"

static void test_email_valid(void **state)
{
    (void)state;
    assert_true(auth_email_valid("a@b.co"));
    assert_true(auth_email_valid("first.last+tag@sub.example.org"));
    assert_false(auth_email_valid("ab.co"));
    assert_false(auth_email_valid("a@b"));
    assert_false(auth_email_valid("a@@b.co"));
    assert_false(auth_email_valid("@b.co"));
    assert_false(auth_email_valid("a b@c.co"));
    assert_false(auth_email_valid("a@b.co\n"));
    assert_false(auth_email_valid("\"x\"@b.co"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_email_valid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
