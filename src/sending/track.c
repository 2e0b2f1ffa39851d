/*
 * Tracking tokens and link rewriting (track.h). A token is base64url of
 *   kind (1 byte) | message uuid (16 bytes) | link index (2 bytes, big endian)
 *   | the first 12 bytes of HMAC-SHA256(key, those 19 bytes)
 * 96 bits of MAC: forging one takes 2^96 guesses per try, and every try is
 * an HTTP request.
 */
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/params.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/crypto.h"
#include "core/text.h"
#include "sending/track.h"

#define TRACK_BODY_BYTES 19
#define TRACK_MAC_BYTES  12
#define TRACK_RAW_BYTES  (TRACK_BODY_BYTES + TRACK_MAC_BYTES)

void track_derive_key(const char *secret, unsigned char key[TRACK_KEY_LEN])
{
    static const char label[] = "campaignd e-mail tracking v1";
    unsigned int n = 0;
    HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)label, sizeof(label) - 1,
         key, &n);
}

static bool uuid_to_bytes(const char *s, unsigned char out[16])
{
    if (!s || !cd_is_uuid(s))
        return false;
    size_t k = 0;
    for (const char *p = s; *p; p++) {
        if (*p == '-')
            continue;
        int hi = cd_hex_value(p[0]), lo = cd_hex_value(p[1]);
        out[k++] = (unsigned char)(hi << 4 | lo);
        p++;
    }
    return k == 16;
}

/* HMAC-SHA256 keyed once per thread and key. OpenSSL 3's one-shot HMAC()
 * looks the digest up and keys a new context on every call (1.5-3 us); a
 * context keyed once and duplicated per token costs a third of that, and the
 * send engine signs three or more tokens per message (unsubscribe, open
 * pixel, each link). The cached context of a thread is freed when it exits. */
struct mac_cache {
    unsigned char key[TRACK_KEY_LEN];
    EVP_MAC_CTX *ctx;
};

static pthread_key_t mac_cache_key;
static pthread_once_t mac_cache_once = PTHREAD_ONCE_INIT;
static bool mac_cache_ok;

static void mac_cache_free(void *p)
{
    struct mac_cache *c = p;
    EVP_MAC_CTX_free(c->ctx);
    OPENSSL_cleanse(c->key, sizeof(c->key));
    free(c);
}

static void mac_cache_init(void)
{
    mac_cache_ok = pthread_key_create(&mac_cache_key, mac_cache_free) == 0;
}

/* This thread's HMAC context keyed with key, NULL when none can be made. */
static EVP_MAC_CTX *keyed_mac(const unsigned char key[TRACK_KEY_LEN])
{
    pthread_once(&mac_cache_once, mac_cache_init);
    if (!mac_cache_ok)
        return NULL;
    struct mac_cache *c = pthread_getspecific(mac_cache_key);
    if (c && c->ctx && memcmp(c->key, key, TRACK_KEY_LEN) == 0)
        return c->ctx;
    if (!c) {
        c = calloc(1, sizeof(*c));
        if (!c || pthread_setspecific(mac_cache_key, c) != 0) {
            free(c);
            return NULL;
        }
    }
    EVP_MAC_CTX_free(c->ctx);
    c->ctx = NULL;
    EVP_MAC *hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = hmac ? EVP_MAC_CTX_new(hmac) : NULL;
    EVP_MAC_free(hmac);
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                           OSSL_PARAM_construct_end()};
    if (!ctx || EVP_MAC_init(ctx, key, TRACK_KEY_LEN, params) != 1) {
        EVP_MAC_CTX_free(ctx);
        return NULL;
    }
    memcpy(c->key, key, TRACK_KEY_LEN);
    c->ctx = ctx;
    return ctx;
}

static void mac(const unsigned char key[TRACK_KEY_LEN], const unsigned char *body,
                unsigned char out[32])
{
    EVP_MAC_CTX *base = keyed_mac(key), *c = base ? EVP_MAC_CTX_dup(base) : NULL;
    size_t n = 0;
    bool ok = c && EVP_MAC_update(c, body, TRACK_BODY_BYTES) == 1 &&
              EVP_MAC_final(c, out, &n, 32) == 1 && n == 32;
    EVP_MAC_CTX_free(c);
    if (!ok) { /* the slow path, same result */
        unsigned int len = 0;
        HMAC(EVP_sha256(), key, TRACK_KEY_LEN, body, TRACK_BODY_BYTES, out, &len);
    }
}

bool track_sign(const unsigned char key[TRACK_KEY_LEN], track_kind_t kind, const char *message_id,
                unsigned link, char out[TRACK_TOKEN_LEN + 1])
{
    unsigned char raw[TRACK_RAW_BYTES], md[32];
    if (link > 0xFFFF || !uuid_to_bytes(message_id, raw + 1))
        return false;
    raw[0] = (unsigned char)kind;
    raw[17] = (unsigned char)(link >> 8);
    raw[18] = (unsigned char)(link & 0xFF);
    mac(key, raw, md);
    memcpy(raw + TRACK_BODY_BYTES, md, TRACK_MAC_BYTES);
    cd_base64url_encode(raw, sizeof(raw), out);
    return true;
}

bool track_verify(const unsigned char key[TRACK_KEY_LEN], track_kind_t kind, const char *token,
                  char message_id[37], unsigned *link)
{
    unsigned char raw[TRACK_RAW_BYTES + 3], md[32];
    size_t n = 0;
    if (!token || strlen(token) != TRACK_TOKEN_LEN ||
        !cd_base64url_decode(token, TRACK_TOKEN_LEN, raw, sizeof(raw), &n) ||
        n != TRACK_RAW_BYTES || raw[0] != (unsigned char)kind)
        return false;
    mac(key, raw, md);
    if (CRYPTO_memcmp(md, raw + TRACK_BODY_BYTES, TRACK_MAC_BYTES) != 0)
        return false;
    char hex[33];
    cd_hex_encode(raw + 1, 16, hex);
    snprintf(message_id, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16,
             hex + 20);
    *link = (unsigned)raw[17] << 8 | raw[18];
    return true;
}

/* Decodes &amp; (the only entity a URL in an attribute usually carries). */
static void decode_url(const char *v, size_t n, char *out)
{
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i] == '&' && n - i >= 5 && strncmp(v + i, "&amp;", 5) == 0) {
            out[w++] = '&';
            i += 4;
        } else {
            out[w++] = v[i];
        }
    }
    out[w] = '\0';
}

/* Whether p (inside an <a ...> tag) starts an href attribute: returns the
 * quote character, or 0. */
static char href_at(const char *tag_start, const char *p)
{
    if (strncasecmp(p, "href=", 5) != 0 || (p[5] != '"' && p[5] != '\''))
        return 0;
    char before = p == tag_start ? ' ' : p[-1];
    return (before == ' ' || before == '\t' || before == '\n' || before == '\r') ? p[5] : 0;
}

/* Rewrites the attributes of one <a ...> tag [p, end). */
static bool rewrite_tag(const unsigned char key[TRACK_KEY_LEN], const char *base,
                        const char *message_id, const char *p, const char *end, cd_buf_t *out,
                        json_t *links)
{
    for (const char *h = p; h < end; h++) {
        char q = href_at(p, h);
        if (!q)
            continue;
        const char *v = h + 6, *close = memchr(v, q, (size_t)(end - v));
        size_t len = close ? (size_t)(close - v) : 0;
        if (!close || len >= TRACK_MAX_URL || json_array_size(links) >= TRACK_MAX_LINKS ||
            (strncasecmp(v, "http://", 7) != 0 && strncasecmp(v, "https://", 8) != 0))
            break;
        char url[TRACK_MAX_URL], tok[TRACK_TOKEN_LEN + 1];
        decode_url(v, len, url);
        if (!track_sign(key, TRACK_CLICK, message_id, (unsigned)json_array_size(links), tok) ||
            json_array_append_new(links, json_string(url)) != 0)
            return false;
        return cd_buf_add(out, p, (size_t)(v - p)) && cd_buf_printf(out, "%s/t/c/%s", base, tok) &&
               cd_buf_add(out, close, (size_t)(end - close));
    }
    return cd_buf_add(out, p, (size_t)(end - p));
}

bool track_rewrite_links(const unsigned char key[TRACK_KEY_LEN], const char *base,
                         const char *message_id, const char *html, cd_buf_t *out, json_t *links)
{
    const char *p = html, *lit = html;
    while ((p = strchr(p, '<')) != NULL) {
        if (!((p[1] == 'a' || p[1] == 'A') &&
              (p[2] == ' ' || p[2] == '\t' || p[2] == '\n' || p[2] == '\r'))) {
            p++;
            continue;
        }
        const char *end = strchr(p, '>');
        if (!end)
            break;
        if (!cd_buf_add(out, lit, (size_t)(p - lit)) ||
            !rewrite_tag(key, base, message_id, p, end, out, links))
            return false;
        p = lit = end;
    }
    return cd_buf_adds(out, lit);
}
