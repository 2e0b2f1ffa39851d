/*
 * The SendGrid provider: the v3 Mail Send call (POST
 * {SENDGRID_API_BASE}/v3/mail/send, bearer API key) with one shared content
 * and up to 1000 personalizations per request, each carrying our message id
 * in custom_args (SendGrid echoes custom_args in every Event Webhook event),
 * plus the Event Webhook's side: the ECDSA P-256 signature check
 * (X-Twilio-Email-Event-Webhook-Signature over timestamp + body, with the
 * public key from SendGrid's console) and the parser of the event batch.
 * Blocking: call sendgrid_send from a worker thread, never from a handler.
 */
#ifndef CD_PROVIDERS_SENDGRID_H
#define CD_PROVIDERS_SENDGRID_H

#include <jansson.h>
#include <stddef.h>

#include "core/buf.h"
#include "core/common.h"
#include "providers/provider.h"

/* SendGrid's limit of personalizations per request. */
#define SENDGRID_MAX_PERSONALIZATIONS 1000
/* SendGrid's limit of substitution bytes per personalization. */
#define SENDGRID_MAX_SUBST_BYTES 10000
/* A request body is at most 30 MB for SendGrid; we stop well before. */
#define SENDGRID_MAX_REQUEST_BYTES (20 * 1024 * 1024)
/* Events accepted in one webhook post (SendGrid batches up to ~1000). */
#define SENDGRID_MAX_EVENTS 5000
/* The custom_args key that carries our email_messages.id. */
#define SENDGRID_MESSAGE_ARG "campaignd_message_id"

/* One substitution: key (e.g. "-unsubscribe_url-") replaced by value in the
 * shared content for this recipient only. */
typedef struct sendgrid_subst {
    const char *key;
    const char *value;
} sendgrid_subst_t;

/* One recipient of a batch. */
typedef struct sendgrid_recipient {
    const char *email;
    const char *message_id; /* our email_messages.id (UUID), into custom_args */
    const sendgrid_subst_t *subst;
    size_t nsubst;
    /* headers for this recipient only (List-Unsubscribe with its own
     * link); may be NULL */
    const sendgrid_subst_t *headers;
    size_t nheaders;
} sendgrid_recipient_t;

/* One content sent to up to SENDGRID_MAX_PERSONALIZATIONS recipients. */
typedef struct sendgrid_mail {
    const char *from;      /* sender address */
    const char *from_name; /* may be NULL */
    const char *subject;
    const char *text; /* plain-text part (required) */
    const char *html; /* HTML part, or NULL */
    /* headers for every recipient (List-Unsubscribe-Post); may be NULL */
    const sendgrid_subst_t *headers;
    size_t nheaders;
    const sendgrid_recipient_t *to;
    size_t nto;
} sendgrid_mail_t;

/* Builds the JSON body of a Mail Send request into out. False with err set
 * when the batch breaks a SendGrid limit (no recipient, too many, a
 * substitution set over SENDGRID_MAX_SUBST_BYTES, a message id that is not a
 * UUID) or out is full. */
CD_MUSTCHECK bool sendgrid_build_request(const sendgrid_mail_t *m, cd_buf_t *out, char *err,
                                         size_t errlen);

typedef struct sendgrid_config {
    const char *api_base; /* SENDGRID_API_BASE, e.g. https://api.sendgrid.com */
    const char *api_key;
    long timeout_seconds;
} sendgrid_config_t;

typedef enum sendgrid_outcome {
    SENDGRID_ACCEPTED = 0, /* 202: queued by SendGrid for every personalization */
    SENDGRID_UNKNOWN,      /* the request may have arrived but no answer came
                              (timeout, connection lost after sending): never
                              retry, it could send twice */
    SENDGRID_TEMPORARY,    /* 429, 5xx, or no connection at all */
    SENDGRID_PERMANENT,    /* another 4xx, or a batch we could not build */
} sendgrid_outcome_t;

typedef struct sendgrid_result {
    sendgrid_outcome_t outcome;
    long http_status;
    char x_message_id[128]; /* SendGrid's X-Message-Id of the request */
    char error[512];        /* SendGrid's error texts, never the API key */
} sendgrid_result_t;

/* A reusable connection (keep-alive). One per thread: not thread-safe. */
typedef struct webapi_client sendgrid_client_t; /* providers/webapi.h */
sendgrid_client_t *sendgrid_client_new(void);
void sendgrid_client_free(sendgrid_client_t *c);

/* Sends the batch; fills res and returns res->outcome. */
sendgrid_outcome_t sendgrid_send(sendgrid_client_t *c, const sendgrid_config_t *cfg,
                                 const sendgrid_mail_t *m, sendgrid_result_t *res);

/* Whether signature_b64 (the X-Twilio-Email-Event-Webhook-Signature header: a
 * base64 DER ECDSA signature) signs timestamp + body with SHA-256 under
 * public_key_b64 (the verification key of SendGrid's console: base64 of a DER
 * SubjectPublicKeyInfo of a P-256 key). Any malformed input is false. */
bool sendgrid_signature_ok(const char *public_key_b64, const char *signature_b64,
                           const char *timestamp, const char *body, size_t len);

/* Whether public_key_b64 is a usable P-256 public key (for settings checks). */
bool sendgrid_public_key_ok(const char *public_key_b64);

/* Parses an Event Webhook body: a JSON array (1 to SENDGRID_MAX_EVENTS) of
 * objects, each with a string "event", a string "sg_event_id" (1 to 100
 * characters), an integer "timestamp" and a string "email"; unknown events
 * are kept (the database ignores them). Returns the array (caller
 * json_decref()s it), or NULL with err naming the first problem. */
json_t *sendgrid_events_parse(const char *body, size_t len, char *err, size_t errlen);

/* The e-mail provider of the send engine (sending/provider.h): SendGrid
 * with the settings' API key and base. NULL with err set without a key. */
email_provider_t *sendgrid_provider_open(const provider_settings_t *s, char *err, size_t errlen);

#endif
