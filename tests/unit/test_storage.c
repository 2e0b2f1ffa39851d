/* Unit tests for storage (src/storage/): object-name and bucket validation,
 * raw-target splitting, MIME checks, signed-URL tokens (HMAC, expiry,
 * tampering), the streaming multipart parser (split at every byte), and the
 * file-system byte store (temporary files invisible until commit, stale
 * temporary files removed). */
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
    /* inline only for an allow-list of passive types; everything else is an attachment */
    assert_true(storage__mime_inline("image/png"));
    assert_true(storage__mime_inline("IMAGE/JPEG"));
    assert_true(storage__mime_inline("image/webp"));
    assert_true(storage__mime_inline("application/pdf"));
    assert_true(storage__mime_inline("text/plain; charset=utf-8"));
    assert_false(storage__mime_inline("text/html; charset=utf-8"));
    assert_false(storage__mime_inline("image/svg+xml"));
    assert_false(storage__mime_inline("IMAGE/SVG+XML"));
    assert_false(storage__mime_inline("image/x.svg"));
    assert_false(storage__mime_inline("image/foo+xml"));
    assert_false(storage__mime_inline("application/xhtml+xml"));
    assert_false(storage__mime_inline("text/xsl")); /* an XSLT with an XHTML script */
    assert_false(storage__mime_inline("text/csv"));
    assert_false(storage__mime_inline("text/plainx"));
    assert_false(storage__mime_inline("application/octet-stream"));
    assert_false(storage__mime_inline("video/mp4"));
    assert_false(storage__mime_inline("multipart/x-mixed-replace"));
    assert_false(storage__mime_inline(""));
    assert_false(storage__mime_inline(NULL));
}

static const unsigned char SECRET[] = "0123456789abcdef0123456789abcdef-test";

static void test_tokens(void **state)
{
    (void)state;
    json_t *claims = json_pack("{s:s, s:s, s:I}", "url", "b/a.png", "scope", "download", "exp",
                               (json_int_t)2000);
    char *tok = storage__token_sign(claims, SECRET, sizeof(SECRET) - 1);
    json_decref(claims);
    assert_non_null(tok);
    json_t *out = NULL;
    assert_int_equal(storage__token_verify(tok, SECRET, sizeof(SECRET) - 1, 1000, &out),
                     STORAGE_TOKEN_OK);
    assert_string_equal(json_string_value(json_object_get(out, "url")), "b/a.png");
    json_decref(out);
    /* expired: exp <= now */
    assert_int_equal(storage__token_verify(tok, SECRET, sizeof(SECRET) - 1, 2000, &out),
                     STORAGE_TOKEN_EXPIRED);
    assert_null(out);
    /* another secret */
    assert_int_equal(storage__token_verify(tok, (const unsigned char *)"other-secret-other-secret",
                                           25, 1000, &out),
                     STORAGE_TOKEN_SIGNATURE);
    /* a changed payload byte breaks the HMAC */
    char *bad = strdup(tok);
    char *dot = strchr(bad, '.');
    dot[3] = dot[3] == 'A' ? 'B' : 'A';
    assert_int_equal(storage__token_verify(bad, SECRET, sizeof(SECRET) - 1, 1000, &out),
                     STORAGE_TOKEN_SIGNATURE);
    free(bad);
    /* a truncated signature */
    bad = strdup(tok);
    bad[strlen(bad) - 1] = '\0';
    assert_int_equal(storage__token_verify(bad, SECRET, sizeof(SECRET) - 1, 1000, &out),
                     STORAGE_TOKEN_MALFORMED);
    free(bad);
    /* the HMAC is HMAC-SHA256(K, header.payload) in base64url, with the key
     * K = HMAC-SHA256(secret, label) derived from the JWT secret: a token
     * signed with the JWT secret itself (an access token's key) is refused */
    char sig[CD_TOKEN_LEN + 1];
    const char *last = strrchr(tok, '.');
    cd_hmac_b64url(SECRET, sizeof(SECRET) - 1, tok, (size_t)(last - tok), sig);
    assert_string_not_equal(sig, last + 1);
    unsigned char key[32];
    unsigned int klen = 0;
    static const char label[] = "campaignd storage url token v1";
    HMAC(EVP_sha256(), SECRET, (int)(sizeof(SECRET) - 1), (const unsigned char *)label,
         sizeof(label) - 1, key, &klen);
    cd_hmac_b64url(key, sizeof(key), tok, (size_t)(last - tok), sig);
    assert_string_equal(sig, last + 1);
    free(tok);
    /* a token with alg none is not ours */
    assert_int_equal(
        storage__token_verify("eyJhbGciOiJub25lIn0.e30.", SECRET, sizeof(SECRET) - 1, 1000, &out),
        STORAGE_TOKEN_MALFORMED);
    /* no exp */
    claims = json_pack("{s:s}", "url", "b/a");
    tok = storage__token_sign(claims, SECRET, sizeof(SECRET) - 1);
    json_decref(claims);
    assert_int_equal(storage__token_verify(tok, SECRET, sizeof(SECRET) - 1, 1000, &out),
                     STORAGE_TOKEN_EXPIRED);
    free(tok);
}

/* ------------------------------------------------------------ multipart */

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

/* ------------------------------------------------------------ file store */

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
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_buckets),
        cmocka_unit_test(test_split_target),
        cmocka_unit_test(test_mime),
        cmocka_unit_test(test_tokens),
        cmocka_unit_test(test_multipart_splits),
        cmocka_unit_test(test_multipart_boundary),
        cmocka_unit_test(test_multipart_errors),
        cmocka_unit_test(test_fs_store),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
