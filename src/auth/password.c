/*
 * Password policy and bcrypt hashing through libxcrypt (crypt_r, crypt_gensalt_rn).
 *
 * bcrypt, because Supabase Auth stores bcrypt hashes ("$2a$10$..."): campaignd can take over
 * an exported auth.users table and hand its own hashes back. bcrypt reads at most 72 bytes of
 * a password and silently ignores the rest, so longer passwords are refused rather than
 * truncated, both when hashing and when verifying.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* strnlen */
#endif

#include "auth/password.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <crypt.h>
#include <openssl/crypto.h>

/* "$2b$10$" + 22 characters of salt + 31 characters of hash. */
#define PASSWORD_BCRYPT_LEN    60
#define PASSWORD_BCRYPT_PREFIX 7
/* Lowest cost bcrypt itself accepts; stored hashes from elsewhere may use it. */
#define PASSWORD_VERIFY_COST_MIN 4

/* True for the characters of bcrypt's own base64 alphabet ("./A-Za-z0-9"). */
static bool is_bcrypt_b64(char c)
{
    return c == '.' || c == '/' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c >= '0' && c <= '9');
}

/* True if h is exactly "$2{a,b,y}$NN$" + 53 bcrypt-base64 characters with a cost NN from
 * PASSWORD_VERIFY_COST_MIN to PASSWORD_COST_MAX. The upper bound keeps a planted or imported
 * hash with an absurd cost (31 = days of CPU) from turning each sign-in into a denial of
 * service. "$2x$" (the buggy pre-2011 variant) is refused. */
static bool bcrypt_hash_well_formed(const char *h)
{
    int cost;

    if (strnlen(h, PASSWORD_BCRYPT_LEN + 1) != PASSWORD_BCRYPT_LEN)
        return false;
    if (h[0] != '$' || h[1] != '2' || (h[2] != 'a' && h[2] != 'b' && h[2] != 'y') || h[3] != '$' ||
        h[6] != '$')
        return false;
    if (h[4] < '0' || h[4] > '9' || h[5] < '0' || h[5] > '9')
        return false;
    cost = (h[4] - '0') * 10 + (h[5] - '0');
    if (cost < PASSWORD_VERIFY_COST_MIN || cost > PASSWORD_COST_MAX)
        return false;
    for (size_t i = PASSWORD_BCRYPT_PREFIX; i < PASSWORD_BCRYPT_LEN; i++) {
        if (!is_bcrypt_b64(h[i]))
            return false;
    }
    return true;
}

/* Runs crypt_r(pw, setting) with a zeroed heap crypt_data (about 32 KiB: too big for worker
 * stacks) and copies a well-formed bcrypt result into out[PASSWORD_BCRYPT_LEN + 1]. libxcrypt
 * signals failure with NULL or a "*0"/"*1" token, which the shape check rejects. The scratch
 * area, which holds the hash and key schedule, is wiped before it is freed. */
static bool run_bcrypt(const char *pw, const char *setting, char *out)
{
    struct crypt_data *cd = calloc(1, sizeof(*cd));
    const char *h;
    bool ok = false;

    if (cd == NULL)
        goto fail;
    h = crypt_r(pw, setting, cd);
    if (h == NULL || !bcrypt_hash_well_formed(h))
        goto fail;
    memcpy(out, h, PASSWORD_BCRYPT_LEN + 1);
    ok = true;

fail:
    if (cd != NULL) {
        OPENSSL_cleanse(cd, sizeof(*cd));
        free(cd);
    }
    return ok;
}

password_policy_t password_check_policy(const char *pw, size_t len, size_t min_len)
{
    if (pw == NULL) /* outside the contract unless len == 0; never OK */
        return len == 0 && min_len == 0 ? PASSWORD_OK : PASSWORD_TOO_SHORT;
    if (memchr(pw, '\0', len) != NULL)
        return PASSWORD_HAS_NUL;
    if (len > PASSWORD_MAX_BYTES)
        return PASSWORD_TOO_LONG;
    if (len < min_len)
        return PASSWORD_TOO_SHORT;
    return PASSWORD_OK;
}

bool password_hash(const char *pw, int cost, char *out, size_t out_len)
{
    char setting[CRYPT_GENSALT_OUTPUT_SIZE];
    char hash[PASSWORD_BCRYPT_LEN + 1];

    if (out != NULL && out_len > 0)
        out[0] = '\0';
    if (pw == NULL || out == NULL || out_len < sizeof(hash))
        return false;
    if (cost < PASSWORD_COST_MIN || cost > PASSWORD_COST_MAX)
        return false;
    if (strnlen(pw, PASSWORD_MAX_BYTES + 1) > PASSWORD_MAX_BYTES)
        return false;
    /* NULL random input: libxcrypt draws the 16 salt bytes from the OS CSPRNG itself. */
    if (crypt_gensalt_rn("$2b$", (unsigned long)cost, NULL, 0, setting, (int)sizeof(setting)) ==
        NULL)
        return false;
    if (!run_bcrypt(pw, setting, hash))
        return false;
    memcpy(out, hash, sizeof(hash));
    OPENSSL_cleanse(hash, sizeof(hash));
    return true;
}

bool password_verify(const char *pw, const char *stored_hash)
{
    char hash[PASSWORD_BCRYPT_LEN + 1];
    bool ok;

    if (pw == NULL || stored_hash == NULL)
        return false;
    if (strnlen(pw, PASSWORD_MAX_BYTES + 1) > PASSWORD_MAX_BYTES)
        return false;
    if (!bcrypt_hash_well_formed(stored_hash))
        return false;
    if (!run_bcrypt(pw, stored_hash, hash))
        return false;
    ok = CRYPTO_memcmp(hash, stored_hash, PASSWORD_BCRYPT_LEN) == 0;
    OPENSSL_cleanse(hash, sizeof(hash));
    return ok;
}

/* One dummy hash per accepted cost, filled under dummy_lock on first use ("" = not yet). */
static pthread_mutex_t dummy_lock = PTHREAD_MUTEX_INITIALIZER;
static char dummy_hashes[PASSWORD_COST_MAX + 1][PASSWORD_HASH_BYTES];

bool password_verify_dummy(const char *pw, int cost)
{
    char hash[PASSWORD_HASH_BYTES];
    bool matched;

    if (cost < PASSWORD_COST_MIN || cost > PASSWORD_COST_MAX)
        return false;
    if (pthread_mutex_lock(&dummy_lock) != 0)
        return false;
    /* The password of the dummy hash does not matter: the result is discarded. */
    if (dummy_hashes[cost][0] == '\0' &&
        !password_hash("campaignd-no-such-user", cost, dummy_hashes[cost], PASSWORD_HASH_BYTES))
        dummy_hashes[cost][0] = '\0';
    memcpy(hash, dummy_hashes[cost], sizeof(hash));
    (void)pthread_mutex_unlock(&dummy_lock);

    if (hash[0] != '\0') {
        matched = password_verify(pw, hash);
        (void)matched;
    }
    return false;
}
