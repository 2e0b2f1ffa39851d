/*
 * Password policy and bcrypt hashing for campaignd's auth layer, compatible with the hashes
 * Supabase Auth stores in auth.users.encrypted_password ("$2a$10$..."), so users can be
 * migrated in both directions.
 */
#ifndef CD_AUTH_PASSWORD_H
#define CD_AUTH_PASSWORD_H

#include <stdbool.h>
#include <stddef.h>

#include "core/common.h"

/* bcrypt's limit: longer passwords are refused, never truncated. */
#define PASSWORD_MAX_BYTES 72
/* Accepted bcrypt cost range for new hashes (Supabase uses 10). */
#define PASSWORD_COST_MIN 10
#define PASSWORD_COST_MAX 15
/* Size of an output buffer that always holds a bcrypt hash (60 characters) and its NUL. */
#define PASSWORD_HASH_BYTES 64

/* Result of password_check_policy. */
typedef enum {
    PASSWORD_OK,
    PASSWORD_TOO_SHORT, /* fewer than min_len bytes */
    PASSWORD_TOO_LONG,  /* more than PASSWORD_MAX_BYTES bytes */
    PASSWORD_HAS_NUL,   /* a NUL byte inside the len bytes: it could not survive as a C string */
} password_policy_t;

/* Checks a candidate password of len bytes (pw may be NULL only when len is 0) against the
 * policy: at least min_len bytes, at most PASSWORD_MAX_BYTES bytes, no NUL byte. Checked in the
 * order NUL, too long, too short; the first failure is returned. */
CD_MUSTCHECK password_policy_t password_check_policy(const char *pw, size_t len, size_t min_len);

/* Hashes the NUL-terminated pw with bcrypt "$2b$" at `cost` (PASSWORD_COST_MIN ..
 * PASSWORD_COST_MAX; anything else is refused) and writes the hash, NUL-terminated, into out
 * (out_len >= PASSWORD_HASH_BYTES is always enough). The salt comes from the OS CSPRNG
 * (crypt_gensalt_rn with NULL random input). Returns false, leaving out as an empty string when
 * out_len > 0, if pw is NULL or longer than PASSWORD_MAX_BYTES, the cost is out of range, the
 * buffer is too small, or libcrypt fails. Thread-safe; takes bcrypt time (~50-100 ms at 10). */
CD_MUSTCHECK bool password_hash(const char *pw, int cost, char *out, size_t out_len);

/* Verifies the NUL-terminated pw against stored_hash, which must be a well-formed bcrypt hash:
 * "$2a$", "$2b$" or "$2y$", a two-digit cost from 04 to PASSWORD_COST_MAX, "$" and 53 characters
 * of bcrypt base64 (60 characters in all). Returns true only on a match; false for a wrong
 * password, a pw longer than PASSWORD_MAX_BYTES (bcrypt would silently truncate it), NULL
 * arguments or any malformed hash (including "", "$2b$" and the crypt failure token "*0").
 * The final comparison is constant-time. A malformed hash returns at once: for accounts without
 * a usable hash (OAuth-only users, empty encrypted_password) call password_verify_dummy instead,
 * so that timing does not tell them apart. Thread-safe. */
CD_MUSTCHECK bool password_verify(const char *pw, const char *stored_hash);

/* Burns the same time as password_verify against a hash of `cost`, for sign-in attempts on
 * unknown users, so that response time does not reveal whether an account exists. The dummy
 * hash for each cost is computed once, thread-safely, at first use. Always returns false
 * (also for a cost outside PASSWORD_COST_MIN .. PASSWORD_COST_MAX). */
bool password_verify_dummy(const char *pw, int cost);

#endif
