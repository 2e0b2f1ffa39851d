/*
 * Auth's outgoing mail: a bounded in-process queue and one sender thread that
 * delivers through the SMTP provider (providers/smtp.h), and the rendering of
 * the admin-editable templates (public.auth_mail_templates) with GoTrue's
 * placeholders. Handlers only enqueue, so the answer to a request takes the
 * same time whether or not a mail goes out (no enumeration by timing) and a
 * slow SMTP server never holds a request thread. A mail still queued at
 * shutdown is dropped with a log line: the user asks again (resend).
 */
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth_internal.h"
#include "core/buf.h"
#include "core/log.h"
#include "providers/smtp.h"

#define MAILER_QUEUE_MAX  1024
#define MAILER_TIMEOUT_S  30
#define MAILER_RENDER_MAX (256 * 1024)

struct mail {
    struct mail *next;
    char *to, *subject, *text, *html;
};

struct auth_mailer {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    struct mail *head, *tail;
    size_t queued;
    bool stopping;
    const char *url, *from, *from_name; /* borrowed from the app's settings */
};

static void mail_free(struct mail *m)
{
    if (!m)
        return;
    free(m->to);
    free(m->subject);
    free(m->text);
    free(m->html);
    free(m);
}

static void *sender_main(void *arg)
{
    struct auth_mailer *q = arg;
    pthread_mutex_lock(&q->mu);
    for (;;) {
        while (!q->head && !q->stopping)
            pthread_cond_wait(&q->cv, &q->mu);
        if (q->stopping)
            break;
        struct mail *m = q->head;
        q->head = m->next;
        if (!q->head)
            q->tail = NULL;
        q->queued--;
        pthread_mutex_unlock(&q->mu);
        smtp_message_t msg = {.from_name = q->from_name,
                              .from = q->from,
                              .to = m->to,
                              .subject = m->subject,
                              .text = m->text,
                              .html = m->html};
        char err[512];
        if (smtp_send(q->url, &msg, MAILER_TIMEOUT_S, err, sizeof(err)))
            log_info("auth mail sent (%s)", m->subject);
        else
            log_warn("auth mail not sent: %s", err);
        mail_free(m);
        pthread_mutex_lock(&q->mu);
    }
    size_t dropped = q->queued;
    pthread_mutex_unlock(&q->mu);
    if (dropped)
        log_warn("auth mail: %zu queued mails dropped at shutdown", dropped);
    return NULL;
}

struct auth_mailer *auth_mailer_start(const app_t *app)
{
    if (!app->cfg.smtp_url || !*app->cfg.smtp_url)
        return NULL;
    struct auth_mailer *q = calloc(1, sizeof(*q));
    if (!q)
        return NULL;
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->cv, NULL);
    q->url = app->cfg.smtp_url;
    q->from = app->cfg.smtp_admin_email;
    q->from_name = app->cfg.smtp_sender_name;
    if (pthread_create(&q->thread, NULL, sender_main, q) != 0) {
        pthread_cond_destroy(&q->cv);
        pthread_mutex_destroy(&q->mu);
        free(q);
        return NULL;
    }
    return q;
}

void auth_mailer_stop(struct auth_mailer *q)
{
    if (!q)
        return;
    pthread_mutex_lock(&q->mu);
    q->stopping = true;
    pthread_cond_signal(&q->cv);
    pthread_mutex_unlock(&q->mu);
    pthread_join(q->thread, NULL);
    while (q->head) {
        struct mail *m = q->head;
        q->head = m->next;
        mail_free(m);
    }
    pthread_cond_destroy(&q->cv);
    pthread_mutex_destroy(&q->mu);
    free(q);
}

bool auth__mail_enqueue(app_t *app, const char *to, const char *subject, const char *text,
                        const char *html)
{
    struct auth_mailer *q = app->mailer;
    if (!q) {
        log_warn("auth mail to a user not sent: SMTP_URL is not set");
        return false;
    }
    struct mail *m = calloc(1, sizeof(*m));
    if (!m)
        return false;
    m->to = strdup(to);
    m->subject = strdup(subject);
    m->text = strdup(text);
    m->html = html ? strdup(html) : NULL;
    if (!m->to || !m->subject || !m->text || (html && !m->html)) {
        mail_free(m);
        return false;
    }
    pthread_mutex_lock(&q->mu);
    bool ok = q->queued < MAILER_QUEUE_MAX && !q->stopping;
    if (ok) {
        if (q->tail)
            q->tail->next = m;
        else
            q->head = m;
        q->tail = m;
        q->queued++;
        pthread_cond_signal(&q->cv);
    }
    pthread_mutex_unlock(&q->mu);
    if (!ok) {
        log_warn("auth mail queue full: a mail was dropped");
        mail_free(m);
    }
    return ok;
}

/* ------------------------------------------------------------ templates */

/* Appends s, HTML-escaped when html. */
static bool add_value(cd_buf_t *b, const char *s, bool html)
{
    if (!html)
        return cd_buf_adds(b, s);
    for (const char *p = s; *p; p++) {
        const char *e = NULL;
        switch (*p) {
        case '&':
            e = "&amp;";
            break;
        case '<':
            e = "&lt;";
            break;
        case '>':
            e = "&gt;";
            break;
        case '"':
            e = "&quot;";
            break;
        case '\'':
            e = "&#39;";
            break;
        default:
            break;
        }
        if (!(e ? cd_buf_adds(b, e) : cd_buf_add(b, p, 1)))
            return false;
    }
    return true;
}

char *auth__mail_render(const char *tmpl, const auth_mail_vars_t *v, bool html)
{
    static const struct {
        const char *name;
        size_t off;
    } names[] = {
        {"ConfirmationURL", offsetof(auth_mail_vars_t, confirmation_url)},
        {"Token", offsetof(auth_mail_vars_t, token)},
        {"TokenHash", offsetof(auth_mail_vars_t, token_hash)},
        {"SiteURL", offsetof(auth_mail_vars_t, site_url)},
        {"Email", offsetof(auth_mail_vars_t, email)},
        {"NewEmail", offsetof(auth_mail_vars_t, new_email)},
        {"RedirectTo", offsetof(auth_mail_vars_t, redirect_to)},
    };
    cd_buf_t b;
    cd_buf_init(&b, MAILER_RENDER_MAX);
    const char *p = tmpl;
    bool ok = true;
    while (ok && *p) {
        const char *open = strstr(p, "{{");
        if (!open) {
            ok = cd_buf_adds(&b, p);
            break;
        }
        ok = cd_buf_add(&b, p, (size_t)(open - p));
        const char *close = strstr(open + 2, "}}");
        if (!ok || !close) {
            ok = ok && cd_buf_adds(&b, open);
            break;
        }
        /* "{{ .Name }}" with any spaces around the name */
        const char *n = open + 2;
        while (*n == ' ')
            n++;
        const char *ne = close;
        while (ne > n && ne[-1] == ' ')
            ne--;
        bool known = false;
        if (*n == '.') {
            n++;
            for (size_t i = 0; i < CD_ARRAY_LEN(names); i++) {
                if (strlen(names[i].name) == (size_t)(ne - n) &&
                    memcmp(names[i].name, n, (size_t)(ne - n)) == 0) {
                    const char *val = *(const char *const *)((const char *)v + names[i].off);
                    ok = add_value(&b, val ? val : "", html);
                    known = true;
                    break;
                }
            }
        }
        if (!known) /* an unknown placeholder stays as written: the admin sees it */
            ok = ok && cd_buf_add(&b, open, (size_t)(close + 2 - open));
        p = close + 2;
    }
    if (!ok) {
        cd_buf_free(&b);
        return NULL;
    }
    return cd_buf_take(&b);
}
