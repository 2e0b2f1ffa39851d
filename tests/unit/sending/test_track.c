/* Unit tests for sending/track.c: tokens sign and verify, and nothing else
 * verifies (another kind, another key, one changed character, other
 * lengths); links are rewritten into click URLs in order, only http(s) ones,
 * and the URL list holds the originals. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>

#include "core/text.h"

#include "sending/track.h"

static const char *ID = "3f2b8c1e-9d4a-4e7b-8c2d-1a2b3c4d5e6f";

static void test_sign_verify(void **state)
{
    (void)state;
    unsigned char key[TRACK_KEY_LEN], other[TRACK_KEY_LEN];
    track_derive_key("secret-one-which-is-long-enough", key);
    track_derive_key("secret-two-which-is-long-enough", other);
    char tok[TRACK_TOKEN_LEN + 1], id[37];
    unsigned link = 99;
    assert_true(track_sign(key, TRACK_CLICK, ID, 7, tok));
    assert_int_equal(strlen(tok), TRACK_TOKEN_LEN);
    assert_true(track_verify(key, TRACK_CLICK, tok, id, &link));
    assert_string_equal(id, ID);
    assert_int_equal(link, 7);
    /* another kind, another key */
    assert_false(track_verify(key, TRACK_OPEN, tok, id, &link));
    assert_false(track_verify(other, TRACK_CLICK, tok, id, &link));
    /* every single-character change is refused */
    for (size_t i = 0; i < TRACK_TOKEN_LEN; i++) {
        char bad[TRACK_TOKEN_LEN + 1];
        memcpy(bad, tok, sizeof(bad));
        bad[i] = bad[i] == 'A' ? 'B' : 'A';
        assert_false(track_verify(key, TRACK_CLICK, bad, id, &link));
    }
    assert_false(track_verify(key, TRACK_CLICK, "", id, &link));
    assert_false(track_verify(key, TRACK_CLICK, NULL, id, &link));
    char longer[TRACK_TOKEN_LEN + 3];
    snprintf(longer, sizeof(longer), "%sAA", tok);
    assert_false(track_verify(key, TRACK_CLICK, longer, id, &link));
    assert_false(
        track_verify(key, TRACK_CLICK, "++++++++++++++++++++++++++++++++++++++++++", id, &link));
    /* upper-case UUIDs sign the same message */
    char upper[37], tok2[TRACK_TOKEN_LEN + 1];
    for (size_t i = 0; i < 37; i++)
        upper[i] = (char)((ID[i] >= 'a' && ID[i] <= 'f') ? ID[i] - 32 : ID[i]);
    assert_true(track_sign(key, TRACK_CLICK, upper, 7, tok2));
    assert_string_equal(tok, tok2);
    assert_false(track_sign(key, TRACK_OPEN, "not-a-uuid", 0, tok));
    assert_false(track_sign(key, TRACK_CLICK, ID, 70000, tok));
}

/* The token computed independently: kind | uuid bytes | link (big endian)
 * | the first 12 bytes of HMAC-SHA256 (OpenSSL's one-shot HMAC), base64url. */
static void expected_token(const unsigned char key[TRACK_KEY_LEN], track_kind_t kind, unsigned link,
                           char out[TRACK_TOKEN_LEN + 1])
{
    static const unsigned char id[16] = {0x3f, 0x2b, 0x8c, 0x1e, 0x9d, 0x4a, 0x4e, 0x7b,
                                         0x8c, 0x2d, 0x1a, 0x2b, 0x3c, 0x4d, 0x5e, 0x6f};
    unsigned char raw[31], md[32];
    unsigned int n = 0;
    raw[0] = (unsigned char)kind;
    memcpy(raw + 1, id, 16);
    raw[17] = (unsigned char)(link >> 8);
    raw[18] = (unsigned char)(link & 0xFF);
    HMAC(EVP_sha256(), key, TRACK_KEY_LEN, raw, 19, md, &n);
    memcpy(raw + 19, md, 12);
    out[cd_base64url_encode(raw, sizeof(raw), out)] = '\0';
}

/* Signs with two keys in turn (the per-thread keyed context is re-keyed
 * each time) and checks every token against the one-shot HMAC. */
static void *sign_alternating(void *arg)
{
    int *bad = arg;
    unsigned char k1[TRACK_KEY_LEN], k2[TRACK_KEY_LEN];
    track_derive_key("secret-one-which-is-long-enough", k1);
    track_derive_key("secret-two-which-is-long-enough", k2);
    for (unsigned i = 0; i < 50; i++) {
        const unsigned char *k = (i / 3) % 2 ? k2 : k1;
        track_kind_t kind = i % 2 ? TRACK_CLICK : TRACK_OPEN;
        char tok[TRACK_TOKEN_LEN + 1], want[TRACK_TOKEN_LEN + 8];
        if (!track_sign(k, kind, ID, i, tok))
            (*bad)++;
        expected_token(k, kind, i, want);
        if (strcmp(tok, want) != 0)
            (*bad)++;
    }
    return NULL;
}

static void test_sign_matches_hmac(void **state)
{
    (void)state;
    int bad = 0, bad_thread = 0;
    sign_alternating(&bad);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, sign_alternating, &bad_thread), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(bad, 0);
    assert_int_equal(bad_thread, 0);
}

static void test_rewrite(void **state)
{
    (void)state;
    unsigned char key[TRACK_KEY_LEN];
    track_derive_key("k", key);
    const char *html = "<p><a href=\"https://a.test/x?y=1&amp;z=2\">A</a>"
                       "<a class=\"c\" href='http://b.test/'>B</a>"
                       "<a href=\"mailto:m@test\">M</a><a href=\"#top\">T</a>"
                       "<abbr href=\"https://no.test\">no</abbr></p>";
    cd_buf_t out;
    cd_buf_init(&out, 1 << 16);
    json_t *links = json_array();
    assert_true(track_rewrite_links(key, "https://cd.test", ID, html, &out, links));
    assert_int_equal(json_array_size(links), 2);
    assert_string_equal(json_string_value(json_array_get(links, 0)), "https://a.test/x?y=1&z=2");
    assert_string_equal(json_string_value(json_array_get(links, 1)), "http://b.test/");
    const char *s = cd_buf_str(&out);
    assert_null(strstr(s, "a.test"));
    assert_null(strstr(s, "b.test"));
    assert_non_null(strstr(s, "mailto:m@test"));
    assert_non_null(strstr(s, "href=\"#top\""));
    assert_non_null(strstr(s, "https://no.test"));
    assert_non_null(strstr(s, "class=\"c\""));
    /* the second link's token verifies as link 1 of this message */
    const char *second = strstr(strstr(s, "/t/c/") + 1, "/t/c/");
    assert_non_null(second);
    char tok[TRACK_TOKEN_LEN + 1], id[37];
    memcpy(tok, second + 5, TRACK_TOKEN_LEN);
    tok[TRACK_TOKEN_LEN] = '\0';
    unsigned link = 9;
    assert_true(track_verify(key, TRACK_CLICK, tok, id, &link));
    assert_int_equal(link, 1);
    json_decref(links);
    cd_buf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sign_verify),
        cmocka_unit_test(test_rewrite),
        cmocka_unit_test(test_sign_matches_hmac),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
