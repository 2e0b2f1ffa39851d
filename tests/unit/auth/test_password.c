/*
 * Unit tests for src/auth/password.c: the byte-length policy, bcrypt hashing through libxcrypt,
 * verification of Supabase-style "$2a$" hashes, refusal of malformed hashes, and the dummy
 * verify used for unknown users.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "auth/password.h"

/* A Supabase-style hash (the form auth.users.encrypted_password holds), generated outside this
 * module with python3 -c 'import crypt; print(crypt.crypt("correct horse battery staple",
 * "$2a$10$vI8aWBnW3fID.ZQ4/zo1G."))'. */
static const char supabase_hash[] = "$2a$10$vI8aWBnW3fID.ZQ4/zo1G.HiSD7KQ1utjBFCI1318s5FwQG1q00.i";
/* The classic crypt_blowfish / OpenBSD test vector (password "U*U"). */
static const char vector_hash[] = "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW";
static const char supabase_pw[] = "correct horse battery staple";

static void test_policy(void **state)
{
    char pw[80];

    (void)state;
    memset(pw, 'a', sizeof(pw));
    assert_int_equal(password_check_policy(pw, 72, 6), PASSWORD_OK);
    assert_int_equal(password_check_policy(pw, 73, 6), PASSWORD_TOO_LONG);
    assert_int_equal(password_check_policy(pw, 80, 6), PASSWORD_TOO_LONG);
    assert_int_equal(password_check_policy(pw, 6, 6), PASSWORD_OK);
    assert_int_equal(password_check_policy(pw, 5, 6), PASSWORD_TOO_SHORT);
    assert_int_equal(password_check_policy(pw, 0, 6), PASSWORD_TOO_SHORT);
    assert_int_equal(password_check_policy(NULL, 0, 1), PASSWORD_TOO_SHORT);
    assert_int_equal(password_check_policy(NULL, 0, 0), PASSWORD_OK);
    /* lengths are bytes, not characters: 3 two-byte characters are 6 bytes */
    assert_int_equal(password_check_policy("\xc3\xa9\xc3\xa9\xc3\xa9", 6, 6), PASSWORD_OK);
    pw[3] = '\0';
    assert_int_equal(password_check_policy(pw, 10, 6), PASSWORD_HAS_NUL);
    assert_int_equal(password_check_policy(pw, 3, 1), PASSWORD_OK);
}

static void test_hash_round_trip(void **state)
{
    char hash[PASSWORD_HASH_BYTES];
    char hash2[PASSWORD_HASH_BYTES];

    (void)state;
    assert_true(password_hash("s3cret-passw0rd", 10, hash, sizeof(hash)));
    assert_int_equal(strlen(hash), 60);
    assert_memory_equal(hash, "$2b$10$", 7);
    assert_true(password_verify("s3cret-passw0rd", hash));
    assert_false(password_verify("s3cret-passw0rD", hash));
    assert_false(password_verify("s3cret-passw0rd ", hash));
    assert_false(password_verify("", hash));
    /* a fresh salt every time */
    assert_true(password_hash("s3cret-passw0rd", 10, hash2, sizeof(hash2)));
    assert_string_not_equal(hash, hash2);
    assert_true(password_verify("s3cret-passw0rd", hash2));
}

static void test_hash_cost(void **state)
{
    char hash[PASSWORD_HASH_BYTES];

    (void)state;
    assert_false(password_hash("pw-pw-pw", 9, hash, sizeof(hash)));
    assert_string_equal(hash, "");
    assert_false(password_hash("pw-pw-pw", 4, hash, sizeof(hash)));
    assert_false(password_hash("pw-pw-pw", 16, hash, sizeof(hash)));
    assert_false(password_hash("pw-pw-pw", -1, hash, sizeof(hash)));
    assert_true(password_hash("pw-pw-pw", 11, hash, sizeof(hash)));
    assert_memory_equal(hash, "$2b$11$", 7);
    assert_true(password_verify("pw-pw-pw", hash));
}

static void test_hash_rejects(void **state)
{
    char hash[PASSWORD_HASH_BYTES];
    char small[60]; /* one byte short of 60 characters + NUL */
    char pw[80];

    (void)state;
    assert_false(password_hash(NULL, 10, hash, sizeof(hash)));
    assert_false(password_hash("pw", 10, NULL, 64));
    assert_false(password_hash("pw", 10, small, sizeof(small)));
    assert_string_equal(small, "");
    /* 72 bytes hash; 73 are refused, never truncated */
    memset(pw, 'p', sizeof(pw));
    pw[72] = '\0';
    assert_true(password_hash(pw, 10, hash, sizeof(hash)));
    assert_true(password_verify(pw, hash));
    pw[72] = 'p';
    pw[73] = '\0';
    assert_false(password_hash(pw, 10, hash, sizeof(hash)));
    /* bcrypt would accept a 73-byte password whose first 72 bytes match: we do not */
    pw[72] = '\0';
    assert_true(password_hash(pw, 10, hash, sizeof(hash)));
    pw[72] = 'x';
    assert_false(password_verify(pw, hash));
}

static void test_supabase_hash(void **state)
{
    char copy[sizeof(supabase_hash)];

    (void)state;
    assert_true(password_verify(supabase_pw, supabase_hash));
    assert_true(password_verify("U*U", vector_hash));
    assert_false(password_verify("U*V", vector_hash));
    assert_false(password_verify("correct horse battery stapl", supabase_hash));
    assert_false(password_verify("Correct horse battery staple", supabase_hash));
    /* $2b$ and $2y$ spellings of the same hash verify too */
    memcpy(copy, supabase_hash, sizeof(copy));
    copy[2] = 'b';
    assert_true(password_verify(supabase_pw, copy));
    copy[2] = 'y';
    assert_true(password_verify(supabase_pw, copy));
    /* the buggy historical $2x$ is refused */
    copy[2] = 'x';
    assert_false(password_verify(supabase_pw, copy));
    /* one flipped hash character */
    memcpy(copy, supabase_hash, sizeof(copy));
    copy[50] = (char)(copy[50] == 'a' ? 'b' : 'a');
    assert_false(password_verify(supabase_pw, copy));
}

static void test_malformed_hashes(void **state)
{
    char h[128];

    (void)state;
    assert_false(password_verify("pw", ""));
    assert_false(password_verify("pw", "$2b$"));
    assert_false(password_verify("pw", "*0"));
    assert_false(password_verify("pw", "*1"));
    assert_false(password_verify("pw", NULL));
    assert_false(password_verify(NULL, supabase_hash));
    assert_false(password_verify("", "$2b$10$"));
    /* other crypt schemes are not bcrypt */
    assert_false(password_verify("pw", "$1$abcdefgh$abcdefghijklmnopqrstuv"));
    assert_false(password_verify("pw", "$6$saltsalt$"));
    /* one character too long or too short */
    memcpy(h, supabase_hash, sizeof(supabase_hash));
    memcpy(h + 60, "x", 2);
    assert_false(password_verify(supabase_pw, h));
    h[59] = '\0';
    assert_false(password_verify(supabase_pw, h));
    /* a character outside bcrypt's alphabet */
    memcpy(h, supabase_hash, sizeof(supabase_hash));
    h[30] = '+';
    assert_false(password_verify(supabase_pw, h));
    /* cost out of range: 03, 31 (days of CPU), non-digits */
    memcpy(h, supabase_hash, sizeof(supabase_hash));
    memcpy(h + 4, "03", 2);
    assert_false(password_verify(supabase_pw, h));
    memcpy(h + 4, "31", 2);
    assert_false(password_verify(supabase_pw, h));
    memcpy(h + 4, "1a", 2);
    assert_false(password_verify(supabase_pw, h));
    memcpy(h + 4, "10", 2);
    h[6] = '.';
    assert_false(password_verify(supabase_pw, h));
}

static void test_dummy(void **state)
{
    char hash[PASSWORD_HASH_BYTES];

    (void)state;
    assert_false(password_verify_dummy("anything", 10));
    /* the second call uses the cached hash and is still false */
    assert_false(password_verify_dummy("anything", 10));
    assert_false(password_verify_dummy("campaignd-no-such-user", 10));
    assert_false(password_verify_dummy("", 10));
    assert_false(password_verify_dummy(NULL, 10));
    assert_false(password_verify_dummy("anything", 3));
    assert_false(password_verify_dummy("anything", 99));
    /* the module still works normally afterwards */
    assert_true(password_hash("after-dummy", 10, hash, sizeof(hash)));
    assert_true(password_verify("after-dummy", hash));
}

static void *dummy_thread(void *arg)
{
    bool *result = arg;

    *result = password_verify_dummy("racing", 11);
    return NULL;
}

/* First use from several threads at once: one dummy hash is computed, every call is false. */
static void test_dummy_threads(void **state)
{
    pthread_t th[4];
    bool results[4];

    (void)state;
    for (size_t i = 0; i < 4; i++) {
        results[i] = true;
        assert_int_equal(pthread_create(&th[i], NULL, dummy_thread, &results[i]), 0);
    }
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_false(results[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_policy),        cmocka_unit_test(test_hash_round_trip),
        cmocka_unit_test(test_hash_cost),     cmocka_unit_test(test_hash_rejects),
        cmocka_unit_test(test_supabase_hash), cmocka_unit_test(test_malformed_hashes),
        cmocka_unit_test(test_dummy),         cmocka_unit_test(test_dummy_threads),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
