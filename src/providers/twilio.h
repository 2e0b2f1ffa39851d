/*
 * The Twilio provider: Programmable Messaging's "create a Message" call
 * (POST {TWILIO_API_BASE}/2010-04-01/Accounts/{sid}/Messages.json,
 * form-encoded, HTTP basic auth with the account SID and auth token), the
 * segment count of an SMS body (GSM-7 or UCS-2), the X-Twilio-Signature check
 * of the webhooks Twilio posts back, the form parser for those webhooks, the
 * opt-out keywords of inbound replies and TwiML answers. Blocking: call
 * twilio_send from a worker thread, never from a request handler.
 */
#ifndef CD_PROVIDERS_TWILIO_H
#define CD_PROVIDERS_TWILIO_H

#include <stddef.h>

#include "core/buf.h"
#include "core/common.h"
#include "providers/provider.h"

/* Twilio refuses bodies over 1600 characters. */
#define TWILIO_MAX_BODY_CHARS 1600
/* A webhook form holds at most this many parameters (Twilio sends ~20). */
#define TWILIO_MAX_FORM_PARAMS 64
/* The base64 of an HMAC-SHA1 (20 bytes) is 28 characters. */
#define TWILIO_SIGNATURE_LEN 28
#define TWILIO_SID_MAX       64

/* How an SMS body is split into segments. */
typedef struct twilio_segments {
    bool ucs2;       /* a character outside GSM 03.38 forces UCS-2 */
    size_t units;    /* septets (GSM-7, extension characters count 2) or UTF-16 units */
    size_t segments; /* 1 up to 160 septets / 70 units, then 153 / 67 per segment */
} twilio_segments_t;

/* Counts the segments of a UTF-8 body. False when it is not valid UTF-8. A
 * GSM-7 extension character (^ { } \ [ ~ ] | €, form feed) takes two septets
 * and is never split across segments; in UCS-2 a character outside the BMP
 * takes two units and is never split either. An empty body is one segment. */
CD_MUSTCHECK bool twilio_count_segments(const char *body, twilio_segments_t *out);

/* One form parameter, decoded. */
typedef struct twilio_param {
    const char *name;
    const char *value;
} twilio_param_t;

/* Parses an application/x-www-form-urlencoded body in place (body is modified
 * and must stay alive while params are used): '+' is a space, %XX escapes are
 * decoded, an escape that is malformed or decodes to NUL, an empty name, or
 * more than max parameters is an error (false). Decoded values are valid
 * UTF-8 or the parse fails. */
CD_MUSTCHECK bool twilio_form_parse(char *body, twilio_param_t *params, size_t max, size_t *n);

/* The first value of name in params, or NULL. */
const char *twilio_form_get(const twilio_param_t *params, size_t n, const char *name);

/* X-Twilio-Signature as Twilio computes it: base64(HMAC-SHA1(auth_token,
 * url + each parameter's name + value, sorted by name (then value), bytewise)).
 * url is the full URL Twilio requested, with its query string. out receives
 * TWILIO_SIGNATURE_LEN characters and a NUL. False if the parameters cannot
 * be sorted (more than TWILIO_MAX_FORM_PARAMS). */
CD_MUSTCHECK bool twilio_signature(const char *auth_token, const char *url,
                                   const twilio_param_t *params, size_t n,
                                   char out[TWILIO_SIGNATURE_LEN + 1]);

/* Whether header is the right signature for this request (constant-time
 * comparison). A NULL or empty token or header is never right. */
bool twilio_signature_ok(const char *auth_token, const char *url, const twilio_param_t *params,
                         size_t n, const char *header);

/* What an inbound SMS asks for. */
typedef enum twilio_keyword {
    TWILIO_KEYWORD_NONE = 0,
    TWILIO_KEYWORD_STOP,  /* STOP STOPALL UNSUBSCRIBE CANCEL END QUIT REVOKE OPTOUT "OPT OUT" */
    TWILIO_KEYWORD_START, /* START YES UNSTOP */
    TWILIO_KEYWORD_HELP,  /* HELP INFO */
} twilio_keyword_t;

/* Classifies an inbound body: the whole message, in any case, with spaces and
 * punctuation around it ignored, must be one keyword ("stop." and " Stop! "
 * are STOP; "please stop" and "stopped" are not). */
twilio_keyword_t twilio_classify_keyword(const char *body);

/* Appends a TwiML answer: <Response/> when message is NULL or "", else
 * <Response><Message>message (XML-escaped)</Message></Response>. */
CD_MUSTCHECK bool twilio_twiml(cd_buf_t *out, const char *message);

/* The account and where its API is. */
typedef struct twilio_config {
    const char *api_base;    /* TWILIO_API_BASE, e.g. https://api.twilio.com */
    const char *account_sid; /* AC... */
    const char *auth_token;
    const char *from; /* TWILIO_FROM: an E.164 number or a messaging service SID (MG...) */
    long timeout_seconds;
} twilio_config_t;

typedef enum twilio_outcome {
    TWILIO_ACCEPTED = 0, /* 201: Twilio has the message (sid set) */
    TWILIO_UNKNOWN,      /* the request may have arrived but no answer came
                              (timeout, connection lost after sending): never
                              retry, it could send twice */
    TWILIO_TEMPORARY,    /* 408, 429, 5xx, or no connection at all: try again later */
    TWILIO_PERMANENT,    /* another 4xx, or a bad request of ours: never retry */
} twilio_outcome_t;

/* The outcome of an HTTP answer's status: 200 and 201 accepted; 408, 429
 * and 5xx temporary; any other permanent. */
twilio_outcome_t twilio_status_outcome(long http_status);

/* What Twilio answered. */
typedef struct twilio_result {
    twilio_outcome_t outcome;
    long http_status; /* 0 when there was no HTTP answer */
    char sid[TWILIO_SID_MAX];
    char status[32];     /* Twilio's status of the new message ("queued", "accepted") */
    long num_segments;   /* Twilio's count when it gives one, else 0 */
    char price[32];      /* "" while Twilio has not priced it (usual at creation) */
    char price_unit[8];  /* the price's currency (ISO 4217, "USD"), "" if none */
    char error_code[16]; /* Twilio's error code, "" if none */
    char error[512];     /* why it failed (Twilio's message, never a credential) */
} twilio_result_t;

/* One member of Twilio's JSON answer to copy out (twilio_answer_scan). */
typedef struct twilio_answer_field {
    const char *name; /* the member's name */
    char *dst;        /* receives its text ("" when absent, null, a real, ...) */
    size_t cap;       /* dst's size: a longer text is cut to cap - 1 bytes */
} twilio_answer_field_t;

/* Reads the named members of a JSON object (the last of a repeated name, as
 * jansson's json_object_get) without building a tree: a string's decoded
 * text or an integer's as "%lld". Accepts exactly what json_loadb(flags 0)
 * accepts as an object (strict grammar, valid UTF-8, no \u0000, integers in
 * range, finite reals, nesting depth 2048, nothing but white space after
 * it); false for anything else, every dst then "". */
CD_MUSTCHECK bool twilio_answer_scan(const char *json, size_t len, twilio_answer_field_t *fields,
                                     size_t nfields);

/* A reusable connection to the API (kept alive between sends, see
 * webapi_exchange). One per thread: not thread-safe. */
typedef struct webapi_client twilio_client_t; /* providers/webapi.h */

/* Creates a client, or NULL when out of memory. */
twilio_client_t *twilio_client_new(void);
/* Frees c (NULL is fine). */
void twilio_client_free(twilio_client_t *c);

/* Appends the form body of a create-Message request (To, From or
 * MessagingServiceSid, Body, StatusCallback when not NULL). False if out is full. */
CD_MUSTCHECK bool twilio_message_form(const twilio_config_t *cfg, const char *to, const char *body,
                                      const char *status_callback, cd_buf_t *out);

/* Sends one SMS. status_callback: the URL Twilio posts status changes to
 * (may be NULL). Fills res; returns res->outcome. */
twilio_outcome_t twilio_send(twilio_client_t *c, const twilio_config_t *cfg, const char *to,
                             const char *body, const char *status_callback, twilio_result_t *res);

/* Fetches a Message resource (GET {api_base}/2010-04-01/Accounts/{sid}/
 * Messages/{message_sid}.json): 200 is TWILIO_ACCEPTED with status, price
 * (often "" for a while after delivery: Twilio prices a message later) and
 * price_unit; 404 and other 4xx are permanent; 408, 429, 5xx and a lost answer
 * temporary (a GET can be repeated). Fills res; returns res->outcome. */
twilio_outcome_t twilio_fetch_message(twilio_client_t *c, const twilio_config_t *cfg,
                                      const char *message_sid, twilio_result_t *res);

/* The SMS provider of the send engine (sending/provider.h): Twilio with
 * the settings' account, token and API base; the message's uuid is added to
 * its status callback URL as ?m=<uuid>. NULL with err set when the account
 * SID or the token is missing. */
sms_provider_t *twilio_provider_open(const provider_settings_t *s, char *err, size_t errlen);

#endif
