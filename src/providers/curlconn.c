/*
 * A connection libcurl opens and we speak on (curlconn.h).
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <string.h>

#include "providers/curlconn.h"

static const char *test_cainfo; /* curlconn_test_set_cainfo */

void curlconn_test_set_cainfo(const char *path)
{
    test_cainfo = path;
}

CURLcode curlconn_open(curlconn_t *k, const char *url, const char *protocols, long timeout_ms,
                       void (*setup)(CURL *curl, void *arg), void *arg, char *curl_err)
{
    curl_err[0] = '\0';
    k->fd = CURL_SOCKET_BAD;
    if (!(k->curl = curl_easy_init()))
        return CURLE_OUT_OF_MEMORY;
    CURL *c = k->curl;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, protocols);
    curl_easy_setopt(c, CURLOPT_CONNECT_ONLY, 1L);
    if (test_cainfo)
        curl_easy_setopt(c, CURLOPT_CAINFO, test_cainfo);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms > 0 ? timeout_ms : 1L);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, curl_err);
    k->tls = strncmp(url, "https://", 8) == 0 || strncmp(url, "smtps://", 8) == 0;
    if (setup)
        setup(c, arg);
    CURLcode rc = curl_easy_perform(c);
    curl_easy_setopt(c, CURLOPT_VERBOSE, 0L); /* a setup's debug callback saw the connect */
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, NULL);
    curl_socket_t fd = CURL_SOCKET_BAD;
    if (rc == CURLE_OK && curl_easy_getinfo(c, CURLINFO_ACTIVESOCKET, &fd) == CURLE_OK &&
        fd != CURL_SOCKET_BAD) {
        k->fd = fd;
        return CURLE_OK;
    }
    return rc == CURLE_OK ? CURLE_COULDNT_CONNECT : rc;
}

bool curlconn_wait(const curlconn_t *k, bool out, long long deadline)
{
    for (;;) {
        long long left = deadline - cd_mono_ms();
        if (left <= 0)
            return false;
        struct pollfd p = {.fd = k->fd, .events = out ? POLLOUT : POLLIN};
        int r = poll(&p, 1, left > INT_MAX ? INT_MAX : (int)left);
        if (r > 0)
            return true;
        if (r < 0 && errno != EINTR)
            return false;
    }
}

bool curlconn_write(curlconn_t *k, const char *p, size_t n, size_t *written, long long deadline)
{
    while (n > 0) {
        size_t w = 0;
        CURLcode rc = curl_easy_send(k->curl, p, n, &w);
        /* nothing taken is a wait too: never spin past the deadline */
        if (rc == CURLE_AGAIN || (rc == CURLE_OK && w == 0)) {
            if (!curlconn_wait(k, true, deadline))
                return false;
            continue;
        }
        if (rc != CURLE_OK)
            return false;
        if (written)
            *written += w;
        p += w;
        n -= w;
    }
    return true;
}

long curlconn_fill(curlconn_t *k, long long deadline, CURLcode *rc)
{
    CURLcode dummy;
    if (!rc)
        rc = &dummy;
    *rc = CURLE_OK;
    /* In the clear nothing is buffered below us: wait first (the answer is
     * rarely there yet) instead of a recv that says EAGAIN. Over TLS,
     * OpenSSL may hold a record already read: recv first. */
    if (!k->tls && !curlconn_wait(k, false, deadline))
        goto timeout;
    for (;;) {
        size_t got = 0;
        CURLcode r = curl_easy_recv(k->curl, k->in + k->inlen, sizeof(k->in) - k->inlen, &got);
        if (r == CURLE_AGAIN) {
            if (!curlconn_wait(k, false, deadline))
                goto timeout;
            continue;
        }
        if (r != CURLE_OK) {
            *rc = r;
            return -1;
        }
        k->inlen += got;
        return (long)got;
    }
timeout:
    *rc = CURLE_OPERATION_TIMEDOUT;
    return -1;
}
