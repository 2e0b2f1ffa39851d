/*
 * Phone numbers to E.164 with libphonenumber (a C++ library): the extern "C"
 * face of phone.cpp, so that the rest of the importer stays C.
 */
#ifndef CD_IMPORTER_PHONE_H
#define CD_IMPORTER_PHONE_H

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* E.164 is '+' and at most 15 digits. */
#define IMP_PHONE_MAX 16

/* Parses s[0..len) as a phone number, national numbers in region (ISO 3166
 * alpha-2, upper case; NULL = the number must start with '+'), and writes
 * its E.164 form ("+14155550123") NUL-terminated to out (cap bytes, at least
 * IMP_PHONE_MAX + 1). Returns its length, or 0 if it is not a valid number
 * (libphonenumber's IsValidNumber: the right length and prefixes for the
 * country). Thread-safe. */
size_t imp_phone_e164(const char *s, size_t len, const char *region, char *out, size_t cap);

/* True if libphonenumber knows the region code ("US", "FR", …). */
bool imp_phone_region_known(const char *region);

#ifdef __cplusplus
}
#endif

#endif
