/*
 * WebSocket (RFC 6455) on an upgraded socket, with wslay doing the framing:
 * the handshake accept key, and a non-blocking connection object that reads
 * frames, hands whole messages to a callback and queues outgoing messages
 * with a bound. Protocol violations (unmasked client frames, oversized
 * messages, invalid UTF-8 in text, fragmented control frames, reserved bits)
 * close the connection with the RFC's close code; nothing aborts.
 */
#ifndef CD_REALTIME_WS_H
#define CD_REALTIME_WS_H

#include <stddef.h>
#include <stdint.h>

#include "core/common.h"

/* Length of a Sec-WebSocket-Accept value, without the NUL. */
#define WS_ACCEPT_LEN 28
/* Outgoing bytes queued for one client before it is cut off as too slow.
 * Every queued message (pongs and close frames included) is charged
 * WS_QUEUED_MSG_COST bytes on top of its payload, so a flood of empty pings
 * is bounded too. */
#define WS_MAX_QUEUED_BYTES (8u << 20)
#define WS_QUEUED_MSG_COST  64u

/* RFC 6455 close codes this server sends. */
#define WS_CLOSE_NORMAL       1000
#define WS_CLOSE_GOING_AWAY   1001
#define WS_CLOSE_PROTOCOL     1002
#define WS_CLOSE_BAD_DATA     1007
#define WS_CLOSE_POLICY       1008
#define WS_CLOSE_TOO_BIG      1009
#define WS_CLOSE_SERVER_ERROR 1011

typedef struct ws_conn ws_conn_t;

/* Called once per complete data message (wslay has checked text to be UTF-8).
 * May call ws_conn_send / ws_conn_close on the same connection. */
typedef void (*ws_message_fn)(void *arg, bool binary, const uint8_t *data, size_t len);

/* Computes Sec-WebSocket-Accept for the client's Sec-WebSocket-Key into out
 * (WS_ACCEPT_LEN + 1 bytes). Returns false if the key is not the base64 of
 * 16 bytes. */
CD_MUSTCHECK bool ws_accept_key(const char *client_key, char out[WS_ACCEPT_LEN + 1]);

/* Wraps a connected non-blocking socket (still owned by the caller, who
 * closes it after ws_conn_free). extra: bytes already read past the HTTP head,
 * processed before the socket. max_message: largest message accepted (1009
 * beyond). Returns NULL when out of memory. */
ws_conn_t *ws_conn_new(int fd, size_t max_message, const uint8_t *extra, size_t extra_len,
                       ws_message_fn on_message, void *arg);
void ws_conn_free(ws_conn_t *ws);

/* Reads what the socket has and dispatches complete messages. Returns false
 * when the connection is finished (peer gone, or a protocol error whose close
 * frame has been queued: keep calling ws_conn_flush until it returns false). */
CD_MUSTCHECK bool ws_conn_read(ws_conn_t *ws);
/* Writes queued frames. Returns false when the connection is finished and the
 * socket should be closed (error, or close handshake done). */
CD_MUSTCHECK bool ws_conn_flush(ws_conn_t *ws);
/* Whether frames are waiting to be written (poll for writability). */
bool ws_conn_want_write(const ws_conn_t *ws);
/* Whether the connection still reads from the socket (poll for readability);
 * false once a close was sent or received, or the peer is gone. */
bool ws_conn_want_read(const ws_conn_t *ws);
/* What the queue costs now: queued payload bytes plus WS_QUEUED_MSG_COST per
 * queued message. Kept at most about WS_MAX_QUEUED_BYTES: once past it the
 * connection stops reading (a ping flood from a client that does not read
 * its pongs) and queues a 1008 close. */
size_t ws_conn_queued_cost(const ws_conn_t *ws);
/* Whether the connection is still open in both directions as far as the
 * application is concerned (no close sent or received). */
bool ws_conn_alive(const ws_conn_t *ws);

/* Queues a text or binary message (copied). Returns false when the
 * connection is closing or more than WS_MAX_QUEUED_BYTES are waiting (then a
 * 1008 close has been queued). */
CD_MUSTCHECK bool ws_conn_send(ws_conn_t *ws, bool binary, const void *data, size_t len);
/* Queues a close frame with code and a short reason (at most 123 bytes). */
void ws_conn_close(ws_conn_t *ws, uint16_t code, const char *reason);

#endif
