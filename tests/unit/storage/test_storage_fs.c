/* Unit tests for storage/storage_fs: the filesystem object store. */
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

static void test_fs_store(void **state)
{
    (void)state;
    char root[] = "/tmp/storage-unit-XXXXXX";
    assert_non_null(mkdtemp(root));
    /* a stale temporary directory of a dead process */
    char stale[256], stale_file[300];
    snprintf(stale, sizeof(stale), "%s/tmp", root);
    assert_int_equal(mkdir(stale, 0700), 0);
    snprintf(stale, sizeof(stale), "%s/tmp/999999-dead", root);
    assert_int_equal(mkdir(stale, 0700), 0);
    snprintf(stale_file, sizeof(stale_file), "%s/half.part", stale);
    FILE *f = fopen(stale_file, "w");
    assert_non_null(f);
    fputs("half", f);
    fclose(f);

    storage_backend_t be;
    assert_true(storage__fs_open(root, &be));
    struct stat st;
    assert_int_not_equal(stat(stale, &st), 0); /* cleaned */

    char key[CD_UUID_LEN + 1], key2[CD_UUID_LEN + 1];
    assert_true(cd_random_uuid(key));
    assert_true(cd_random_uuid(key2));
    storage_put_t *p = NULL;
    assert_true(be.ops->put_begin(be.self, key, &p));
    assert_true(be.ops->put_write(p, "hello ", 6));
    assert_true(be.ops->put_write(p, "world", 5));
    assert_true(be.ops->put_finish(p));
    storage_blob_t b;
    assert_false(be.ops->get(be.self, key, &b)); /* not visible before commit */
    assert_true(be.ops->put_commit(p));
    assert_true(be.ops->get(be.self, key, &b));
    assert_int_equal(b.size, 11);
    char buf[16] = {0};
    assert_int_equal(read(b.fd, buf, sizeof(buf)), 11);
    assert_string_equal(buf, "hello world");
    close(b.fd);

    /* copy into a new put, then move */
    assert_true(be.ops->put_begin(be.self, key2, &p));
    assert_true(be.ops->copy(be.self, key, p));
    assert_true(be.ops->put_finish(p));
    assert_true(be.ops->put_commit(p));
    assert_true(be.ops->get(be.self, key2, &b));
    assert_int_equal(b.size, 11);
    close(b.fd);
    assert_true(be.ops->remove(be.self, key2));
    assert_false(be.ops->get(be.self, key2, &b));
    assert_true(be.ops->move(be.self, key, key2));
    assert_false(be.ops->get(be.self, key, &b));
    assert_true(be.ops->get(be.self, key2, &b));
    close(b.fd);

    /* an aborted put leaves nothing */
    assert_true(be.ops->put_begin(be.self, key, &p));
    assert_true(be.ops->put_write(p, "x", 1));
    be.ops->put_abort(p);
    assert_false(be.ops->get(be.self, key, &b));

    /* keys that are not UUIDs never reach the file system */
    assert_false(be.ops->put_begin(be.self, "../../etc/passwd", &p));
    assert_false(be.ops->get(be.self, "../x", &b));
    assert_true(be.ops->remove(be.self, key2));
    storage__fs_close(&be);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fs_store),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
