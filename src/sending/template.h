/*
 * Message templates of the send engine (issue 12): `{{first_name}}`,
 * `{{contact.attributes.company}}` and defaults `{{first_name | "there"}}`.
 * Values are HTML-escaped in HTML bodies and copied raw in text and SMS
 * bodies. An unknown variable or a broken placeholder is an error when the
 * template is saved (the same grammar is checked by the trigger of
 * migrations/027_sending.sql, so /rest/v1 obeys it too), never a blank at send
 * time. Also derives the plain-text part of an HTML e-mail.
 *
 * Grammar of a placeholder (spaces allowed around each part):
 *   "{{" name [ "|" '"' default '"' ] "}}"
 *   name    = first_name | last_name | email | phone
 *           | contact.first_name | contact.last_name | contact.email | contact.phone
 *           | contact.attributes.KEY   (KEY: [A-Za-z0-9_-]{1,64})
 *   default = any characters but '"' and '\', or \" and \\ escapes
 * A "{{" that does not start a valid placeholder is an error.
 */
#ifndef CD_SENDING_TEMPLATE_H
#define CD_SENDING_TEMPLATE_H

#include <jansson.h>
#include <stddef.h>

#include "core/buf.h"
#include "core/common.h"

#define TPL_MAX_BYTES        (512 * 1024) /* largest template body the engine accepts */
#define TPL_MAX_PLACEHOLDERS 1000         /* most placeholders in one template */
#define TPL_MAX_DEFAULT      512          /* longest default text (bytes) */

/* The contact a template is rendered for; any field may be NULL. */
typedef struct tpl_contact {
    const char *first_name;
    const char *last_name;
    const char *email;
    const char *phone;
    const json_t *attributes; /* a JSON object, or NULL */
} tpl_contact_t;

typedef enum tpl_mode {
    TPL_TEXT = 0, /* values copied as they are (text and SMS bodies, subjects) */
    TPL_HTML,     /* values HTML-escaped */
} tpl_mode_t;

/* Checks src (n bytes, any content) against the grammar: true when every
 * placeholder is valid. Otherwise false with err naming the first problem
 * and its byte offset. */
CD_MUSTCHECK bool tpl_check(const char *src, size_t n, char *err, size_t errlen);

/* Renders src for c into out (appending). False with err set when src does
 * not pass tpl_check or out is full. A missing value without a default is
 * the empty string; attribute values that are numbers or booleans are
 * written as JSON writes them, objects and arrays as nothing. */
CD_MUSTCHECK bool tpl_render(const char *src, size_t n, tpl_mode_t mode, const tpl_contact_t *c,
                             cd_buf_t *out, char *err, size_t errlen);

/* Appends s HTML-escaped (& < > " '). False if out is full. */
CD_MUSTCHECK bool tpl_html_escape(cd_buf_t *out, const char *s, size_t n);

/* Whether a body looks like HTML (a tag: '<' followed by a letter, '/' or '!'). */
bool tpl_is_html(const char *s);

/* Appends a plain-text rendering of an HTML body: tags dropped (script and
 * style with their content), <br>, </p>, </div>, </li>, </h1-6> and </tr> as
 * line breaks, links written as "text (url)", the common entities decoded,
 * runs of blank lines collapsed. False if out is full. */
CD_MUSTCHECK bool tpl_html_to_text(const char *html, cd_buf_t *out);

#endif
