/*
 * The pure parts of the OAuth and PKCE flows: the signed `state` that carries
 * a sign-in through the provider and back, and the PKCE checks (RFC 7636).
 * No I/O, no globals: unit-tested and fuzzed on their own.
 */
#ifndef CD_AUTH_OAUTH_STATE_H
#define CD_AUTH_OAUTH_STATE_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "core/common.h"
#include "core/crypto.h"

/* Longest state accepted, in bytes. */
#define OAUTH_STATE_MAX 4096

typedef enum {
    OAUTH_STATE_OK = 0,
    OAUTH_STATE_MALFORMED, /* not payload.signature, bad base64url, not a JSON object */
    OAUTH_STATE_SIGNATURE, /* the HMAC does not match */
    OAUTH_STATE_EXPIRED,   /* exp missing, not an integer, or past */
} oauth_state_status_t;

/* Signs claims (an object; the caller sets "exp") as
 * base64url(compact JSON) "." base64url(HMAC-SHA256(key, that text)).
 * key is the server's state key (never the JWT secret itself, so a state can
 * never pass for an access token). Returns a malloc'd string, or NULL (not an
 * object, too long, out of memory). */
CD_MUSTCHECK char *oauth_state_sign(const json_t *claims, const unsigned char *key, size_t keylen);

/* Verifies a state made by oauth_state_sign at unix time now: signature
 * (constant time) first, then exp > now. On OK stores the claims in *claims
 * (new reference; caller json_decref()s), else sets it to NULL. */
CD_MUSTCHECK oauth_state_status_t oauth_state_verify(const char *state, const unsigned char *key,
                                                     size_t keylen, long long now, json_t **claims);

/* Whether v is a valid PKCE code_verifier or code_challenge: 43 to 128
 * characters of A-Z a-z 0-9 - . _ ~ (RFC 7636 4.1). */
bool oauth_pkce_valid(const char *v);

/* The S256 challenge of verifier: base64url(SHA-256(verifier)), unpadded. */
void oauth_pkce_s256(const char *verifier, char out[CD_TOKEN_LEN + 1]);

/* Whether verifier answers challenge under method ("s256" or "plain", any
 * case); compares in constant time. False for an invalid verifier. */
bool oauth_pkce_matches(const char *method, const char *challenge, const char *verifier);

#endif
