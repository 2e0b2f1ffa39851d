/* libFuzzer target for the JSON body reader (src/http/body.c). */
#include <stddef.h>
#include <stdint.h>

#include "http/body.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *j = NULL;
    char err[256];
    int flags = size ? (data[0] & 7) : 0;
    if (body_parse_json((const char *)data, size, flags ? flags : BODY_JSON_OBJECT, &j, err,
                        sizeof(err)))
        json_decref(j);
    return 0;
}
