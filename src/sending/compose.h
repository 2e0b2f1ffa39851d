/*
 * Composes one campaign e-mail for one recipient (issue 12): the subject and
 * bodies rendered from the template (template.h), the HTML's links rewritten
 * into signed click links and an open pixel added (track.h), the footer with
 * the sender's postal address and the unsubscribe link in both parts, a text
 * part derived from the HTML when the template has none, and the
 * List-Unsubscribe headers of RFC 8058. Pure: no database, no network.
 */
#ifndef CD_SENDING_COMPOSE_H
#define CD_SENDING_COMPOSE_H

#include <jansson.h>

#include "core/buf.h"
#include "core/common.h"
#include "sending/provider.h"
#include "sending/template.h"
#include "sending/track.h"

/* Largest rendered part (subject, HTML, text), in bytes. */
#define COMPOSE_PART_MAX (2 * 1024 * 1024)
#define COMPOSE_URL_MAX  512

typedef struct compose_input {
    const char *message_id;  /* email_messages.id (UUID) */
    const char *subject_src; /* template of the subject */
    const char *body_src;    /* template of the body: HTML, or plain text */
    const char *text_src;    /* template of the text part, or NULL: derived */
    const tpl_contact_t *contact;
    const char *base_url;       /* API_EXTERNAL_URL, without a trailing '/' */
    const unsigned char *key;   /* the tracking key (TRACK_KEY_LEN bytes) */
    const char *postal_address; /* the sender's postal address, never empty */
} compose_input_t;

/* What compose_email makes. Initialise with compose_init, free with
 * compose_free. html is empty for a plain-text body (a text-only e-mail). */
typedef struct compose_output {
    cd_buf_t subject;
    cd_buf_t html;
    cd_buf_t text;
    json_t *links; /* the tracked URLs, in token index order (owned) */
    char unsubscribe_url[COMPOSE_URL_MAX];
    char list_unsubscribe[COMPOSE_URL_MAX + 2];
    provider_header_t headers[2]; /* List-Unsubscribe, List-Unsubscribe-Post */
} compose_output_t;

void compose_init(compose_output_t *out);
void compose_free(compose_output_t *out);

/* Composes the message. False with err set when a template does not pass
 * tpl_check, a part is too large, or the inputs are unusable (no postal
 * address, no base URL, message_id not a UUID). */
CD_MUSTCHECK bool compose_email(const compose_input_t *in, compose_output_t *out, char *err,
                                size_t errlen);

#endif
