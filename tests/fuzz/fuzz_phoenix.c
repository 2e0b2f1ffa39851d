/* libFuzzer target for the Phoenix message parser (src/realtime/phoenix.c)
 * and the postgres_changes filter parser (src/realtime/changes.c). The first
 * input byte picks the decoder: vsn 1.0.0 text, vsn 2.0.0 text, binary kind 3,
 * or a filter checked against a fixed record. What decodes is re-encoded. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "realtime/changes.h"
#include "realtime/phoenix.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t mode = data[0] & 3;
    data++;
    size--;
    if (mode == 3) {
        char buf[CHANGES_MAX_FILTER + 2];
        if (size > CHANGES_MAX_FILTER + 1)
            return 0;
        memcpy(buf, data, size);
        buf[size] = '\0';
        changes_filter_t f;
        const char *why = NULL;
        if (changes_filter_parse(buf, &f, &why)) {
            json_error_t e;
            json_t *rec =
                json_loads("{\"id\":1,\"status\":\"active\",\"ok\":true,\"n\":null}", 0, &e);
            (void)changes_filter_match(&f, rec);
            json_decref(rec);
            changes_filter_free(&f);
        }
        return 0;
    }
    phx_msg_t m;
    const char *why = NULL;
    bool ok = mode == 2 ? phx_decode_binary(data, size, &m, &why)
                        : phx_decode_text(mode == 0 ? PHX_VSN_1 : PHX_VSN_2, (const char *)data,
                                          size, &m, &why);
    if (!ok)
        return 0;
    char *payload = json_dumps(m.payload, JSON_COMPACT);
    if (payload) {
        size_t len;
        char *out = phx_encode(mode == 0 ? PHX_VSN_1 : PHX_VSN_2, m.join_ref, m.ref, m.topic,
                               m.event, payload, 1u << 20, &len);
        free(out);
        free(payload);
    }
    if (m.binary) {
        size_t len;
        uint8_t *b = phx_encode_user_broadcast(m.topic, "e", m.raw_is_json, m.raw, m.raw_len, &len);
        free(b);
    }
    phx_msg_free(&m);
    return 0;
}
