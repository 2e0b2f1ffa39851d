/*
 * One campaign e-mail, composed (compose.h). The order matters: links are
 * rewritten in the rendered template only, before the footer is added, so
 * the unsubscribe link and the pixel are never click-tracked, and the text
 * part is derived from the HTML as the recipient wrote it (original URLs).
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "sending/compose.h"

void compose_init(compose_output_t *out)
{
    memset(out, 0, sizeof(*out));
    cd_buf_init(&out->subject, 16 * 1024);
    cd_buf_init(&out->html, COMPOSE_PART_MAX);
    cd_buf_init(&out->text, COMPOSE_PART_MAX);
    out->links = json_array();
}

void compose_free(compose_output_t *out)
{
    cd_buf_free(&out->subject);
    cd_buf_free(&out->html);
    cd_buf_free(&out->text);
    json_decref(out->links);
    out->links = NULL;
}

/* Appends the postal address HTML-escaped, line breaks as <br>. */
static bool add_address_html(cd_buf_t *b, const char *addr)
{
    for (const char *p = addr; *p;) {
        size_t n = strcspn(p, "\n");
        if (!tpl_html_escape(b, p, n))
            return false;
        p += n;
        if (*p == '\n') {
            if (!cd_buf_adds(b, "<br>"))
                return false;
            p++;
        }
    }
    return true;
}

/* The footer and pixel, inserted before </body> (or appended). */
static bool finish_html(const compose_input_t *in, compose_output_t *out, const cd_buf_t *body,
                        char *err, size_t errlen)
{
    char tok[TRACK_TOKEN_LEN + 1];
    if (!track_sign(in->key, TRACK_OPEN, in->message_id, 0, tok)) {
        snprintf(err, errlen, "message id is not a UUID");
        return false;
    }
    const char *src = body->data ? body->data : "";
    const char *end = NULL;
    for (const char *p = src; (p = strchr(p, '<')) != NULL; p++)
        if (strncasecmp(p, "</body", 6) == 0)
            end = p;
    size_t head = end ? (size_t)(end - src) : body->len;
    bool ok = cd_buf_add(&out->html, src, head) &&
              cd_buf_adds(&out->html, "\n<div style=\"margin-top:24px;font-size:12px;"
                                      "color:#666666\">") &&
              add_address_html(&out->html, in->postal_address) &&
              cd_buf_printf(&out->html,
                            "<br><a href=\"%s\">Unsubscribe</a></div>\n"
                            "<img src=\"%s/t/o/%s.gif\" width=\"1\" height=\"1\" alt=\"\" "
                            "style=\"display:block;border:0\">\n",
                            out->unsubscribe_url, in->base_url, tok) &&
              cd_buf_adds(&out->html, src + head);
    if (!ok)
        snprintf(err, errlen, "rendered HTML is too large");
    return ok;
}

static bool render_text(const compose_input_t *in, compose_output_t *out, const cd_buf_t *html,
                        char *err, size_t errlen)
{
    bool ok;
    if (in->text_src)
        ok = tpl_render(in->text_src, strlen(in->text_src), TPL_TEXT, in->contact, &out->text, err,
                        errlen);
    else if (html)
        ok = tpl_html_to_text(html->data ? html->data : "", &out->text) ||
             (snprintf(err, errlen, "text part is too large"), false);
    else
        ok = tpl_render(in->body_src, strlen(in->body_src), TPL_TEXT, in->contact, &out->text, err,
                        errlen);
    if (ok && !cd_buf_printf(&out->text, "\n\n--\n%s\nUnsubscribe: %s\n", in->postal_address,
                             out->unsubscribe_url)) {
        snprintf(err, errlen, "text part is too large");
        ok = false;
    }
    return ok;
}

static bool set_unsubscribe(const compose_input_t *in, compose_output_t *out, char *err,
                            size_t errlen)
{
    char tok[TRACK_TOKEN_LEN + 1];
    if (!in->base_url || !*in->base_url || !in->postal_address || !*in->postal_address) {
        snprintf(err, errlen, "API_EXTERNAL_URL and the postal address are required");
        return false;
    }
    if (!track_sign(in->key, TRACK_UNSUBSCRIBE, in->message_id, 0, tok)) {
        snprintf(err, errlen, "message id is not a UUID");
        return false;
    }
    int n =
        snprintf(out->unsubscribe_url, sizeof(out->unsubscribe_url), "%s/u/%s", in->base_url, tok);
    if (n < 0 || (size_t)n >= sizeof(out->unsubscribe_url)) {
        snprintf(err, errlen, "API_EXTERNAL_URL is too long");
        return false;
    }
    snprintf(out->list_unsubscribe, sizeof(out->list_unsubscribe), "<%s>", out->unsubscribe_url);
    out->headers[0] = (provider_header_t){"List-Unsubscribe", out->list_unsubscribe};
    out->headers[1] = (provider_header_t){"List-Unsubscribe-Post", "List-Unsubscribe=One-Click"};
    return true;
}

bool compose_email(const compose_input_t *in, compose_output_t *out, char *err, size_t errlen)
{
    if (!set_unsubscribe(in, out, err, errlen))
        return false;
    const char *subj = in->subject_src ? in->subject_src : "";
    if (!tpl_render(subj, strlen(subj), TPL_TEXT, in->contact, &out->subject, err, errlen))
        return false;
    /* A subject is one line. */
    for (size_t i = 0; i < out->subject.len; i++)
        if ((unsigned char)out->subject.data[i] < ' ')
            out->subject.data[i] = ' ';
    const char *body = in->body_src ? in->body_src : "";
    if (!tpl_is_html(body))
        return render_text(in, out, NULL, err, errlen);
    cd_buf_t rendered, tracked;
    cd_buf_init(&rendered, COMPOSE_PART_MAX);
    cd_buf_init(&tracked, COMPOSE_PART_MAX);
    bool ok = tpl_render(body, strlen(body), TPL_HTML, in->contact, &rendered, err, errlen);
    if (ok && !track_rewrite_links(in->key, in->base_url, in->message_id,
                                   rendered.data ? rendered.data : "", &tracked, out->links)) {
        snprintf(err, errlen, "rendered HTML is too large");
        ok = false;
    }
    ok = ok && finish_html(in, out, &tracked, err, errlen) &&
         render_text(in, out, &rendered, err, errlen);
    cd_buf_free(&rendered);
    cd_buf_free(&tracked);
    return ok;
}
