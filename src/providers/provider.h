/*
 * The provider seam of the send engine (issue 12): what the engine
 * (src/sending/) asks of an e-mail or SMS provider, and nothing else. Each
 * provider (SMTP in src/providers/smtp.c, SendGrid and Twilio in
 * src/providers/) fills an ops table — PgBouncer's SBufIO shape — and
 * registers an opener in the table of src/sending/provider.c; the engine
 * never names a provider. The types live here, in the providers' layer, so
 * that providers need nothing from the engine's layer; the registry is
 * sending/provider.h.
 *
 * Threading: a provider value belongs to one worker thread for the length of
 * one job (opened at the start of a batch, closed at its end); its calls are
 * blocking and must never run on a request thread. Opening it must not do
 * network I/O (connections are made lazily and reused across the batch).
 *
 * Outcomes: every message of a batch gets exactly one outcome. The engine
 * has already marked each message in flight in a committed transaction
 * before the call (sending.step); a provider that cannot tell whether a message left (the
 * connection broke after DATA) answers PROVIDER_UNKNOWN, never TEMPFAIL, so
 * that the engine does not send it twice.
 */
#ifndef CD_PROVIDERS_PROVIDER_H
#define CD_PROVIDERS_PROVIDER_H

#include <stddef.h>

#include "core/common.h"

/* Bounds shared by every provider. */
#define PROVIDER_ERROR_MAX   256 /* error text, NUL included */
#define PROVIDER_ID_MAX      128 /* provider message id / Twilio sid, NUL included */
#define PROVIDER_STATUS_MAX  32  /* provider status word, NUL included */
#define PROVIDER_BATCH_MAX   100 /* messages in one send_batch call, at most */
#define PROVIDER_HEADERS_MAX 8   /* extra headers of one e-mail, at most */

typedef enum provider_outcome {
    PROVIDER_ACCEPTED = 0, /* the provider took the message (provider_id set) */
    PROVIDER_TEMPFAIL,     /* not sent; sending again later may work (4xx SMTP,
                              HTTP 429/5xx, connect failure before DATA) */
    PROVIDER_PERMFAIL,     /* not sent and never will be (5xx SMTP reply to
                              RCPT, HTTP 400 naming the recipient) */
    PROVIDER_UNKNOWN,      /* may or may not have left: never retried */
} provider_outcome_t;

/* One extra header of an e-mail (List-Unsubscribe, List-Unsubscribe-Post,
 * X-Campaign-Id ...). Name is a token, value printable ASCII: the engine
 * builds them; providers still refuse CR/LF. */
typedef struct provider_header {
    const char *name;
    const char *value;
} provider_header_t;

/* One rendered e-mail. Everything is borrowed for the call. */
typedef struct provider_email {
    const char *message_uuid; /* email_messages.id, for idempotency keys and
                                 the custom args a webhook brings back */
    const char *from_name;    /* UTF-8 display name, may be NULL or "" */
    const char *from;         /* sender address */
    const char *to;           /* one recipient address */
    const char *subject;      /* UTF-8 */
    const char *html;         /* UTF-8 HTML body, or NULL for text only */
    const char *text;         /* UTF-8 plain-text body, never NULL */
    const provider_header_t *headers;
    size_t nheaders; /* <= PROVIDER_HEADERS_MAX */
    /* Additions by other work (attachments: the mailjobs branch) go in this
     * block, zero meaning "none", so that existing callers stay valid. */
} provider_email_t;

/* The outcome of one e-mail of a batch. */
typedef struct provider_email_result {
    provider_outcome_t outcome;
    char provider_id[PROVIDER_ID_MAX]; /* ACCEPTED: the provider's message id
                                          (SMTP: our Message-ID; SendGrid:
                                          X-Message-Id) */
    char error[PROVIDER_ERROR_MAX];    /* otherwise: why, never a secret */
} provider_email_result_t;

typedef struct email_provider email_provider_t;

typedef struct email_provider_ops {
    const char *name; /* "smtp", "sendgrid": EMAIL_PROVIDER's value */
    /* Sends n (1..PROVIDER_BATCH_MAX) messages and fills results[0..n-1].
     * Always fills every result, whatever happened to the others. */
    void (*send_batch)(email_provider_t *p, const provider_email_t *msgs, size_t n,
                       provider_email_result_t *results);
    /* Closes connections and frees p. */
    void (*close)(email_provider_t *p);
    /* How many messages the engine hands over in one send_batch call, and so
     * has in flight at once (0 or 1: one at a time). A crash may leave this
     * many messages of a worker `unknown`. */
    size_t max_in_flight;
} email_provider_ops_t;

/* A provider value: ops first, the provider's own state after it (each
 * provider defines its struct with this as its first member). */
struct email_provider {
    const email_provider_ops_t *ops;
};

/* One SMS. Everything is borrowed for the call. */
typedef struct provider_sms {
    const char *message_uuid;        /* sms_messages.id */
    const char *to;                  /* E.164 */
    const char *from;                /* E.164 number or alphanumeric sender */
    const char *body;                /* UTF-8, already with "Reply STOP..." */
    const char *status_callback_url; /* API_EXTERNAL_URL/webhooks/twilio/status */
} provider_sms_t;

typedef struct provider_sms_result {
    provider_outcome_t outcome;
    char sid[PROVIDER_ID_MAX];        /* ACCEPTED: the provider's id (Twilio SM...) */
    char status[PROVIDER_STATUS_MAX]; /* the provider's status word ("queued") */
    int segments;                     /* message segments billed (GSM-7 / UCS-2) */
    bool priced;                      /* the answer had a price (0 is a free message) */
    long long cost_micros; /* priced: its price in millionths, signed as Twilio writes it */
    char error[PROVIDER_ERROR_MAX]; /* otherwise: why, never a secret */
} provider_sms_result_t;

typedef struct sms_provider sms_provider_t;

typedef struct sms_provider_ops {
    const char *name; /* "twilio" */
    /* Sends one message and fills *result. */
    void (*send)(sms_provider_t *p, const provider_sms_t *msg, provider_sms_result_t *result);
    void (*close)(sms_provider_t *p);
} sms_provider_ops_t;

struct sms_provider {
    const sms_provider_ops_t *ops;
};

/* The settings a provider is opened with: environment values overridden by
 * an admin's values in the encrypted app settings (resolved by the engine).
 * Strings are borrowed for the opener's call only: copy what you keep.
 * Unset values are "" (never NULL). */
typedef struct provider_settings {
    const char *email_provider;     /* EMAIL_PROVIDER: "smtp" | "sendgrid" | "" */
    const char *smtp_url;           /* SMTP_URL */
    const char *sendgrid_api_key;   /* SENDGRID_API_KEY */
    const char *sendgrid_api_base;  /* SENDGRID_API_BASE */
    const char *twilio_account_sid; /* TWILIO_ACCOUNT_SID */
    const char *twilio_auth_token;  /* TWILIO_AUTH_TOKEN */
    const char *twilio_api_base;    /* TWILIO_API_BASE */
    long timeout_seconds;           /* per network operation */
} provider_settings_t;

/* An opener: returns a provider, or NULL with err set ("SMTP_URL is not
 * set" ...). Must not do network I/O. */
typedef email_provider_t *(*email_provider_open_fn)(const provider_settings_t *s, char *err,
                                                    size_t errlen);
typedef sms_provider_t *(*sms_provider_open_fn)(const provider_settings_t *s, char *err,
                                                size_t errlen);

/* The SMTP provider (src/providers/smtp.c). */
email_provider_t *smtp_provider_open(const provider_settings_t *s, char *err, size_t errlen);

#endif
