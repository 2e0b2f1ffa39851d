/* Unit tests for src/realtime/ws.c: the handshake key (RFC 6455 example),
 * message delivery over a socketpair, and the close codes for protocol
 * violations (unmasked frames, oversized messages, invalid UTF-8, fragmented
 * control frames, reserved opcodes), for a client too slow to read, and for
 * a client that floods pings without reading the pongs (the queue stays
 * bounded and the connection is closed with 1008). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "realtime/ws.h"

typedef struct got {
    int count;
    bool binary;
    uint8_t data[256];
    size_t len;
} got_t;

static void on_msg(void *arg, bool binary, const uint8_t *data, size_t len)
{
    got_t *g = arg;
    g->count++;
    g->binary = binary;
    g->len = len < sizeof(g->data) ? len : sizeof(g->data);
    memcpy(g->data, data, g->len);
}

/* A client frame (masked unless told otherwise) into out; returns its length. */
static size_t make_frame(uint8_t *out, int opcode, bool fin, bool mask, const void *payload,
                         size_t len)
{
    size_t n = 0;
    out[n++] = (uint8_t)((fin ? 0x80 : 0) | opcode);
    uint8_t m = mask ? 0x80 : 0;
    if (len < 126) {
        out[n++] = (uint8_t)(m | len);
    } else {
        out[n++] = m | 126;
        out[n++] = (uint8_t)(len >> 8);
        out[n++] = (uint8_t)(len & 255);
    }
    static const uint8_t key[4] = {0x12, 0x34, 0x56, 0x78};
    if (mask) {
        memcpy(out + n, key, 4);
        n += 4;
    }
    const uint8_t *p = payload;
    for (size_t i = 0; i < len; i++)
        out[n + i] = mask ? (uint8_t)(p[i] ^ key[i % 4]) : p[i];
    return n + len;
}

typedef struct pair {
    int srv, cli;
    ws_conn_t *ws;
    got_t got;
} pair_t;

static void pair_open(pair_t *p, size_t max_message)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    p->srv = sv[0];
    p->cli = sv[1];
    fcntl(p->srv, F_SETFL, fcntl(p->srv, F_GETFL) | O_NONBLOCK);
    memset(&p->got, 0, sizeof(p->got));
    p->ws = ws_conn_new(p->srv, max_message, NULL, 0, on_msg, &p->got);
    assert_non_null(p->ws);
}

static void pair_close(pair_t *p)
{
    ws_conn_free(p->ws);
    close(p->srv);
    close(p->cli);
}

/* Feeds bytes from the client, lets the server read and flush, and returns
 * the status code of the close frame the client then sees (0 if none). */
static int feed_and_close_code(pair_t *p, const uint8_t *bytes, size_t n)
{
    assert_int_equal(write(p->cli, bytes, n), (ssize_t)n);
    bool alive = ws_conn_read(p->ws);
    (void)alive;
    while (ws_conn_flush(p->ws) && ws_conn_want_write(p->ws))
        ;
    uint8_t buf[512];
    fcntl(p->cli, F_SETFL, fcntl(p->cli, F_GETFL) | O_NONBLOCK);
    ssize_t r = read(p->cli, buf, sizeof(buf));
    for (ssize_t i = 0; r > 0 && i + 1 < r;) {
        int op = buf[i] & 15;
        size_t len = buf[i + 1] & 127;
        size_t off = (size_t)i + 2;
        if (op == 8 && len >= 2 && off + 2 <= (size_t)r)
            return (buf[off] << 8) | buf[off + 1];
        i = (ssize_t)(off + len);
    }
    return 0;
}

static void test_accept_key(void **state)
{
    (void)state;
    char out[WS_ACCEPT_LEN + 1];
    assert_true(ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", out));
    assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="); /* RFC 6455 section 1.3 */
    assert_false(ws_accept_key(NULL, out));
    assert_false(ws_accept_key("", out));
    assert_false(ws_accept_key("dGhlIHNhbXBsZSBub25jZQ", out));    /* no padding */
    assert_false(ws_accept_key("dGhlIHNhbXBsZSBub25jZQ===", out)); /* 25 chars */
    assert_false(ws_accept_key("dGhlIHNhbXBsZSBub25jZ!==", out));  /* not base64 */
    assert_false(ws_accept_key("dGhlIHNhbXBsZSBub25jZWFi", out));  /* 18 bytes */
}

static void test_text_and_binary_messages(void **state)
{
    (void)state;
    pair_t p;
    pair_open(&p, 1024);
    uint8_t f[300];
    size_t n = make_frame(f, 1, true, true, "{\"a\":\"h\xc3\xa9\"}", 11);
    assert_int_equal(write(p.cli, f, n), (ssize_t)n);
    assert_true(ws_conn_read(p.ws));
    assert_int_equal(p.got.count, 1);
    assert_false(p.got.binary);
    assert_memory_equal(p.got.data, "{\"a\":\"h\xc3\xa9\"}", 11);
    /* a binary message in two fragments */
    n = make_frame(f, 2, false, true, "\x03\x00", 2);
    n += make_frame(f + n, 0, true, true, "\x01", 1);
    assert_int_equal(write(p.cli, f, n), (ssize_t)n);
    assert_true(ws_conn_read(p.ws));
    assert_int_equal(p.got.count, 2);
    assert_true(p.got.binary);
    assert_int_equal(p.got.len, 3);
    /* the server's frames are unmasked */
    assert_true(ws_conn_send(p.ws, false, "hi", 2));
    assert_true(ws_conn_want_write(p.ws));
    assert_true(ws_conn_flush(p.ws));
    uint8_t buf[16];
    assert_int_equal(read(p.cli, buf, sizeof(buf)), 4);
    assert_int_equal(buf[0], 0x81);
    assert_int_equal(buf[1], 2);
    assert_memory_equal(buf + 2, "hi", 2);
    assert_true(ws_conn_alive(p.ws));
    pair_close(&p);
}

static void test_extra_bytes_first(void **state)
{
    (void)state;
    uint8_t f[64];
    size_t n = make_frame(f, 1, true, true, "early", 5);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
    got_t g = {0};
    ws_conn_t *ws = ws_conn_new(sv[0], 1024, f, n, on_msg, &g);
    assert_non_null(ws);
    assert_true(ws_conn_read(ws));
    assert_int_equal(g.count, 1);
    assert_memory_equal(g.data, "early", 5);
    ws_conn_free(ws);
    close(sv[0]);
    close(sv[1]);
}

static void test_violations_close_codes(void **state)
{
    (void)state;
    struct {
        const char *what;
        int opcode;
        bool fin, mask;
        const char *payload;
        size_t len;
        int code;
    } cases[] = {
        {"unmasked", 1, true, false, "{}", 2, 1002},
        {"invalid utf-8", 1, true, true, "{\xc3\x28}", 4, 1007},
        {"overlong utf-8", 1, true, true, "\xc0\xaf", 2, 1007},
        {"surrogate", 1, true, true, "\xed\xa0\x80", 3, 1007},
        {"fragmented ping", 9, false, true, "x", 1, 1002},
        {"reserved opcode", 3, true, true, "x", 1, 1002},
        {"continuation first", 0, true, true, "x", 1, 1002},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        pair_t p;
        pair_open(&p, 1024);
        uint8_t f[300];
        size_t n = make_frame(f, cases[i].opcode, cases[i].fin, cases[i].mask, cases[i].payload,
                              cases[i].len);
        int code = feed_and_close_code(&p, f, n);
        if (code != cases[i].code)
            fail_msg("%s: close code %d, expected %d", cases[i].what, code, cases[i].code);
        assert_int_equal(p.got.count, 0);
        assert_false(ws_conn_alive(p.ws));
        pair_close(&p);
    }
}

static void test_oversized_message(void **state)
{
    (void)state;
    pair_t p;
    pair_open(&p, 64);
    uint8_t payload[200], f[300];
    memset(payload, 'a', sizeof(payload));
    size_t n = make_frame(f, 1, true, true, payload, sizeof(payload));
    assert_int_equal(feed_and_close_code(&p, f, n), 1009);
    assert_int_equal(p.got.count, 0);
    pair_close(&p);
}

static void test_peer_close_is_echoed(void **state)
{
    (void)state;
    pair_t p;
    pair_open(&p, 64);
    uint8_t f[16];
    size_t n = make_frame(f, 8, true, true, "\x03\xe8", 2);
    assert_int_equal(feed_and_close_code(&p, f, n), 1000);
    assert_false(ws_conn_alive(p.ws));
    pair_close(&p);
}

static void test_slow_client_is_cut_off(void **state)
{
    (void)state;
    pair_t p;
    pair_open(&p, 64);
    static uint8_t chunk[1 << 16];
    size_t sent = 0;
    bool ok = true;
    /* nothing is flushed: the queue reaches its bound */
    while (ok && sent <= WS_MAX_QUEUED_BYTES + sizeof(chunk)) {
        ok = ws_conn_send(p.ws, true, chunk, sizeof(chunk));
        sent += sizeof(chunk);
    }
    assert_false(ok);
    assert_false(ws_conn_alive(p.ws));
    pair_close(&p);
}

/* Streams masked pings (payload_len bytes each) from a client that never
 * reads, letting the server read and flush in between, until the server
 * stops or 3x the queue bound has been sent. Returns the bytes written. */
static size_t ping_flood(pair_t *p, size_t payload_len)
{
    uint8_t payload[125], f[8192];
    memset(payload, 'p', sizeof(payload));
    uint8_t one[140];
    size_t fl = make_frame(one, 9, true, true, payload, payload_len);
    size_t per = sizeof(f) / fl, n = 0;
    for (size_t i = 0; i < per; i++, n += fl)
        memcpy(f + n, one, fl);
    fcntl(p->cli, F_SETFL, fcntl(p->cli, F_GETFL) | O_NONBLOCK);
    size_t sent = 0;
    bool reading = true;
    while (reading && sent < 3 * (size_t)WS_MAX_QUEUED_BYTES) {
        ssize_t w = write(p->cli, f, n);
        if (w > 0)
            sent += (size_t)w;
        reading = ws_conn_read(p->ws);
        bool more = ws_conn_flush(p->ws);
        (void)more;
        /* the pongs never leave the server's queue beyond the socket buffer */
        assert_true(ws_conn_queued_cost(p->ws) <= WS_MAX_QUEUED_BYTES + 65536);
    }
    return sent;
}

static void test_ping_flood_is_bounded(void **state)
{
    (void)state;
    size_t sizes[] = {125, 0};
    for (size_t i = 0; i < CD_ARRAY_LEN(sizes); i++) {
        pair_t p;
        pair_open(&p, 1024);
        size_t sent = ping_flood(&p, sizes[i]);
        if (sent >= 3 * (size_t)WS_MAX_QUEUED_BYTES)
            fail_msg("%zu-byte pings: %zu bytes read with no cut-off", sizes[i], sent);
        assert_false(ws_conn_alive(p.ws));
        assert_false(ws_conn_want_read(p.ws));
        assert_true(ws_conn_want_write(p.ws)); /* the 1008 close waits behind the pongs */
        /* once the client reads, the pongs and then the 1008 close arrive */
        size_t cap = 4 * (size_t)WS_MAX_QUEUED_BYTES, got = 0;
        uint8_t *all = malloc(cap);
        assert_non_null(all);
        bool more = true;
        while (more) {
            more = ws_conn_flush(p.ws);
            ssize_t r;
            while (got < cap && (r = read(p.cli, all + got, cap - got)) > 0)
                got += (size_t)r;
        }
        int code = 0;
        for (size_t k = 0; k + 1 < got;) { /* server frames: unmasked, short */
            size_t len = all[k + 1] & 127, off = k + 2;
            if (len == 126 && off + 2 <= got) {
                len = ((size_t)all[off] << 8) | all[off + 1];
                off += 2;
            }
            if ((all[k] & 15) == 8 && off + 2 <= got)
                code = (all[off] << 8) | all[off + 1];
            k = off + len;
        }
        free(all);
        assert_int_equal(code, WS_CLOSE_POLICY);
        pair_close(&p);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accept_key),
        cmocka_unit_test(test_text_and_binary_messages),
        cmocka_unit_test(test_extra_bytes_first),
        cmocka_unit_test(test_violations_close_codes),
        cmocka_unit_test(test_oversized_message),
        cmocka_unit_test(test_peer_close_is_echoed),
        cmocka_unit_test(test_slow_client_is_cut_off),
        cmocka_unit_test(test_ping_flood_is_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
