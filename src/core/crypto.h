/*
 * Small cryptographic helpers over OpenSSL: random UUIDs and tokens, SHA-256
 * and HMAC-SHA256 in hex or base64url, constant-time comparison.
 */
#ifndef CD_CRYPTO_H
#define CD_CRYPTO_H

#include "core/common.h"

#define CD_UUID_LEN       36
#define CD_SHA256_HEX_LEN 64
#define CD_TOKEN_LEN      43 /* 32 bytes in unpadded base64url */

/* A random (version 4) UUID in canonical text form. */
CD_MUSTCHECK bool cd_random_uuid(char out[CD_UUID_LEN + 1]);
/* 32 random bytes as unpadded base64url. */
CD_MUSTCHECK bool cd_random_token(char out[CD_TOKEN_LEN + 1]);
/* Lower-case hex SHA-256 of s. */
void cd_sha256_hex(const char *s, size_t len, char out[CD_SHA256_HEX_LEN + 1]);
/* HMAC-SHA256(key, msg) as unpadded base64url (43 characters). */
void cd_hmac_b64url(const unsigned char *key, size_t keylen, const char *msg, size_t len,
                    char out[CD_TOKEN_LEN + 1]);
/* Whether s is a UUID in canonical 8-4-4-4-12 hex form. */
bool cd_is_uuid(const char *s);
/* Compares two strings in time that depends only on their lengths. */
bool cd_secure_equal(const char *a, const char *b);

#endif
