/*
 * The SendGrid provider (sendgrid.h): Mail Send requests through libcurl,
 * with the JSON built by jansson, and the Event Webhook's ECDSA check through
 * OpenSSL (d2i_PUBKEY + EVP_DigestVerify). Nothing here is hand-rolled
 * crypto or JSON; the code only puts SendGrid's documented shapes together.
 */
#include <ctype.h>
#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/crypto.h"
#include "core/text.h"
#include "providers/sendgrid.h"
#include "providers/webapi.h"

/* ------------------------------------------------------------- requests */

/* {"k": "v", ...} of n pairs; NULL when out of memory. */
static json_t *pairs_object(const sendgrid_subst_t *p, size_t n)
{
    json_t *o = json_object();
    for (size_t i = 0; o && i < n; i++)
        if (json_object_set_new(o, p[i].key, json_string(p[i].value)) != 0) {
            json_decref(o);
            return NULL;
        }
    return o;
}

/* One personalization; NULL with err set when it breaks a limit. */
static json_t *personalization(const sendgrid_recipient_t *r, char *err, size_t errlen)
{
    if (!r->email || !*r->email || !cd_is_uuid(r->message_id)) {
        snprintf(err, errlen, "every recipient needs an address and a message id (UUID)");
        return NULL;
    }
    size_t bytes = 0;
    for (size_t i = 0; i < r->nsubst; i++)
        bytes += strlen(r->subst[i].key) + strlen(r->subst[i].value);
    if (bytes > SENDGRID_MAX_SUBST_BYTES) {
        snprintf(err, errlen, "substitutions for %s exceed %d bytes", r->email,
                 SENDGRID_MAX_SUBST_BYTES);
        return NULL;
    }
    json_t *p = json_pack("{s:[{s:s}], s:{s:s}}", "to", "email", r->email, "custom_args",
                          SENDGRID_MESSAGE_ARG, r->message_id);
    if (p && r->nsubst)
        json_object_set_new(p, "substitutions", pairs_object(r->subst, r->nsubst));
    if (p && r->nheaders)
        json_object_set_new(p, "headers", pairs_object(r->headers, r->nheaders));
    return p;
}

static json_t *mail_envelope(const sendgrid_mail_t *m)
{
    json_t *from = json_pack("{s:s}", "email", m->from);
    if (from && m->from_name && *m->from_name)
        json_object_set_new(from, "name", json_string(m->from_name));
    /* text/plain first: SendGrid requires that order */
    json_t *content = json_pack("[{s:s, s:s}]", "type", "text/plain", "value", m->text);
    if (content && m->html)
        json_array_append_new(content,
                              json_pack("{s:s, s:s}", "type", "text/html", "value", m->html));
    json_t *body = json_pack("{s:o, s:s, s:o, s:[]}", "from", from, "subject", m->subject,
                             "content", content, "personalizations");
    if (body && m->nheaders)
        json_object_set_new(body, "headers", pairs_object(m->headers, m->nheaders));
    return body;
}

bool sendgrid_build_request(const sendgrid_mail_t *m, cd_buf_t *out, char *err, size_t errlen)
{
    if (m->nto == 0 || m->nto > SENDGRID_MAX_PERSONALIZATIONS) {
        snprintf(err, errlen, "a batch has 1 to %d recipients", SENDGRID_MAX_PERSONALIZATIONS);
        return false;
    }
    if (!m->from || !m->subject || !m->text) {
        snprintf(err, errlen, "from, subject and a text part are required");
        return false;
    }
    json_t *body = mail_envelope(m);
    json_t *list = json_object_get(body, "personalizations");
    bool ok = body && list;
    for (size_t i = 0; ok && i < m->nto; i++) {
        json_t *p = personalization(&m->to[i], err, errlen);
        ok = p && json_array_append_new(list, p) == 0;
    }
    char *text = ok ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (ok && (!text || !cd_buf_adds(out, text))) {
        snprintf(err, errlen, "the request is larger than %d bytes", SENDGRID_MAX_REQUEST_BYTES);
        ok = false;
    } else if (!ok && !*err) {
        snprintf(err, errlen, "out of memory");
    }
    free(text);
    return ok;
}

/* ----------------------------------------------------------------- send */

sendgrid_client_t *sendgrid_client_new(void)
{
    return webapi_client_new();
}

void sendgrid_client_free(sendgrid_client_t *c)
{
    webapi_client_free(c);
}

/* Keeps X-Message-Id from the response headers. */
static size_t header_cb(char *p, size_t size, size_t nmemb, void *userp)
{
    sendgrid_result_t *res = userp;
    size_t n = size * nmemb;
    static const char name[] = "x-message-id:";
    if (n > sizeof(name) && strncasecmp(p, name, sizeof(name) - 1) == 0) {
        const char *v = p + sizeof(name) - 1;
        size_t k = n - (sizeof(name) - 1);
        while (k && (*v == ' ' || *v == '\t'))
            v++, k--;
        while (k && (v[k - 1] == '\r' || v[k - 1] == '\n' || v[k - 1] == ' '))
            k--;
        if (k < sizeof(res->x_message_id))
            snprintf(res->x_message_id, sizeof(res->x_message_id), "%.*s", (int)k, v);
    }
    return n;
}

/* SendGrid's {"errors":[{"message":...,"field":...}]} as one line. */
static void read_errors(const cd_buf_t *body, sendgrid_result_t *res)
{
    json_t *j = json_loadb(body->data ? body->data : "", body->len, 0, NULL);
    json_t *errors = json_object_get(j, "errors");
    size_t used = (size_t)snprintf(res->error, sizeof(res->error), "SendGrid answered HTTP %ld",
                                   res->http_status);
    size_t i;
    json_t *e;
    json_array_foreach(errors, i, e)
    {
        const char *msg = json_string_value(json_object_get(e, "message"));
        const char *field = json_string_value(json_object_get(e, "field"));
        if (msg && used < sizeof(res->error))
            used +=
                (size_t)snprintf(res->error + used, sizeof(res->error) - used, "%s %s%s%s",
                                 i ? ";" : ":", msg, field ? " - field " : "", field ? field : "");
    }
    json_decref(j);
}

sendgrid_outcome_t sendgrid_send(sendgrid_client_t *c, const sendgrid_config_t *cfg,
                                 const sendgrid_mail_t *m, sendgrid_result_t *res)
{
    memset(res, 0, sizeof(*res));
    res->outcome = SENDGRID_PERMANENT;
    cd_buf_t req, answer;
    cd_buf_init(&req, SENDGRID_MAX_REQUEST_BYTES);
    cd_buf_init(&answer, 256 * 1024);
    struct curl_slist *hdrs = NULL;
    char url[2048], auth[1100];
    if (!cfg->api_key || !*cfg->api_key || strpbrk(cfg->api_key, "\r\n") ||
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", cfg->api_key) >=
            (int)sizeof(auth)) {
        snprintf(res->error, sizeof(res->error), "SendGrid is not configured (SENDGRID_API_KEY)");
        goto done;
    }
    if (!sendgrid_build_request(m, &req, res->error, sizeof(res->error)))
        goto done;
    snprintf(url, sizeof(url), "%s/v3/mail/send", cfg->api_base);
    hdrs = curl_slist_append(hdrs, auth);
    hdrs = hdrs ? curl_slist_append(hdrs, "Content-Type: application/json") : NULL;
    if (!hdrs) {
        snprintf(res->error, sizeof(res->error), "out of memory");
        goto done;
    }
    webapi_request_t r = {.url = url,
                          .headers = hdrs,
                          .body = req.data,
                          .body_len = req.len,
                          .header_cb = header_cb,
                          .header_data = res,
                          .timeout_seconds = cfg->timeout_seconds};
    char why[CURL_ERROR_SIZE] = "";
    webapi_status_t ws = webapi_perform(c, &r, &answer, &res->http_status, why, sizeof(why));
    if (ws != WEBAPI_ANSWERED) {
        res->outcome = ws == WEBAPI_NOT_SENT ? SENDGRID_TEMPORARY : SENDGRID_UNKNOWN;
        snprintf(res->error, sizeof(res->error), "SendGrid request failed: %s", why);
        goto done;
    }
    long s = res->http_status;
    res->outcome = s == 202 || s == 200   ? SENDGRID_ACCEPTED
                   : s == 429 || s >= 500 ? SENDGRID_TEMPORARY
                                          : SENDGRID_PERMANENT;
    if (res->outcome != SENDGRID_ACCEPTED)
        read_errors(&answer, res);
done:
    curl_slist_free_all(hdrs);
    cd_buf_free(&req);
    cd_buf_free(&answer);
    return res->outcome;
}

/* ----------------------------------------------------------- signatures */

/* Decodes standard base64 (padding required, surrounding whitespace
 * ignored) into out; false on anything else. */
static bool b64_decode(const char *in, unsigned char *out, size_t cap, size_t *len)
{
    while (isspace((unsigned char)*in))
        in++;
    size_t n = strlen(in);
    while (n && isspace((unsigned char)in[n - 1]))
        n--;
    if (n == 0 || n % 4 != 0 || n / 4 * 3 > cap)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)in[i];
        bool pad = c == '=' && i >= n - 2 && (i == n - 1 || in[n - 1] == '=');
        if (!(isalnum(c) || c == '+' || c == '/' || pad))
            return false;
    }
    int w = EVP_DecodeBlock(out, (const unsigned char *)in, (int)n);
    if (w < 0)
        return false;
    size_t pads = (in[n - 1] == '=') + (in[n - 2] == '=');
    *len = (size_t)w - pads;
    return true;
}

/* The P-256 key of base64 DER SubjectPublicKeyInfo, or NULL. */
static EVP_PKEY *load_key(const char *public_key_b64)
{
    unsigned char der[512];
    size_t n;
    if (!public_key_b64 || !b64_decode(public_key_b64, der, sizeof(der), &n))
        return NULL;
    const unsigned char *p = der;
    EVP_PKEY *k = d2i_PUBKEY(NULL, &p, (long)n);
    char group[64] = "";
    size_t glen = 0;
    if (!k || p != der + n || !EVP_PKEY_is_a(k, "EC") ||
        !EVP_PKEY_get_group_name(k, group, sizeof(group), &glen) ||
        strcmp(group, "prime256v1") != 0) {
        EVP_PKEY_free(k);
        return NULL;
    }
    return k;
}

bool sendgrid_public_key_ok(const char *public_key_b64)
{
    EVP_PKEY *k = load_key(public_key_b64);
    EVP_PKEY_free(k);
    return k != NULL;
}

bool sendgrid_signature_ok(const char *public_key_b64, const char *signature_b64,
                           const char *timestamp, const char *body, size_t len)
{
    unsigned char sig[256];
    size_t siglen;
    if (!signature_b64 || !timestamp || !*timestamp ||
        !b64_decode(signature_b64, sig, sizeof(sig), &siglen))
        return false;
    EVP_PKEY *k = load_key(public_key_b64);
    EVP_MD_CTX *md = k ? EVP_MD_CTX_new() : NULL;
    bool ok = md && EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, k) == 1 &&
              EVP_DigestVerifyUpdate(md, timestamp, strlen(timestamp)) == 1 &&
              EVP_DigestVerifyUpdate(md, body, len) == 1 &&
              EVP_DigestVerifyFinal(md, sig, siglen) == 1;
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(k);
    return ok;
}

/* --------------------------------------------------------------- events */

/* An event is an object of scalars, arrays (category) and small objects. */
#define SENDGRID_MAX_DEPTH 4

/* Checks one event; false with err set. */
static bool event_ok(json_t *e, size_t i, char *err, size_t errlen)
{
    const char *what = NULL;
    json_t *id = json_object_get(e, "sg_event_id");
    if (!json_is_object(e))
        what = "is not an object";
    else if (!json_is_string(json_object_get(e, "event")))
        what = "has no string \"event\"";
    else if (!json_is_string(id) || json_string_length(id) == 0 || json_string_length(id) > 100)
        what = "has no \"sg_event_id\" of 1 to 100 characters";
    else if (!json_is_integer(json_object_get(e, "timestamp")))
        what = "has no integer \"timestamp\"";
    else if (!json_is_string(json_object_get(e, "email")))
        what = "has no string \"email\"";
    if (what)
        snprintf(err, errlen, "event %zu %s", i, what);
    return what == NULL;
}

json_t *sendgrid_events_parse(const char *body, size_t len, char *err, size_t errlen)
{
    json_error_t je;
    json_t *a = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    if (!a) {
        snprintf(err, errlen, "the body is not JSON: %s", je.text);
        return NULL;
    }
    size_t n = json_is_array(a) ? json_array_size(a) : 0;
    if (cd_json_depth(a, SENDGRID_MAX_DEPTH + 1) > SENDGRID_MAX_DEPTH) {
        snprintf(err, errlen, "the events nest deeper than %d levels", SENDGRID_MAX_DEPTH);
        json_decref(a);
        return NULL;
    }
    if (n == 0 || n > SENDGRID_MAX_EVENTS) {
        snprintf(err, errlen, "the body must be an array of 1 to %d events", SENDGRID_MAX_EVENTS);
        json_decref(a);
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        if (!event_ok(json_array_get(a, i), i, err, errlen)) {
            json_decref(a);
            return NULL;
        }
    return a;
}

/* ------------------------------------------------- the e-mail provider */

typedef struct sendgrid_provider {
    email_provider_t base;    /* first: the seam's view */
    webapi_account_t account; /* api_base, the API key (secret), client */
} sendgrid_provider_t;

static bool same_content(const provider_email_t *a, const provider_email_t *b)
{
    const char *an = a->from_name ? a->from_name : "", *bn = b->from_name ? b->from_name : "";
    return strcmp(a->from, b->from) == 0 && strcmp(an, bn) == 0 &&
           strcmp(a->subject, b->subject) == 0 && strcmp(a->text, b->text) == 0 &&
           ((!a->html && !b->html) || (a->html && b->html && strcmp(a->html, b->html) == 0));
}

/* Sends msgs[0..n) (same content) as one request; fills their results. */
static void send_group(sendgrid_provider_t *sp, const provider_email_t *msgs, size_t n,
                       provider_email_result_t *results)
{
    sendgrid_recipient_t *to = calloc(n, sizeof(*to));
    sendgrid_subst_t(*hdr)[PROVIDER_HEADERS_MAX] = calloc(n, sizeof(*hdr));
    sendgrid_result_t res = {.outcome = SENDGRID_TEMPORARY};
    if (to && hdr) {
        for (size_t i = 0; i < n; i++) {
            size_t nh =
                msgs[i].nheaders < PROVIDER_HEADERS_MAX ? msgs[i].nheaders : PROVIDER_HEADERS_MAX;
            for (size_t h = 0; h < nh; h++)
                hdr[i][h] = (sendgrid_subst_t){msgs[i].headers[h].name, msgs[i].headers[h].value};
            to[i] = (sendgrid_recipient_t){msgs[i].to, msgs[i].message_uuid, NULL, 0, hdr[i], nh};
        }
        sendgrid_mail_t m = {.from = msgs[0].from,
                             .from_name = msgs[0].from_name,
                             .subject = msgs[0].subject,
                             .text = msgs[0].text,
                             .html = msgs[0].html,
                             .to = to,
                             .nto = n};
        const webapi_account_t *a = &sp->account;
        sendgrid_config_t cfg = {a->api_base, a->secret, a->timeout_seconds};
        sendgrid_send(a->client, &cfg, &m, &res);
    } else {
        snprintf(res.error, sizeof(res.error), "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        provider_email_result_t *r = &results[i];
        memset(r, 0, sizeof(*r));
        r->outcome = res.outcome == SENDGRID_ACCEPTED    ? PROVIDER_ACCEPTED
                     : res.outcome == SENDGRID_TEMPORARY ? PROVIDER_TEMPFAIL
                     : res.outcome == SENDGRID_UNKNOWN   ? PROVIDER_UNKNOWN
                                                         : PROVIDER_PERMFAIL;
        snprintf(r->provider_id, sizeof(r->provider_id), "%s", res.x_message_id);
        snprintf(r->error, sizeof(r->error), "%.*s", (int)sizeof(r->error) - 1, res.error);
    }
    free(hdr);
    free(to);
}

/* Runs of messages with the same content go out as one request with one
 * personalization each (SendGrid's batching); the rest one request each. */
static void sendgrid_provider_send_batch(email_provider_t *p, const provider_email_t *msgs,
                                         size_t n, provider_email_result_t *results)
{
    sendgrid_provider_t *sp = (sendgrid_provider_t *)p;
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        while (j < n && j - i < SENDGRID_MAX_PERSONALIZATIONS && same_content(&msgs[i], &msgs[j]))
            j++;
        send_group(sp, msgs + i, j - i, results + i);
        i = j;
    }
}

static void sendgrid_provider_close(email_provider_t *p)
{
    sendgrid_provider_t *sp = (sendgrid_provider_t *)p;
    webapi_account_close(&sp->account);
    free(sp);
}

static const email_provider_ops_t sendgrid_provider_ops = {
    .name = "sendgrid",
    .send_batch = sendgrid_provider_send_batch,
    .close = sendgrid_provider_close,
    /* one call carries a step's group (the engine caps it at
     * SEND_IN_FLIGHT, group_size); messages of the same content share a
     * request (personalizations) */
    .max_in_flight = PROVIDER_BATCH_MAX,
};

email_provider_t *sendgrid_provider_open(const provider_settings_t *s, char *err, size_t errlen)
{
    sendgrid_provider_t *sp = calloc(1, sizeof(*sp));
    if (!sp) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (!webapi_account_open(&sp->account, s->sendgrid_api_base, "https://api.sendgrid.com",
                             "SENDGRID_API_BASE", s->sendgrid_api_key, "SENDGRID_API_KEY",
                             s->timeout_seconds, err, errlen)) {
        free(sp);
        return NULL;
    }
    sp->base.ops = &sendgrid_provider_ops;
    return &sp->base;
}
