/*
 * Auth's outgoing mail: the rendering of the admin-editable templates
 * (public.auth_mail_templates) with GoTrue's placeholders, and the hand-over
 * to the durable mail queue (jobs/mail.h: a jobs.mail_outbox row and a
 * mail.send job, delivered by the job queue's workers). Handlers only queue,
 * so the answer to a request takes the same time whether or not a mail goes
 * out (no enumeration by timing) and a slow SMTP server never holds a
 * request thread; a queued mail survives a stop and is delivered (at most
 * once) after the restart.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth_internal.h"
#include "core/buf.h"
#include "core/log.h"

#define MAILER_RENDER_MAX (256 * 1024)

/* jobs.queue_mail (migration 031) is called here directly: the mail job
 * (jobs/mail.c) is a module of the same layer as auth, which may not include
 * it (scripts/check-layers.py). */
bool auth__mail_enqueue(app_t *app, const char *kind, const char *to, const char *subject,
                        const char *text, const char *html)
{
    if (!app->cfg.smtp_url[0]) {
        log_warn("auth mail to a user not sent: SMTP_URL is not set");
        return false;
    }
    char attempts[16], delay[24];
    snprintf(attempts, sizeof(attempts), "%ld", app->cfg.mail_max_attempts);
    snprintf(delay, sizeof(delay), "%ld", app->cfg.mail_retry_delay);
    const char *p[8] = {kind, to, subject, text, html, attempts, delay, NULL};
    db_stmt_t st = {"select jobs.queue_mail('auth', $1, $2, $3, $4, $5, null, null, null,"
                    " $6::int, make_interval(secs => $7::int))",
                    7, p};
    db_caller_t who = {.role = "service_role",
                       .claims_json = "{\"role\":\"service_role\"}",
                       .method = "JOB",
                       .path = "mail.send",
                       .headers_json = "{}"};
    PGresult *res = NULL;
    db_error_t err;
    db_status_t rc = db_run(&who, &st, 1, &res, &err);
    PQclear(res);
    if (rc != DB_OK) /* never the message: it holds a live token */
        log_error("auth mail (%s) not queued: %s (SQLSTATE %s)", kind, err.message, err.sqlstate);
    return rc == DB_OK;
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
