/* libFuzzer target for the WebSocket frame reader (src/realtime/ws.c over
 * wslay): the input is what a client sends after the handshake. It is fed as
 * the connection's "extra" bytes, messages are echoed back as the realtime
 * loop answers them, and what the server queues (replies, close frames) is
 * written to a socketpair and drained. Must never crash, leak or hang. */
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <unistd.h>

#include "realtime/ws.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static ws_conn_t *current;

static void on_message(void *arg, bool binary, const uint8_t *msg, size_t len)
{
    (void)arg;
    if (len < 64 && !ws_conn_send(current, binary, msg, len))
        ws_conn_close(current, WS_CLOSE_SERVER_ERROR, "send refused");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int sv[2] = {-1, -1};
    if (sv[0] < 0) {
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
            return 0;
        fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
        fcntl(sv[1], F_SETFL, fcntl(sv[1], F_GETFL) | O_NONBLOCK);
    }
    current = ws_conn_new(sv[0], 4096, data, size, on_message, NULL);
    if (!current)
        return 0;
    /* Everything is in "extra": the reads end when it is used up (the socket
     * has nothing, so recv says EAGAIN) or the connection fails. */
    for (int i = 0; i < 4 && ws_conn_read(current); i++)
        ;
    uint8_t sink[4096];
    for (int i = 0; i < 64 && ws_conn_want_write(current); i++) {
        if (!ws_conn_flush(current))
            break;
        while (read(sv[1], sink, sizeof(sink)) > 0)
            ;
    }
    while (read(sv[1], sink, sizeof(sink)) > 0)
        ;
    ws_conn_free(current);
    current = NULL;
    return 0;
}
