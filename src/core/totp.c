/*
 * TOTP (RFC 6238) for the MFA endpoints: HOTP over HMAC-SHA1 from OpenSSL,
 * the 30-second step arithmetic with one step of skew and a replay floor, and
 * base32, the form authenticator apps take secrets in. Base32 is written here
 * because neither OpenSSL nor another library the server already links offers
 * it; it is thirty lines, unit-tested against RFC 4648's vectors.
 */
#include "core/totp.h"

#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

static const char B32[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

size_t totp_base32_encode(const unsigned char *in, size_t len, char *out)
{
    size_t n = 0;
    unsigned buf = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        buf = (buf << 8) | in[i];
        bits += 8;
        while (bits >= 5) {
            out[n++] = B32[(buf >> (bits - 5)) & 31];
            bits -= 5;
        }
        buf &= (1u << bits) - 1;
    }
    if (bits > 0)
        out[n++] = B32[(buf << (5 - bits)) & 31];
    out[n] = '\0';
    return n;
}

static int b32_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a';
    if (c >= '2' && c <= '7')
        return c - '2' + 26;
    return -1;
}

long totp_base32_decode(const char *in, unsigned char *out, size_t outcap)
{
    size_t n = 0;
    unsigned buf = 0;
    int bits = 0;
    for (const char *p = in; *p; p++) {
        if (*p == '=' || *p == ' ')
            continue;
        int v = b32_value(*p);
        if (v < 0)
            return -1;
        buf = (buf << 5) | (unsigned)v;
        bits += 5;
        if (bits >= 8) {
            if (n >= outcap)
                return -1;
            out[n++] = (unsigned char)(buf >> (bits - 8));
            bits -= 8;
        }
        buf &= (1u << bits) - 1;
    }
    if (buf != 0) /* leftover bits must be the zero padding of the last group */
        return -1;
    return (long)n;
}

uint32_t totp_hotp(const unsigned char *key, size_t keylen, uint64_t counter, int digits)
{
    unsigned char msg[8];
    for (int i = 7; i >= 0; i--) {
        msg[i] = (unsigned char)(counter & 0xff);
        counter >>= 8;
    }
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned maclen = 0;
    if (!HMAC(EVP_sha1(), key, (int)keylen, msg, sizeof(msg), mac, &maclen) || maclen != 20)
        return UINT32_MAX; /* never a valid code: at most 8 digits */
    int off = mac[19] & 0x0f;
    uint32_t bin = ((uint32_t)(mac[off] & 0x7f) << 24) | ((uint32_t)mac[off + 1] << 16) |
                   ((uint32_t)mac[off + 2] << 8) | (uint32_t)mac[off + 3];
    uint32_t mod = 1;
    for (int i = 0; i < digits; i++)
        mod *= 10;
    return bin % mod;
}

int64_t totp_step(int64_t unix_time)
{
    return unix_time >= 0 ? unix_time / TOTP_PERIOD : (unix_time - TOTP_PERIOD + 1) / TOTP_PERIOD;
}

bool totp_code_valid(const char *s)
{
    if (!s)
        return false;
    for (int i = 0; i < TOTP_DIGITS; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return s[TOTP_DIGITS] == '\0';
}

bool totp_match(const unsigned char *key, size_t keylen, const char *code, int64_t now,
                int64_t last_used, int64_t *step)
{
    if (!totp_code_valid(code))
        return false;
    uint32_t want = 0;
    for (int i = 0; i < TOTP_DIGITS; i++)
        want = want * 10 + (uint32_t)(code[i] - '0');
    int64_t base = totp_step(now);
    bool found = false;
    /* every candidate step is computed, so the time taken does not tell which matched */
    for (int64_t s = base - 1; s <= base + 1; s++) {
        uint32_t got = totp_hotp(key, keylen, (uint64_t)s, TOTP_DIGITS);
        bool same = (got ^ want) == 0;
        if (same && (last_used < 0 || s > last_used) && !found) {
            *step = s;
            found = true;
        }
    }
    return found;
}

bool totp_new_secret(char out[TOTP_SECRET_BASE32 + 1])
{
    unsigned char raw[TOTP_SECRET_BYTES];
    if (RAND_bytes(raw, sizeof(raw)) != 1)
        return false;
    totp_base32_encode(raw, sizeof(raw), out);
    OPENSSL_cleanse(raw, sizeof(raw));
    return true;
}
