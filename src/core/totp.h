/*
 * Time-based one-time passwords (RFC 6238 over RFC 4226's HOTP, HMAC-SHA1 via
 * OpenSSL) and the base32 of their secrets (RFC 4648), as authenticator apps
 * and GoTrue use them: 30-second steps, 6 digits, one step of clock skew
 * either way.
 */
#ifndef CD_TOTP_H
#define CD_TOTP_H

#include <stdint.h>

#include "core/common.h"

#define TOTP_PERIOD        30
#define TOTP_DIGITS        6
#define TOTP_SECRET_BYTES  20 /* 160 bits, RFC 4226's recommendation */
#define TOTP_SECRET_BASE32 32 /* base32 characters of a TOTP_SECRET_BYTES secret */

/* Base32 (RFC 4648 alphabet, upper case, no padding) of in[0..len) into out,
 * which must hold (len * 8 + 4) / 5 + 1 bytes. Returns the length written. */
size_t totp_base32_encode(const unsigned char *in, size_t len, char *out);
/* Decodes base32 (either case; '=' padding and spaces ignored) into out
 * (outcap bytes). Returns the number of bytes, or -1 for a character outside
 * the alphabet, trailing bits that are not zero, or too small an out. */
CD_MUSTCHECK long totp_base32_decode(const char *in, unsigned char *out, size_t outcap);

/* HOTP(key, counter) truncated to `digits` (6..8) decimal digits. */
uint32_t totp_hotp(const unsigned char *key, size_t keylen, uint64_t counter, int digits);

/* The time step of a Unix time (floor(t / TOTP_PERIOD)). */
int64_t totp_step(int64_t unix_time);

/* Whether code (exactly TOTP_DIGITS ASCII digits) is the 6-digit TOTP of key
 * for the step of now or one step either side. Steps <= last_used (when
 * last_used >= 0) are skipped, so an accepted code cannot be replayed. On a
 * match *step gets the matching step. Compares in constant time per step. */
CD_MUSTCHECK bool totp_match(const unsigned char *key, size_t keylen, const char *code, int64_t now,
                             int64_t last_used, int64_t *step);

/* Whether s is exactly TOTP_DIGITS ASCII digits. */
bool totp_code_valid(const char *s);

/* A new random secret, base32 encoded (TOTP_SECRET_BASE32 characters). */
CD_MUSTCHECK bool totp_new_secret(char out[TOTP_SECRET_BASE32 + 1]);

#endif
