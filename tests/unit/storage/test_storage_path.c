/* Unit tests for storage/storage_path: object names, bucket ids, raw-target splitting and MIME
 * types. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "core/crypto.h"
#include "storage/storage_internal.h"

static storage_path_status_t check(const char *s)
{
    return storage__check_name(s, strlen(s));
}

static void test_names(void **state)
{
    (void)state;
    assert_int_equal(check("a.png"), STORAGE_PATH_OK);
    assert_int_equal(check("folder/sub/file name (1).png"), STORAGE_PATH_OK);
    assert_int_equal(check("caf\xc3\xa9/\xe2\x82\xac.txt"), STORAGE_PATH_OK);
    assert_int_equal(check("..a/b..c/.hidden"), STORAGE_PATH_OK);
    assert_int_equal(check(""), STORAGE_PATH_EMPTY);
    assert_int_equal(check("/etc/passwd"), STORAGE_PATH_ABSOLUTE);
    assert_int_equal(check("../x"), STORAGE_PATH_DOT_SEGMENT);
    assert_int_equal(check("a/../x"), STORAGE_PATH_DOT_SEGMENT);
    assert_int_equal(check("a/.."), STORAGE_PATH_DOT_SEGMENT);
    assert_int_equal(check("a/./x"), STORAGE_PATH_DOT_SEGMENT);
    assert_int_equal(check("."), STORAGE_PATH_DOT_SEGMENT);
    assert_int_equal(check("a//b"), STORAGE_PATH_EMPTY_SEGMENT);
    assert_int_equal(check("a/"), STORAGE_PATH_EMPTY_SEGMENT);
    assert_int_equal(check("a\\..\\b"), STORAGE_PATH_BACKSLASH);
    assert_int_equal(check("a\nb"), STORAGE_PATH_CONTROL);
    assert_int_equal(check("a\x7f"), STORAGE_PATH_CONTROL);
    assert_int_equal(check("a\xc2\x85"), STORAGE_PATH_CONTROL); /* U+0085 (NEL) */
    assert_int_equal(check("a\xff"), STORAGE_PATH_BAD_UTF8);
    assert_int_equal(check("a\xc0\xaf"), STORAGE_PATH_BAD_UTF8);     /* overlong '/' */
    assert_int_equal(check("a\xed\xa0\x80"), STORAGE_PATH_BAD_UTF8); /* surrogate */
    assert_int_equal(storage__check_name("a\0b", 3), STORAGE_PATH_CONTROL);
    char big[STORAGE_MAX_NAME_BYTES + 2];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(check(big), STORAGE_PATH_TOO_LONG);
    big[STORAGE_MAX_NAME_BYTES] = '\0';
    assert_int_equal(check(big), STORAGE_PATH_OK);
}

static void test_buckets(void **state)
{
    (void)state;
    assert_true(storage__check_bucket("avatars"));
    assert_true(storage__check_bucket("report-exports_2024.v1"));
    assert_false(storage__check_bucket(""));
    assert_false(storage__check_bucket(NULL));
    assert_false(storage__check_bucket(".."));
    assert_false(storage__check_bucket(".hidden"));
    assert_false(storage__check_bucket("a/b"));
    assert_false(storage__check_bucket("a b"));
    assert_false(storage__check_bucket("sign"));
    assert_false(storage__check_bucket("public"));
    assert_false(storage__check_bucket("list"));
    char big[STORAGE_MAX_BUCKET_BYTES + 2];
    memset(big, 'b', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_false(storage__check_bucket(big));
}

static void test_split_target(void **state)
{
    (void)state;
    char b[STORAGE_MAX_BUCKET_BYTES + 1], n[STORAGE_MAX_NAME_BYTES + 1];
    const char *P = "/storage/v1/object/";
    assert_int_equal(storage__split_target("/storage/v1/object/av/u1/a%20b.png?x=1", P, b,
                                           sizeof(b), n, sizeof(n)),
                     STORAGE_PATH_OK);
    assert_string_equal(b, "av");
    assert_string_equal(n, "u1/a b.png");
    /* '+' is a plain character in a path */
    assert_int_equal(
        storage__split_target("/storage/v1/object/av/a+b", P, b, sizeof(b), n, sizeof(n)),
        STORAGE_PATH_OK);
    assert_string_equal(n, "a+b");
    /* encoded dot segments and encoded slashes are decoded, then refused */
    assert_int_equal(
        storage__split_target("/storage/v1/object/av/%2e%2e/x", P, b, sizeof(b), n, sizeof(n)),
        STORAGE_PATH_DOT_SEGMENT);
    assert_int_equal(
        storage__split_target("/storage/v1/object/av/a%2F..%2Fx", P, b, sizeof(b), n, sizeof(n)),
        STORAGE_PATH_DOT_SEGMENT);
    assert_int_equal(
        storage__split_target("/storage/v1/object/av/%2Fetc", P, b, sizeof(b), n, sizeof(n)),
        STORAGE_PATH_ABSOLUTE);
    assert_int_equal(
        storage__split_target("/storage/v1/object/av/a%00b", P, b, sizeof(b), n, sizeof(n)),
        STORAGE_PATH_BAD_ESCAPE);
    assert_int_equal(
        storage__split_target("/storage/v1/object/av/a%0Ab", P, b, sizeof(b), n, sizeof(n)),
        STORAGE_PATH_CONTROL);
    assert_int_equal(
        storage__split_target("/storage/v1/object/av/a%zz", P, b, sizeof(b), n, sizeof(n)),
        STORAGE_PATH_BAD_ESCAPE);
    assert_int_equal(
        storage__split_target("/storage/v1/object/av/a%5C..", P, b, sizeof(b), n, sizeof(n)),
        STORAGE_PATH_BACKSLASH);
    assert_int_equal(
        storage__split_target("/storage/v1/object/%2e%2e/x", P, b, sizeof(b), n, sizeof(n)),
        STORAGE_PATH_EMPTY);
    assert_int_equal(storage__split_target("/storage/v1/object/av", P, b, sizeof(b), n, sizeof(n)),
                     STORAGE_PATH_EMPTY);
    assert_int_equal(storage__split_target("/storage/v1/object/av", P, b, sizeof(b), NULL, 0),
                     STORAGE_PATH_OK);
    assert_int_equal(storage__split_target("/storage/v1/object/av/x", P, b, sizeof(b), NULL, 0),
                     STORAGE_PATH_EMPTY);
    assert_int_equal(storage__split_target("/other/av/x", P, b, sizeof(b), n, sizeof(n)),
                     STORAGE_PATH_EMPTY);
}

static void test_mime(void **state)
{
    (void)state;
    assert_true(storage__mime_valid("image/png"));
    assert_true(storage__mime_valid("text/plain;charset=UTF-8"));
    assert_false(storage__mime_valid("image"));
    assert_false(storage__mime_valid("/png"));
    assert_false(storage__mime_valid("image/"));
    assert_false(storage__mime_valid("text/plain\r\nX: y"));
    assert_false(storage__mime_valid(""));
    json_t *allowed = json_pack("[s, s]", "image/*", "text/plain");
    assert_true(storage__mime_allowed("image/png", allowed));
    assert_true(storage__mime_allowed("IMAGE/GIF", allowed));
    assert_true(storage__mime_allowed("text/plain;charset=UTF-8", allowed));
    assert_false(storage__mime_allowed("text/html", allowed));
    assert_false(storage__mime_allowed("imagex/png", allowed));
    assert_true(storage__mime_allowed("text/html", NULL));
    json_decref(allowed);
    assert_true(storage__mime_is_active("text/html; charset=utf-8"));
    assert_true(storage__mime_is_active("image/svg+xml"));
    assert_true(storage__mime_is_active("application/xhtml+xml"));
    assert_false(storage__mime_is_active("image/png"));
    assert_false(storage__mime_is_active("text/plain"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_buckets),
        cmocka_unit_test(test_split_target),
        cmocka_unit_test(test_mime),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
