/* Unit tests for storage/storage_multipart: the streaming parser, split at every byte, boundaries
 * and errors. */
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

typedef struct mp_capture {
    char log[4096];
    size_t len;
} mp_capture_t;

static void cap(mp_capture_t *c, const char *s, size_t n)
{
    if (c->len + n < sizeof(c->log)) {
        memcpy(c->log + c->len, s, n);
        c->len += n;
        c->log[c->len] = '\0';
    }
}

static bool cb_begin(void *arg, const char *name, const char *filename, const char *ct)
{
    char line[512];
    int n =
        snprintf(line, sizeof(line), "[%s|%s|%s]", name, filename ? filename : "-", ct ? ct : "-");
    cap(arg, line, (size_t)n);
    return true;
}

static bool cb_data(void *arg, const char *d, size_t n)
{
    cap(arg, d, n);
    return true;
}

static bool cb_end(void *arg)
{
    cap(arg, "<end>", 5);
    return true;
}

static const storage_mp_callbacks_t CBS = {cb_begin, cb_data, cb_end};

static const char BODY[] = "preamble\r\n"
                           "------b0undary\r\n"
                           "Content-Disposition: form-data; name=\"cacheControl\"\r\n"
                           "\r\n"
                           "3600\r\n"
                           "------b0undary\r\n"
                           "Content-Disposition: form-data; name=\"\"; filename=\"blob\"\r\n"
                           "Content-Type: image/png\r\n"
                           "\r\n"
                           "\r\n--x\r\n----b0undar\r\r\n------b0undarX\0bin\r\n"
                           "------b0undary--\r\n"
                           "epilogue";
static const char EXPECT[] = "[cacheControl|-|-]3600<end>[|blob|image/png]"
                             "\r\n--x\r\n----b0undar\r\r\n------b0undarX\0bin<end>";

static void run_split(size_t step)
{
    storage_multipart_t m;
    mp_capture_t c = {0};
    storage__mp_init(&m, "----b0undary", &CBS, &c);
    size_t len = sizeof(BODY) - 1;
    for (size_t i = 0; i < len; i += step) {
        size_t n = len - i < step ? len - i : step;
        assert_true(storage__mp_feed(&m, BODY + i, n));
    }
    assert_true(storage__mp_done(&m));
    assert_int_equal(c.len, sizeof(EXPECT) - 1);
    assert_memory_equal(c.log, EXPECT, sizeof(EXPECT) - 1);
}

static void test_multipart_splits(void **state)
{
    (void)state;
    for (size_t step = 1; step <= sizeof(BODY); step++)
        run_split(step);
}

static void test_multipart_boundary(void **state)
{
    (void)state;
    char b[STORAGE_MP_MAX_BOUNDARY + 1];
    assert_true(storage__mp_boundary("multipart/form-data; boundary=----abc", b, sizeof(b)));
    assert_string_equal(b, "----abc");
    assert_true(
        storage__mp_boundary("Multipart/Form-Data; charset=x; boundary=\"q u;o\"", b, sizeof(b)));
    assert_string_equal(b, "q u;o");
    assert_false(storage__mp_boundary("multipart/form-data", b, sizeof(b)));
    assert_false(storage__mp_boundary("text/plain; boundary=x", b, sizeof(b)));
    assert_false(storage__mp_boundary("multipart/form-data; boundary=", b, sizeof(b)));
    char longb[200];
    snprintf(longb, sizeof(longb), "multipart/form-data; boundary=%075d", 0);
    assert_false(storage__mp_boundary(longb, b, sizeof(b)));
}

static bool feed_str(storage_multipart_t *m, const char *s)
{
    return storage__mp_feed(m, s, strlen(s));
}

static void test_multipart_errors(void **state)
{
    (void)state;
    storage_multipart_t m;
    mp_capture_t c = {0};
    /* no Content-Disposition */
    storage__mp_init(&m, "b", &CBS, &c);
    assert_false(feed_str(&m, "--b\r\nContent-Type: x/y\r\n\r\ndata\r\n--b--"));
    /* headers too long */
    storage__mp_init(&m, "b", &CBS, &c);
    assert_true(feed_str(&m, "--b\r\nX: "));
    char junk[1024];
    memset(junk, 'a', sizeof(junk));
    bool ok = true;
    for (int i = 0; i < 10 && ok; i++)
        ok = storage__mp_feed(&m, junk, sizeof(junk));
    assert_false(ok);
    /* garbage after a delimiter */
    storage__mp_init(&m, "b", &CBS, &c);
    assert_false(feed_str(&m, "--bX"));
    /* truncated body: never done */
    storage__mp_init(&m, "b", &CBS, &c);
    assert_true(feed_str(&m, "--b\r\nContent-Disposition: form-data; name=\"\"\r\n\r\nabc\r\n--"));
    assert_false(storage__mp_done(&m));
    /* too many parts */
    storage__mp_init(&m, "b", &CBS, &c);
    ok = feed_str(&m, "--b");
    for (int i = 0; i <= STORAGE_MP_MAX_PARTS && ok; i++)
        ok = feed_str(&m, "\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\nv\r\n--b");
    assert_false(ok);
    /* callbacks may be left out */
    storage__mp_init(&m, "b", &(storage_mp_callbacks_t){cb_begin, NULL, NULL}, &c);
    c.len = 0;
    assert_true(feed_str(&m, "--b\r\nContent-Disposition: form-data; name=a\r\n\r\nxyz\r\n--b--"));
    assert_true(storage__mp_done(&m));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_multipart_splits),
        cmocka_unit_test(test_multipart_boundary),
        cmocka_unit_test(test_multipart_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
