/*
 * WebSocket framing over an upgraded socket: the handshake key and a thin,
 * bounded wrapper around wslay's event API (non-blocking reads and writes,
 * whole-message delivery, close codes for protocol errors).
 */
#include "realtime/ws.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <wslay/wslay.h>

#include "core/log.h"

struct ws_conn {
    int fd;
    wslay_event_context_ptr ctx;
    const uint8_t *extra; /* bytes read with the HTTP head, consumed first */
    size_t extra_len;
    ws_message_fn on_message;
    void *arg;
    bool dead;                /* the socket failed or the peer went away */
    bool closing;             /* we queued a close */
    bool proto_error;         /* wslay refused a frame and queued a close without a code */
    uint16_t bare_close_code; /* the code to put in such a code-less close */
    bool flooded;             /* the output queue passed its bound while reading */
    /* Frames wslay hands over with "more follows" are gathered here and written
     * with the next frame in one writev: one system call per burst of messages
     * (a postgres_changes batch) instead of two per frame (header, payload),
     * which the profile of the fan-out showed as most of the loop's time. */
    size_t out_len;
    uint8_t out[WS_OUT_BUFFER];
};

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

bool ws_accept_key(const char *client_key, char out[WS_ACCEPT_LEN + 1])
{
    size_t kl = client_key ? strlen(client_key) : 0;
    unsigned char raw[32];
    /* A valid key is 24 base64 characters that decode to 16 bytes. */
    if (kl != 24 || EVP_DecodeBlock(raw, (const unsigned char *)client_key, 24) != 18 ||
        client_key[22] != '=' || client_key[23] != '=')
        return false;
    char cat[24 + sizeof(WS_GUID)];
    memcpy(cat, client_key, 24);
    memcpy(cat + 24, WS_GUID, sizeof(WS_GUID));
    unsigned char md[SHA_DIGEST_LENGTH];
    SHA1((const unsigned char *)cat, 24 + sizeof(WS_GUID) - 1, md);
    if (EVP_EncodeBlock((unsigned char *)out, md, SHA_DIGEST_LENGTH) != WS_ACCEPT_LEN)
        return false;
    out[WS_ACCEPT_LEN] = '\0';
    return true;
}

size_t ws_conn_queued_cost(const ws_conn_t *ws)
{
    return wslay_event_get_queued_msg_length(ws->ctx) +
           wslay_event_get_queued_msg_count(ws->ctx) * (size_t)WS_QUEUED_MSG_COST;
}

/* wslay's answer to the result r of one recv or send: a would-block sets
 * WSLAY_ERR_WOULDBLOCK; any other error, and the end of the stream on a read,
 * marks the connection dead. */
static ssize_t io_outcome(ws_conn_t *ws, wslay_event_context_ptr ctx, ssize_t r, bool eof_is_dead)
{
    if (r > 0 || (r == 0 && !eof_is_dead))
        return r;
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    ws->dead = true;
    wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
    return -1;
}

static ssize_t recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags, void *user)
{
    (void)flags;
    ws_conn_t *ws = user;
    /* wslay queues a pong for every ping it reads, with no bound of its
     * own: stop reading once the queue is over its bound (the client does
     * not read what it asks for). wslay_event_recv then fails and
     * ws_conn_read closes with 1008. The frames of one read buffer (4 KiB,
     * at most 682 empty pings) can overshoot the bound by under 48 KiB. */
    if (ws_conn_queued_cost(ws) > WS_MAX_QUEUED_BYTES) {
        ws->flooded = true;
        ws->proto_error = true; /* wslay queues a close without a code: 1008 */
        ws->bare_close_code = WS_CLOSE_POLICY;
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    if (ws->extra_len) {
        size_t n = ws->extra_len < len ? ws->extra_len : len;
        memcpy(buf, ws->extra, n);
        ws->extra += n;
        ws->extra_len -= n;
        return (ssize_t)n;
    }
    ssize_t r;
    do
        r = recv(ws->fd, buf, len, 0);
    while (r < 0 && errno == EINTR);
    return io_outcome(ws, ctx, r, true);
}

/* Writes the gathered bytes and then data[0, len): returns how many bytes of data
 * were written (0 when the gathered bytes did not all go out), or -1 with errno. */
static ssize_t write_out(ws_conn_t *ws, const uint8_t *data, size_t len)
{
    struct iovec iov[2] = {{ws->out, ws->out_len}, {(void *)data, len}};
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = len ? 2 : 1};
    ssize_t r;
    do
        r = sendmsg(ws->fd, &mh, MSG_NOSIGNAL);
    while (r < 0 && errno == EINTR);
    if (r < 0)
        return -1;
    if ((size_t)r < ws->out_len) {
        memmove(ws->out, ws->out + r, ws->out_len - (size_t)r);
        ws->out_len -= (size_t)r;
        return 0;
    }
    r -= (ssize_t)ws->out_len;
    ws->out_len = 0;
    return r;
}

static ssize_t send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                       void *user)
{
    ws_conn_t *ws = user;
    ssize_t r;
    if ((flags & WSLAY_MSG_MORE) && len <= sizeof(ws->out) - ws->out_len &&
        !(ws->proto_error && len == 2)) {
        memcpy(ws->out + ws->out_len, data, len);
        ws->out_len += len;
        return (ssize_t)len;
    }
    bool bare_close = ws->proto_error && len == 2 && data[0] == 0x88 && data[1] == 0x00;
    if (ws->out_len) {
        /* a code-less close is rewritten below: only the gathered bytes first */
        r = bare_close ? write_out(ws, NULL, 0) : write_out(ws, data, len);
        if (r > 0)
            return r;
        if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
            ws->dead = true;
            wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
            return -1;
        }
        if (r < 0 || !bare_close || ws->out_len) {
            wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
            return -1;
        }
    }
    if (bare_close) {
        /* wslay's close after a frame it refused (or a read we refused)
         * carries no status code: send the same close frame with the code
         * (1002 for a protocol error, as RFC 6455 7.4.1 asks). */
        const uint8_t close_code[4] = {0x88, 0x02, (uint8_t)(ws->bare_close_code >> 8),
                                       (uint8_t)(ws->bare_close_code & 0xff)};
        do
            r = send(ws->fd, close_code, sizeof(close_code), MSG_NOSIGNAL);
        while (r < 0 && errno == EINTR);
        if (r != (ssize_t)sizeof(close_code)) {
            ws->dead = true;
            wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
            return -1;
        }
        return 2;
    }
    do
        r = send(ws->fd, data, len, MSG_NOSIGNAL | ((flags & WSLAY_MSG_MORE) ? MSG_MORE : 0));
    while (r < 0 && errno == EINTR);
    return io_outcome(ws, ctx, r, false);
}

static void msg_cb(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *a,
                   void *user)
{
    (void)ctx;
    ws_conn_t *ws = user;
    if (a->opcode == WSLAY_TEXT_FRAME) {
        if (!ws->closing)
            ws->on_message(ws->arg, false, a->msg, a->msg_length);
    } else if (a->opcode == WSLAY_BINARY_FRAME) {
        if (!ws->closing)
            ws->on_message(ws->arg, true, a->msg, a->msg_length);
    }
    /* ping/pong are answered by wslay; close is answered by wslay too. */
}

ws_conn_t *ws_conn_new(int fd, size_t max_message, const uint8_t *extra, size_t extra_len,
                       ws_message_fn on_message, void *arg)
{
    ws_conn_t *ws = calloc(1, sizeof(*ws));
    if (!ws)
        return NULL;
    ws->fd = fd;
    ws->extra = extra;
    ws->extra_len = extra_len;
    ws->on_message = on_message;
    ws->arg = arg;
    struct wslay_event_callbacks cb = {
        .recv_callback = recv_cb,
        .send_callback = send_cb,
        .on_msg_recv_callback = msg_cb,
    };
    if (wslay_event_context_server_init(&ws->ctx, &cb, ws) != 0) {
        free(ws);
        return NULL;
    }
    wslay_event_config_set_max_recv_msg_length(ws->ctx, max_message);
    return ws;
}

void ws_conn_free(ws_conn_t *ws)
{
    if (!ws)
        return;
    wslay_event_context_free(ws->ctx);
    free(ws);
}

bool ws_conn_read(ws_conn_t *ws)
{
    if (ws->dead)
        return false;
    if (!wslay_event_want_read(ws->ctx))
        return false;
    int r = wslay_event_recv(ws->ctx);
    if (ws->flooded || (!ws->dead && ws_conn_queued_cost(ws) > WS_MAX_QUEUED_BYTES)) {
        /* Control frames (pings) do not count as activity for the caller's
         * idle timeout; they are bounded here instead. */
        log_info("websocket: output queue over %u bytes while reading (ping flood?): closing",
                 (unsigned)WS_MAX_QUEUED_BYTES);
        ws_conn_close(ws, WS_CLOSE_POLICY, "client too slow");
        wslay_event_shutdown_read(ws->ctx);
        return false;
    }
    if (r != 0) {
        if (ws->dead)
            return false; /* the socket failed or the peer left */
        /* wslay refused a frame (a fragmented control frame, a reserved
         * opcode, ...) and queued a close without a status code; send_cb
         * turns it into 1002. If nothing was queued, queue 1002 now. */
        ws->proto_error = true;
        ws->bare_close_code = WS_CLOSE_PROTOCOL;
        ws_conn_close(ws, WS_CLOSE_PROTOCOL, "protocol error");
        return false;
    }
    /* A protocol error makes wslay queue a close and stop reading. */
    return !ws->dead && wslay_event_want_read(ws->ctx);
}

bool ws_conn_flush(ws_conn_t *ws)
{
    if (ws->dead)
        return false;
    if (wslay_event_want_write(ws->ctx) && wslay_event_send(ws->ctx) != 0) {
        ws->dead = true;
        return false;
    }
    /* wslay ends a burst with a frame without "more follows", which writes the
     * gathered bytes; whatever a full socket left behind goes out here. */
    if (!ws->dead && ws->out_len && !wslay_event_want_write(ws->ctx) &&
        write_out(ws, NULL, 0) < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
        ws->dead = true;
    if (ws->dead)
        return false;
    /* Finished once our close frame is out (we do not wait for the echo of
     * a peer that broke the protocol), or both sides are done. */
    if (wslay_event_get_close_sent(ws->ctx) && !wslay_event_want_write(ws->ctx) && !ws->out_len)
        return false;
    return wslay_event_want_read(ws->ctx) || wslay_event_want_write(ws->ctx) || ws->out_len;
}

bool ws_conn_want_write(const ws_conn_t *ws)
{
    return !ws->dead && (wslay_event_want_write(ws->ctx) || ws->out_len);
}

bool ws_conn_want_read(const ws_conn_t *ws)
{
    return !ws->dead && wslay_event_want_read(ws->ctx);
}

bool ws_conn_alive(const ws_conn_t *ws)
{
    return !ws->dead && !ws->closing && !wslay_event_get_close_received(ws->ctx) &&
           !wslay_event_get_close_sent(ws->ctx) && wslay_event_get_read_enabled(ws->ctx);
}

bool ws_conn_send(ws_conn_t *ws, bool binary, const void *data, size_t len)
{
    if (!ws_conn_alive(ws))
        return false;
    if (ws_conn_queued_cost(ws) + len + WS_QUEUED_MSG_COST > WS_MAX_QUEUED_BYTES) {
        /* Said once per connection (a close is then queued): what a client that
         * reconnects missed in between is gone, so the operator must see it. */
        log_warn("websocket: client too slow: over %u bytes queued for it; closing (1008)",
                 (unsigned)WS_MAX_QUEUED_BYTES);
        ws_conn_close(ws, WS_CLOSE_POLICY, "client too slow");
        return false;
    }
    struct wslay_event_msg m = {
        .opcode = binary ? WSLAY_BINARY_FRAME : WSLAY_TEXT_FRAME,
        .msg = data,
        .msg_length = len,
    };
    return wslay_event_queue_msg(ws->ctx, &m) == 0;
}

void ws_conn_close(ws_conn_t *ws, uint16_t code, const char *reason)
{
    if (ws->closing)
        return;
    ws->closing = true;
    size_t rl = reason ? strlen(reason) : 0;
    if (rl > 123)
        rl = 123;
    /* Fails only when a close is already queued or sent: nothing left to do. */
    if (wslay_event_queue_close(ws->ctx, code, (const uint8_t *)reason, rl) != 0)
        log_debug("websocket close not queued (already closing)");
    wslay_event_shutdown_read(ws->ctx);
}
