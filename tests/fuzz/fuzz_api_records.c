/*
 * libFuzzer target for the API connectors' parsers (src/importer/records.c):
 * the first byte picks what the rest is — an RFC 8288 Link header, a
 * Retry-After value, NDJSON lines, or a JSON answer whose records are found
 * by a records_path (the text up to the first newline) and flattened. Any
 * crash, sanitizer report or leak is a bug; so is a next link longer than
 * the buffer, or a flattened value that is not a string.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "importer/connectors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int check_flat(json_t *rec, void *arg)
{
    (void)arg;
    json_t *f = conn_flatten_record(rec);
    const char *k;
    json_t *v;
    json_object_foreach(f, k, v)
    {
        if (!json_is_string(v))
            abort();
    }
    json_decref(f);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int mode = data[0] % 4;
    char *s = malloc(size);
    if (!s)
        return 0;
    memcpy(s, data + 1, size - 1);
    s[size - 1] = '\0';
    char out[64], err[256];
    switch (mode) {
    case 0:
        if (conn_link_next(s, out, sizeof(out)) && strlen(out) >= sizeof(out))
            abort();
        break;
    case 1:
        (void)conn_retry_after(s, (time_t)1700000000);
        break;
    case 2:
        (void)conn_ndjson_each((const char *)data + 1, size - 1, check_flat, NULL, err,
                               sizeof(err));
        break;
    default: {
        char *nl = strchr(s, '\n');
        const char *path = "";
        const char *json = s;
        if (nl) {
            *nl = '\0';
            path = s;
            json = nl + 1;
        }
        json_t *root = json_loads(json, JSON_DECODE_ANY, NULL);
        const json_t *recs = conn_json_path(root, path);
        size_t i;
        json_t *rec;
        if (json_is_array(recs)) {
            json_array_foreach(recs, i, rec) check_flat(rec, NULL);
        } else if (recs) {
            check_flat((json_t *)recs, NULL);
        }
        json_decref(root);
        break;
    }
    }
    free(s);
    return 0;
}
