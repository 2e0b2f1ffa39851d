/*
 * RS256 JSON Web Tokens for the connectors that authenticate with a key pair:
 * Google service accounts (GA4, BigQuery: the JWT-bearer grant of RFC 7523)
 * and Snowflake (key-pair authentication). Signed with OpenSSL's EVP
 * interface; core/jwt.c stays HS256-only, since it verifies client tokens.
 */
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/text.h"
#include "importer/connectors.h"

#define JWT_PART_MAX (16 * 1024)

/* A PEM key as credentials can hold it (their values may not contain line
 * breaks): with "\\n" escapes (as in a service-account key file) or with
 * spaces where the lines end. Returns a malloc'd PEM with real lines. */
static char *pem_lines(const char *in)
{
    size_t n = strlen(in);
    char *out = malloc(n + 3);
    if (!out)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (in[i] == '\\' && in[i + 1] == 'n') {
            out[o++] = '\n';
            i++;
        } else {
            out[o++] = in[i];
        }
    }
    out[o] = '\0';
    if (strchr(out, '\n'))
        return out;
    /* one line: "-----BEGIN X----- base64 base64 -----END X-----" */
    char *body = strstr(out, "-----BEGIN ");
    body = body ? strstr(body + 11, "-----") : NULL;
    char *end = body ? strstr(body + 5, "-----END ") : NULL;
    if (!end)
        return out;
    for (char *p = body + 5; p < end; p++)
        if (*p == ' ')
            *p = '\n';
    if (end[-1] != '\n') {
        memmove(end + 1, end, strlen(end) + 1);
        *end = '\n';
    }
    return out;
}

static EVP_PKEY *load_key(const char *pem_in, char *err, size_t errlen)
{
    if (!pem_in || !*pem_in) {
        snprintf(err, errlen, "the private key is missing from the credentials");
        return NULL;
    }
    char *pem = pem_lines(pem_in);
    BIO *bio = pem ? BIO_new_mem_buf(pem, -1) : NULL;
    EVP_PKEY *key = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    free(pem);
    ERR_clear_error();
    if (!key) {
        snprintf(err, errlen,
                 "the private key in the credentials is not a PEM RSA key (-----BEGIN PRIVATE "
                 "KEY-----): paste the key file as it was downloaded, then %s",
                 CONN_RECONNECT);
        return NULL;
    }
    if (EVP_PKEY_get_base_id(key) != EVP_PKEY_RSA) {
        EVP_PKEY_free(key);
        snprintf(err, errlen, "the private key in the credentials is not an RSA key");
        return NULL;
    }
    return key;
}

/* base64url(JSON) of a part into b. */
static bool add_part(cd_buf_t *b, const json_t *part)
{
    char *txt = json_dumps(part, JSON_COMPACT);
    if (!txt)
        return false;
    size_t n = strlen(txt);
    char *enc = malloc(4 * (n / 3 + 1) + 1);
    bool ok = enc != NULL;
    if (ok) {
        size_t m = cd_base64url_encode((const unsigned char *)txt, n, enc);
        ok = cd_buf_add(b, enc, m);
    }
    free(enc);
    free(txt);
    return ok;
}

char *conn_jwt_rs256(const json_t *header, const json_t *claims, const char *pem, char *err,
                     size_t errlen)
{
    EVP_PKEY *key = load_key(pem, err, errlen);
    if (!key)
        return NULL;
    cd_buf_t b;
    cd_buf_init(&b, 3 * JWT_PART_MAX);
    char *token = NULL;
    unsigned char *sig = NULL;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    size_t siglen = 0;
    if (!md || !add_part(&b, header) || !cd_buf_add(&b, ".", 1) || !add_part(&b, claims) ||
        EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key) != 1 ||
        EVP_DigestSign(md, NULL, &siglen, (const unsigned char *)b.data, b.len) != 1 ||
        !(sig = malloc(siglen)) ||
        EVP_DigestSign(md, sig, &siglen, (const unsigned char *)b.data, b.len) != 1) {
        snprintf(err, errlen, "cannot sign the token with the private key");
        goto out;
    }
    char *enc = malloc(4 * (siglen / 3 + 1) + 1);
    if (!enc) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    size_t m = cd_base64url_encode(sig, siglen, enc);
    bool ok = cd_buf_add(&b, ".", 1) && cd_buf_add(&b, enc, m);
    free(enc);
    if (!ok) {
        snprintf(err, errlen, "the token is too large");
        goto out;
    }
    token = cd_buf_take(&b);
out:
    ERR_clear_error();
    free(sig);
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(key);
    cd_buf_free(&b);
    return token;
}

bool conn_key_fingerprint(const char *pem, char *out, size_t outlen, char *err, size_t errlen)
{
    EVP_PKEY *key = load_key(pem, err, errlen);
    if (!key)
        return false;
    unsigned char *der = NULL;
    int n = i2d_PUBKEY(key, &der);
    EVP_PKEY_free(key);
    if (n <= 0) {
        ERR_clear_error();
        snprintf(err, errlen, "cannot read the public key of the private key");
        return false;
    }
    unsigned char dig[SHA256_DIGEST_LENGTH];
    SHA256(der, (size_t)n, dig);
    OPENSSL_free(der);
    unsigned char b64[64];
    int m = EVP_EncodeBlock(b64, dig, SHA256_DIGEST_LENGTH);
    int w = snprintf(out, outlen, "SHA256:%.*s", m, (const char *)b64);
    if (w < 0 || (size_t)w >= outlen) {
        snprintf(err, errlen, "the fingerprint does not fit");
        return false;
    }
    return true;
}
