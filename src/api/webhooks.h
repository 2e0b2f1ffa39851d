/*
 * The provider webhooks (issue 12), outside /api and without a login: the
 * sender is proven by its signature instead.
 *
 *   POST /webhooks/twilio/status     Twilio status callbacks (X-Twilio-Signature)
 *   POST /webhooks/twilio/inbound    inbound SMS: STOP / START / HELP, TwiML answer
 *   POST /webhooks/sendgrid/events   SendGrid's signed Event Webhook (ECDSA)
 *
 * The handlers verify and parse; the state changes are SECURITY DEFINER
 * functions of migration 029 run as service_role. docs/providers.md is the
 * user's side.
 */
#ifndef CD_API_WEBHOOKS_H
#define CD_API_WEBHOOKS_H

#include "core/buf.h"
#include "http/http.h"

/* The webhook routes, for the server's routing table (src/server_routes.c).
 * Handlers expect req->ctx to be the app_t given to http_server_start. */
extern const http_route_t webhook_routes[];
extern const size_t webhook_routes_len;

/* The URL Twilio signed for a request whose target was raw_uri: the
 * externally visible base (API_EXTERNAL_URL, no trailing slash) followed by
 * the target. False if it does not fit in out. Exposed for tests. */
CD_MUSTCHECK bool webhooks_twilio_url(const char *external_url, const char *raw_uri, char *out,
                                      size_t outlen);

/* The job kind that fetches an SMS's price from Twilio after its final
 * status (migration 043 queues it; SMS_PRICE_RETRY_SECONDS paces it). */
#define WEBHOOKS_PRICE_KIND "sms.price"

/* Registers the sms.price job handler (before jobs_start). */
CD_MUSTCHECK bool webhooks_register_jobs(void);

#endif
