/*
 * The C++ shim over libphonenumber (see phone.h). The one C++ file of
 * campaignd: E.164 normalisation that is right for every country is
 * libphonenumber's metadata, which nothing in C matches (docs/architecture.md).
 * No exception crosses into C.
 */
#include "importer/phone.h"

#include <cstring>
#include <string>

#include <phonenumbers/phonenumberutil.h>

using i18n::phonenumbers::PhoneNumber;
using i18n::phonenumbers::PhoneNumberUtil;

extern "C" size_t imp_phone_e164(const char *s, size_t len, const char *region, char *out,
                                 size_t cap)
{
    try {
        /* longer than any phone number with its punctuation: not one */
        if (len == 0 || len > 64 || cap < IMP_PHONE_MAX + 1)
            return 0;
        const PhoneNumberUtil *util = PhoneNumberUtil::GetInstance();
        PhoneNumber num;
        std::string in(s, len);
        if (util->Parse(in, region ? region : "ZZ", &num) != PhoneNumberUtil::NO_PARSING_ERROR)
            return 0;
        if (!util->IsValidNumber(num))
            return 0;
        std::string e164;
        util->Format(num, PhoneNumberUtil::E164, &e164);
        if (e164.size() > IMP_PHONE_MAX)
            return 0;
        std::memcpy(out, e164.data(), e164.size());
        out[e164.size()] = '\0';
        return e164.size();
    } catch (...) {
        return 0;
    }
}

extern "C" bool imp_phone_region_known(const char *region)
{
    try {
        return PhoneNumberUtil::GetInstance()->GetCountryCodeForRegion(std::string(region)) != 0;
    } catch (...) {
        return false;
    }
}
