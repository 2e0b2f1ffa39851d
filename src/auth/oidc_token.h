/*
 * Verification of an OpenID Connect id_token (a JWS, RFC 7515/7519) against
 * the provider's JSON Web Key Set (RFC 7517): RS256 and ES256 signatures
 * with OpenSSL, then iss, aud, exp and nonce. Pure: no I/O, no globals (the
 * JWKS is fetched and cached by oauth_provider.c); unit-tested and fuzzed.
 */
#ifndef CD_AUTH_OIDC_TOKEN_H
#define CD_AUTH_OIDC_TOKEN_H

#include <jansson.h>

#include "core/common.h"

/* Longest id_token accepted, in bytes. */
#define OIDC_TOKEN_MAX 16384

typedef enum {
    OIDC_OK = 0,
    OIDC_MALFORMED,   /* not three base64url parts of JSON objects */
    OIDC_ALG,         /* alg is not RS256 or ES256 */
    OIDC_UNKNOWN_KID, /* no key of the set fits the header's kid and alg */
    OIDC_SIGNATURE,   /* the signature does not verify */
    OIDC_ISSUER,      /* iss is not the provider's issuer */
    OIDC_AUDIENCE,    /* aud does not name our client id */
    OIDC_EXPIRED,     /* exp missing or past */
    OIDC_NONCE,       /* the nonce we sent is not the token's */
} oidc_status_t;

/* What the token must say. */
typedef struct oidc_expect {
    const char *issuer;     /* iss must be this ... */
    const char *alt_issuer; /* ... or this (Google's bare host name), or NULL */
    const char *client_id;  /* aud (a string, or an array holding it) */
    const char *nonce;      /* the nonce sent at /authorize, or NULL: not checked */
    long long now;          /* unix time; exp must be later */
} oidc_expect_t;

/* Verifies token against jwks (an object with a "keys" array): the key is
 * the one whose kid (and kty) fits the header (a header without kid needs
 * exactly one fitting key); RSA keys must have 2048 bits or more, EC keys be
 * P-256. The signature is checked before any claim. On OIDC_OK *claims gets
 * the payload (new reference); otherwise NULL. */
CD_MUSTCHECK oidc_status_t oidc_verify_id_token(const char *token, const json_t *jwks,
                                                const oidc_expect_t *want, json_t **claims);

/* A short English description of a status. */
const char *oidc_status_text(oidc_status_t st);

#endif
