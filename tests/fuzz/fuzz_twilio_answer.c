/*
 * libFuzzer target for the reader of Twilio's JSON answers (twilio_answer_scan,
 * src/providers/twilio.c), against the reader it replaced: jansson's json_loadb
 * (flags 0) and json_object_get. Properties: the scan accepts exactly the texts
 * jansson loads as an object; every member asked for (names of a Message
 * resource and of an error, one empty and one of 31 bytes, the longest the scan
 * matches) reads the same as jansson's string (cut to the field's size) or
 * integer ("%lld"), and "" for any other value, an absent member or a refused text.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "providers/twilio.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const names[] = {
    "sid",  "status",  "price", "price_unit", "num_segments",
    "code", "message", "",      "a",          "abcdefghijklmnopqrstuvwxyz01234"};
static const size_t caps[] = {34, 8, 1, 2, 24, 16, 400, 5, 3, 64};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    enum { N = sizeof(names) / sizeof(names[0]) };
    char got[N][400];
    twilio_answer_field_t f[N];
    for (size_t i = 0; i < N; i++)
        f[i] = (twilio_answer_field_t){names[i], got[i], caps[i]};
    bool ok = twilio_answer_scan((const char *)data, size, f, N);
    json_t *j = json_loadb((const char *)data, size, 0, NULL);
    if (ok != json_is_object(j))
        abort();
    for (size_t i = 0; i < N; i++) {
        char want[400] = "";
        json_t *v = json_object_get(j, names[i]);
        if (json_is_string(v))
            snprintf(want, caps[i], "%s", json_string_value(v));
        else if (json_is_integer(v))
            snprintf(want, caps[i], "%lld", (long long)json_integer_value(v));
        if (strcmp(want, got[i]) != 0)
            abort();
    }
    json_decref(j);
    return 0;
}
