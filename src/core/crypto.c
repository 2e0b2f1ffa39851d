/*
 * Cryptographic helpers: everything random comes from OpenSSL's CSPRNG.
 */
#include "core/crypto.h"

#include "core/text.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>

bool cd_random_uuid(char out[CD_UUID_LEN + 1])
{
    unsigned char b[16];
    if (RAND_bytes(b, sizeof(b)) != 1)
        return false;
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    snprintf(out, CD_UUID_LEN + 1,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
             b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
             b[15]);
    return true;
}

bool cd_random_token(char out[CD_TOKEN_LEN + 1])
{
    unsigned char b[32];
    if (RAND_bytes(b, sizeof(b)) != 1)
        return false;
    cd_base64url_encode(b, sizeof(b), out);
    return true;
}

void cd_sha256_hex(const char *s, size_t len, char out[CD_SHA256_HEX_LEN + 1])
{
    unsigned char md[32];
    unsigned int n = 0;
    EVP_Digest(s, len, md, &n, EVP_sha256(), NULL);
    for (unsigned i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
    out[CD_SHA256_HEX_LEN] = '\0';
}

void cd_hmac_b64url(const unsigned char *key, size_t keylen, const char *msg, size_t len,
                    char out[CD_TOKEN_LEN + 1])
{
    unsigned char md[32];
    unsigned int n = 0;
    HMAC(EVP_sha256(), key, (int)keylen, (const unsigned char *)msg, len, md, &n);
    cd_base64url_encode(md, sizeof(md), out);
}

bool cd_is_uuid(const char *s)
{
    static const char shape[] = "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx";
    if (strlen(s) != CD_UUID_LEN)
        return false;
    for (size_t i = 0; i < CD_UUID_LEN; i++) {
        char c = s[i];
        if (shape[i] == '-') {
            if (c != '-')
                return false;
        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
            return false;
        }
    }
    return true;
}

bool cd_secure_equal(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la != lb)
        return false;
    return CRYPTO_memcmp(a, b, la) == 0;
}
