/*
 * The provider registry of the send engine (issue 12): which provider the
 * settings name, whether one is configured (else 409
 * provider_not_configured), and opening it. The seam itself (what a provider
 * implements: the ops tables, messages, outcomes) is providers/provider.h; a
 * provider plugs in with one line in the tables of provider.c.
 */
#ifndef CD_SENDING_PROVIDER_H
#define CD_SENDING_PROVIDER_H

#include "providers/provider.h"

/* Opens the e-mail provider that s->email_provider names (empty: "smtp" when
 * SMTP_URL is set, else none). NULL when none is configured or it cannot be
 * opened; *configured tells which (false: the engine answers 409
 * provider_not_configured). Free with email_provider_close. */
CD_MUSTCHECK email_provider_t *provider_email_open(const provider_settings_t *s, bool *configured,
                                                   char *err, size_t errlen);
/* Opens the SMS provider (Twilio when TWILIO_ACCOUNT_SID is set). Same
 * contract as provider_email_open. */
CD_MUSTCHECK sms_provider_t *provider_sms_open(const provider_settings_t *s, bool *configured,
                                               char *err, size_t errlen);

/* Whether an e-mail / SMS provider is configured, without opening it. */
bool provider_email_configured(const provider_settings_t *s);
bool provider_sms_configured(const provider_settings_t *s);

/* NULL is a no-op. */
void provider_email_close(email_provider_t *p);
void provider_sms_close(sms_provider_t *p);

#endif
