/*
 * HS256 JSON Web Tokens: strict verification of the tokens clients present
 * (apikey and Bearer access tokens) and signing of the tokens campaignd mints.
 * Only HS256 with the shared project secret is accepted, as legacy Supabase does.
 */
#ifndef CD_CORE_JWT_H
#define CD_CORE_JWT_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "core/common.h"

/* Longest compact token accepted, in bytes (excluding the NUL). */
#define JWT_MAX_TOKEN_BYTES 8192

/* Outcome of jwt_verify. Every value other than JWT_OK means "do not trust this token". */
typedef enum {
    JWT_OK = 0,
    /* Not three base64url parts, bad base64url (padding, '+', '/', non-canonical trailing
     * bits), header or payload not a JSON object (or with duplicate keys), a time claim that
     * is not an integral number, or longer than JWT_MAX_TOKEN_BYTES. */
    JWT_ERR_MALFORMED,
    /* Header alg is not exactly "HS256", typ is present but not "JWT", or the header carries
     * "crit" (no critical extensions are understood). */
    JWT_ERR_ALG,
    /* HMAC-SHA256 mismatch (constant-time compare), a signature that is not 32 bytes, or an
     * unusable secret (empty). */
    JWT_ERR_SIGNATURE,
    /* exp missing, or exp <= now - skew. */
    JWT_ERR_EXPIRED,
    /* nbf > now + skew, or iat > now + skew. */
    JWT_ERR_NOT_YET_VALID,
    /* role claim missing, not a string, or not one of anon, authenticated, service_role. */
    JWT_ERR_ROLE,
} jwt_status_t;

/* Verifies `token` (NUL-terminated) with the HS256 secret of secret_len bytes. On JWT_OK, and
 * if claims is not NULL, stores the payload object in *claims: a new reference the caller must
 * json_decref. On any other result *claims (if given) is set to NULL. now = unix seconds,
 * skew = allowed clock skew in seconds (the server uses 30; negative counts as 0).
 * Checks in this order: shape, header alg, signature, exp/nbf/iat, role; the first failure is
 * returned. Never reads past JWT_MAX_TOKEN_BYTES + 1 bytes of the token and allocates only in
 * proportion to that bound. A NULL token is JWT_ERR_MALFORMED; a NULL or empty secret is
 * JWT_ERR_SIGNATURE. Thread-safe. */
CD_MUSTCHECK jwt_status_t jwt_verify(const char *token, const unsigned char *secret,
                                     size_t secret_len, long long now, long skew, json_t **claims);

/* Returns a short, static, human-readable description of st (e.g. "token has expired"),
 * suitable for an error body. Never NULL. */
const char *jwt_status_message(jwt_status_t st);

/* Signs claims (must be a JSON object) with HS256; the header is exactly
 * {"alg":"HS256","typ":"JWT"} and the payload is compact JSON with keys sorted.
 * Returns a malloc'd NUL-terminated token the caller frees with free(), or NULL when claims is
 * not an object, the secret is NULL/empty/too long, or memory runs out. Adds no claims of its
 * own (the caller sets exp, iat, role, ...). Thread-safe. */
CD_MUSTCHECK char *jwt_sign(const json_t *claims, const unsigned char *secret, size_t secret_len);

#endif
