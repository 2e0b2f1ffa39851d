/* libFuzzer target for the streaming multipart/form-data parser
 * (src/storage/storage_multipart.c). The first input byte picks how the rest
 * is cut into pieces, so splits of the delimiter across feeds are explored;
 * the parts must come out the same however the body is cut. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "storage/storage_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct sink {
    uint64_t hash; /* FNV-1a over everything the callbacks saw */
    size_t bytes;
} sink_t;

static void mix(sink_t *s, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        s->hash = (s->hash ^ b[i]) * 1099511628211ULL;
    s->bytes += n;
}

static bool on_begin(void *arg, const char *name, const char *filename, const char *ct)
{
    mix(arg, "B", 1);
    mix(arg, name, strlen(name) + 1);
    if (filename)
        mix(arg, filename, strlen(filename) + 1);
    if (ct)
        mix(arg, ct, strlen(ct) + 1);
    return true;
}

static bool on_data(void *arg, const char *d, size_t n)
{
    mix(arg, d, n);
    return true;
}

static bool on_end(void *arg)
{
    mix(arg, "E", 1);
    return true;
}

static const storage_mp_callbacks_t CBS = {on_begin, on_data, on_end};

static bool run(const uint8_t *body, size_t size, size_t step, sink_t *s)
{
    storage_multipart_t *m = malloc(sizeof(*m));
    if (!m)
        return false;
    storage__mp_init(m, "XyZ", &CBS, s);
    bool ok = true;
    for (size_t i = 0; i < size && ok; i += step) {
        size_t n = size - i < step ? size - i : step;
        ok = storage__mp_feed(m, (const char *)body + i, n);
    }
    ok = ok && storage__mp_done(m);
    free(m);
    return ok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t step = (size_t)(data[0] % 16) + 1;
    sink_t whole = {14695981039346656037ULL, 0}, pieces = {14695981039346656037ULL, 0};
    bool a = run(data + 1, size - 1, size, &whole);
    bool b = run(data + 1, size - 1, step, &pieces);
    if (a != b || (a && (whole.hash != pieces.hash || whole.bytes != pieces.bytes)))
        abort();
    char boundary[STORAGE_MP_MAX_BOUNDARY + 1];
    char ct[256];
    size_t n = size - 1 < sizeof(ct) - 1 ? size - 1 : sizeof(ct) - 1;
    memcpy(ct, data + 1, n);
    ct[n] = '\0';
    (void)storage__mp_boundary(ct, boundary, sizeof(boundary));
    return 0;
}
