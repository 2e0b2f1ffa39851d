/*
 * A connection libcurl opens and we speak on: the send engine's own SMTP
 * conversation (smtp.c) and HTTP/1.1 exchange (webapi.c) share it. libcurl
 * does the connect phase (CURLOPT_CONNECT_ONLY: TCP, a proxy's CONNECT, TLS
 * with its certificate checks, and for SMTP the greeting, EHLO, STARTTLS and
 * AUTH); the protocol's bytes then go through curl_easy_send and
 * curl_easy_recv, each protocol keeping only its own parsing.
 */
#ifndef CD_PROVIDERS_CURLCONN_H
#define CD_PROVIDERS_CURLCONN_H

#include <curl/curl.h>
#include <stddef.h>

#include "core/common.h"

/* The input buffer: a whole SMTP reply, or an HTTP answer's line, fits. */
#define CURLCONN_IN_MAX (16 * 1024)

typedef struct curlconn {
    CURL *curl;
    curl_socket_t fd;
    bool tls;     /* TLS on it: OpenSSL may hold bytes the socket no longer shows */
    size_t inlen; /* bytes read into in and not taken yet */
    char in[CURLCONN_IN_MAX];
} curlconn_t;

/* Opens k (zeroed by the caller) to url: protocols is libcurl's
 * CURLOPT_PROTOCOLS_STR, timeout_ms bounds the connect phase, setup(curl,
 * arg) sets the protocol's own options first (may be NULL). k->tls starts
 * true for https:// and smtps:// (a protocol that starts TLS later sets it).
 * curl_err (CURL_ERROR_SIZE bytes) gets libcurl's message. Returns CURLE_OK
 * with k->fd set, or libcurl's code (CURLE_COULDNT_CONNECT when no socket
 * came); k->curl is then still the caller's to clean up, its own way. */
CURLcode curlconn_open(curlconn_t *k, const char *url, const char *protocols, long timeout_ms,
                       void (*setup)(CURL *curl, void *arg), void *arg, char *curl_err);

/* Waits until k is readable (out: writable) or the deadline (cd_mono_ms)
 * passes: false then, or when poll fails. */
bool curlconn_wait(const curlconn_t *k, bool out, long long deadline);

/* Writes p[0..n); *written (when not NULL) counts what went. False when the
 * connection broke or the deadline passed. */
bool curlconn_write(curlconn_t *k, const char *p, size_t n, size_t *written, long long deadline);

/* Reads what k has into k->in after k->inlen (which must leave room),
 * waiting for it until the deadline. Returns the bytes read (> 0), 0 when
 * the peer closed, -1 when the connection broke (*rc: libcurl's code) or
 * the deadline passed (*rc: CURLE_OPERATION_TIMEDOUT); rc may be NULL. */
long curlconn_fill(curlconn_t *k, long long deadline, CURLcode *rc);

/* Tests only: the CA file these connections trust (NULL: the system's), so
 * a test can speak TLS to its own server. */
void curlconn_test_set_cainfo(const char *path);

#endif
