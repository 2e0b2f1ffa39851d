/*
 * The provider registry (provider.h): which opener EMAIL_PROVIDER names, and
 * whether SMS can go out. A provider plugs in with one line in a table below.
 */
#include <stdio.h>
#include <string.h>

#include "providers/sendgrid.h"
#include "providers/twilio.h"
#include "sending/provider.h"

typedef struct email_opener {
    const char *name;
    email_provider_open_fn open;
} email_opener_t;

typedef struct sms_opener {
    const char *name;
    sms_provider_open_fn open;
} sms_opener_t;

/* E-mail providers by EMAIL_PROVIDER value. Add a provider here. */
static const email_opener_t email_openers[] = {
    {"smtp", smtp_provider_open},
    {"sendgrid", sendgrid_provider_open},
    {NULL, NULL},
};

/* SMS providers, the first one whose settings are present wins. Add a
 * provider here. */
static const sms_opener_t sms_openers[] = {
    {"twilio", twilio_provider_open},
    {NULL, NULL},
};

static const char *email_provider_name(const provider_settings_t *s)
{
    if (s->email_provider && *s->email_provider)
        return s->email_provider;
    return s->smtp_url && *s->smtp_url ? "smtp" : "";
}

static bool sms_settings_present(const char *name, const provider_settings_t *s)
{
    if (strcmp(name, "twilio") == 0)
        return s->twilio_account_sid && *s->twilio_account_sid && s->twilio_auth_token &&
               *s->twilio_auth_token;
    return false;
}

bool provider_email_configured(const provider_settings_t *s)
{
    const char *name = email_provider_name(s);
    if (strcmp(name, "smtp") == 0)
        return s->smtp_url && *s->smtp_url;
    if (strcmp(name, "sendgrid") == 0)
        return s->sendgrid_api_key && *s->sendgrid_api_key;
    return false;
}

bool provider_sms_configured(const provider_settings_t *s)
{
    for (const sms_opener_t *o = sms_openers; o->name; o++)
        if (sms_settings_present(o->name, s))
            return true;
    return false;
}

email_provider_t *provider_email_open(const provider_settings_t *s, bool *configured, char *err,
                                      size_t errlen)
{
    *configured = provider_email_configured(s);
    if (!*configured) {
        snprintf(err, errlen, "no e-mail provider is configured (EMAIL_PROVIDER, SMTP_URL)");
        return NULL;
    }
    const char *name = email_provider_name(s);
    for (const email_opener_t *o = email_openers; o->name; o++)
        if (strcmp(o->name, name) == 0)
            return o->open(s, err, errlen);
    *configured = false;
    snprintf(err, errlen, "EMAIL_PROVIDER '%.40s' is not available in this build", name);
    return NULL;
}

sms_provider_t *provider_sms_open(const provider_settings_t *s, bool *configured, char *err,
                                  size_t errlen)
{
    for (const sms_opener_t *o = sms_openers; o->name; o++) {
        if (sms_settings_present(o->name, s)) {
            *configured = true;
            return o->open(s, err, errlen);
        }
    }
    *configured = false;
    snprintf(err, errlen, "no SMS provider is configured (TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN)");
    return NULL;
}

void provider_email_close(email_provider_t *p)
{
    if (p)
        p->ops->close(p);
}

void provider_sms_close(sms_provider_t *p)
{
    if (p)
        p->ops->close(p);
}
