/*
 * libFuzzer target for the HTTP/1.1 answer parser of the send engine's own
 * exchange (src/providers/webapi.c: webapi_parse, webapi_parse_eof).
 * Arbitrary bytes are what a server sends, read the way webapi_exchange
 * reads them (bytes the parser did not take are kept and given again with
 * more), once at once and once in pieces whose sizes the input's first byte
 * chooses. Properties: never a read past the end, the parser takes at most
 * what it was given, a finished answer has a status of 200..599, its body
 * fits the buffer's maximum, and both readings agree (same outcome, same
 * status, same body, same keep-alive).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "providers/webapi.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { BODY_MAX = 4096 };

typedef struct reading {
    int rc; /* 1 complete, 0 incomplete at the end of the bytes, -1 refused */
    long status;
    bool keep_alive;
    cd_buf_t body;
} reading_t;

/* Reads p[0..n) in pieces of step bytes (0: all at once), then the close. */
static void read_answer(const char *p, size_t n, size_t step, reading_t *out)
{
    webapi_parser_t ps;
    webapi_parser_init(&ps);
    cd_buf_init(&out->body, BODY_MAX);
    char *held = malloc(n + 1);
    size_t hl = 0, fed = 0;
    out->rc = 0;
    while (!ps.done && fed < n) {
        size_t k = step && step < n - fed ? step : n - fed;
        memcpy(held + hl, p + fed, k);
        hl += k;
        fed += k;
        long used = webapi_parse(&ps, held, hl, &out->body);
        if (used < 0) {
            out->rc = -1;
            break;
        }
        if ((size_t)used > hl)
            abort();
        memmove(held, held + used, hl - (size_t)used);
        hl -= (size_t)used;
    }
    if (out->rc == 0)
        out->rc = ps.done ? 1 : webapi_parse_eof(&ps) ? 1 : -1;
    if (out->rc == 1 && (ps.status < 200 || ps.status > 599 || out->body.len > BODY_MAX))
        abort();
    if (out->rc == -1 && !ps.error)
        abort();
    out->status = ps.status;
    out->keep_alive = ps.keep_alive;
    free(held);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 65536)
        return 0;
    size_t step = data[0] % 16 + 1;
    const char *p = (const char *)data + 1;
    size_t n = size - 1;
    reading_t a, b;
    read_answer(p, n, 0, &a);
    read_answer(p, n, step, &b);
    if (a.rc != b.rc)
        abort();
    if (a.rc == 1 &&
        (a.status != b.status || a.keep_alive != b.keep_alive || a.body.len != b.body.len ||
         (a.body.len && memcmp(a.body.data, b.body.data, a.body.len) != 0)))
        abort();
    cd_buf_free(&a.body);
    cd_buf_free(&b.body);
    return 0;
}
