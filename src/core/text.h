/*
 * Small text routines every layer shares: hex digits, base64url, UTF-8
 * validation, a bounded JSON nesting walk and reading string members. One
 * copy each, so that a fix (or a stricter rule) reaches every parser at once.
 */
#ifndef CD_TEXT_H
#define CD_TEXT_H

#include <jansson.h>

#include "core/common.h"

/* Value of one hexadecimal digit (either case), or -1 for any other byte. */
int cd_hex_value(int c);

/* Writes the 2*n lower-case hex digits of in[0..n) and a NUL into out
 * (2*n + 1 bytes). */
void cd_hex_encode(const unsigned char *in, size_t n, char *out);

/* Writes s percent-encoded into out (cap > 0 bytes, NUL included): ASCII letters, digits and
 * the bytes of keep stay as they are, every other byte becomes %XX (upper-case hex, RFC 3986
 * 2.1). Stops before an encoding that would not fit, never splitting one, and always
 * NUL-terminates. Returns the length written; *complete (may be NULL) tells whether all of s
 * fit. Unreserved characters are keep = "-._~". */
size_t cd_percent_encode(char *out, size_t cap, const char *s, const char *keep, bool *complete);

/* Unpadded base64url of n bytes into out (4*ceil(n/3)+1 bytes) with a NUL.
 * Returns the length written, NUL excluded. */
size_t cd_base64url_encode(const unsigned char *in, size_t n, char *out);

/* Decodes unpadded base64url in[0..in_len) into out (capacity out_cap) and
 * stores the decoded length in *out_len. Strict, because every caller decodes
 * a token whose signature covers the encoded text: characters outside the
 * URL-safe alphabet ('+', '/', '=', whitespace), a length that is 1 mod 4 and
 * non-zero leftover bits in the last character are refused, so each byte
 * string has exactly one accepted encoding. Hand-written because OpenSSL's
 * EVP_DecodeBlock speaks the padded standard alphabet and libjwt exports no
 * strict decoder. Returns false on invalid input or when out_cap is too small. */
CD_MUSTCHECK bool cd_base64url_decode(const char *in, size_t in_len, unsigned char *out,
                                      size_t out_cap, size_t *out_len);

/* Length (1 to 4) of the valid UTF-8 sequence at s, n > 0 bytes available, or
 * 0 when it is not one. Valid is RFC 3629 as PostgreSQL and jansson read it:
 * no overlong forms, no surrogates, nothing past U+10FFFF. NUL and control
 * characters are valid here; callers that refuse them check separately. */
size_t cd_utf8_char_len(const unsigned char *s, size_t n);

/* Whether s[0..n) is entirely valid UTF-8 (see cd_utf8_char_len). */
bool cd_utf8_valid(const unsigned char *s, size_t n);

/* Makes the NUL-terminated s valid UTF-8 in place: every byte that does not
 * start a valid sequence (a stray byte, a sequence cut by a truncating copy)
 * becomes '?'. The length does not change. Returns how many bytes it
 * replaced. For text from peers (a server's reply) on its way into JSON,
 * which jansson refuses when it is not UTF-8. */
size_t cd_utf8_scrub(char *s);

/* Whether s[0..n) is valid UTF-8 without a NUL byte; when it is and chars is
 * not NULL, *chars gets the number of code points. */
bool cd_utf8_count(const char *s, size_t n, size_t *chars);

/* Nesting depth of a JSON value: 0 for a scalar, 1 for [] or {} of scalars,
 * and so on. The walk stops descending past limit levels and then returns
 * limit + 1, so a hostile document costs at most limit levels of recursion. */
size_t cd_json_depth(const json_t *j, size_t limit);

/* Reads string members of a JSON object in one call: pairs of a key and a `const char **`,
 * ended by NULL, e.g. cd_json_strings(o, "schema", &schema, "table", &table, NULL). A member
 * that is missing or not a string, or an o that is not an object, reads as NULL. (jansson's
 * json_unpack "{s?s}" would instead refuse the whole object for one member of another type.)
 * The strings belong to o. */
void cd_json_strings(const json_t *o, ...) __attribute__((sentinel));

struct cd_buf;
/* Appends s (NUL-terminated) to b as a JSON string, escaped exactly as
 * jansson's json_dumps escapes it (\" \\ \b \f \n \r \t, other control bytes
 * \u00XX, the rest as is), for JSON written as text without a json_t per
 * value. False when s is not UTF-8 (jansson's json_string refuses it too; b
 * unchanged) or when b is full (b then holds part of it: callers roll back). */
CD_MUSTCHECK bool cd_buf_add_json_str(struct cd_buf *b, const char *s);

#endif
