/* libFuzzer target for the storage path splitter (src/storage/storage_path.c): the input is a
 * raw request target, split after the object prefix into a bucket and an object name, and
 * also checked as an object name directly. Whatever is accepted must hold the promises of
 * storage_internal.h: a bucket id that passes its own check, a name without dot segments,
 * control characters, backslashes or a leading '/', within the length limits. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "storage/storage_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_name(const char *name)
{
    size_t n = strlen(name);
    if (storage__check_name(name, n) != STORAGE_PATH_OK)
        abort();
    if (n == 0 || n > STORAGE_MAX_NAME_BYTES || name[0] == '/' || strchr(name, '\\'))
        abort();
    for (const char *seg = name; seg;) {
        const char *end = strchr(seg, '/');
        size_t len = end ? (size_t)(end - seg) : strlen(seg);
        if (len == 0 || (len == 1 && seg[0] == '.') || (len == 2 && memcmp(seg, "..", 2) == 0))
            abort();
        seg = end ? end + 1 : NULL;
    }
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *raw = malloc(size + 1);
    char bucket[STORAGE_MAX_BUCKET_BYTES + 1], name[STORAGE_MAX_NAME_BYTES + 1];

    if (raw == NULL)
        return 0;
    memcpy(raw, data, size);
    raw[size] = '\0';

    static const char *const prefixes[] = {"/storage/v1/object/", "/storage/v1/object/public/",
                                           "/storage/v1/bucket/"};
    for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
        storage_path_status_t st =
            storage__split_target(raw, prefixes[i], bucket, sizeof(bucket), name, sizeof(name));
        (void)storage__path_message(st);
        if (st == STORAGE_PATH_OK) {
            if (!storage__check_bucket(bucket))
                abort();
            check_name(name);
        }
        st = storage__split_target(raw, prefixes[i], bucket, sizeof(bucket), NULL, 0);
        if (st == STORAGE_PATH_OK && !storage__check_bucket(bucket))
            abort();
    }
    /* the input as an already-decoded name (embedded NULs end it, as in C strings) */
    if (storage__check_name(raw, strlen(raw)) == STORAGE_PATH_OK)
        check_name(raw);
    free(raw);
    return 0;
}
