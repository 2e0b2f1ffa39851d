/*
 * The settings table and its loader. Values come from defaults, then an
 * optional .env file, then the environment. Every setting is declared once, in
 * config_table, and everything user-facing about settings is generated from it.
 */
#include "core/config.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define F(field) offsetof(config_t, field)

/* clang-format off: one setting per line reads better than any wrapping */
const config_entry_t config_table[] = {
    {"PORT", CONFIG_INT, F(port), "8080", 0, 65535, false, "server",
     "TCP port to listen on (0 picks a free port and logs it)."},
    {"BIND", CONFIG_STR, F(bind), "127.0.0.1", 0, 0, false, "server",
     "Address to listen on; 0.0.0.0 for every IPv4 interface."},
    {"API_EXTERNAL_URL", CONFIG_STR, F(api_external_url), "", 0, 0, false, "server",
     "The URL clients use to reach campaignd (default http://BIND:PORT); used in links and the "
     "token issuer."},
    {"SITE_URL", CONFIG_STR, F(site_url), "http://localhost:3000", 0, 0, false, "server",
     "The dashboard's URL: where e-mail links send users back to."},
    {"CORS_ORIGINS", CONFIG_STR, F(cors_origins), "*", 0, 0, false, "server",
     "Comma-separated origins allowed by CORS, or * for any."},
    {"HTTP_THREADS", CONFIG_INT, F(http_threads), "8", 1, 256, false, "server",
     "Worker threads; each holds one database connection."},
    {"MAX_CONNECTIONS", CONFIG_INT, F(max_connections), "1024", 1, 100000, false, "server",
     "Most client connections served at once."},
    {"MAX_CONNECTIONS_PER_IP", CONFIG_INT, F(max_connections_per_ip), "128", 0, 100000, false,
     "server",
     "Most connections one client address may hold open (0: no limit); slows down slow-client "
     "attacks."},
    {"MAX_BODY_BYTES", CONFIG_INT, F(max_body_bytes), "1048576", 1024, 1073741824, false, "limits",
     "Largest request body accepted, in bytes (413 beyond)."},
    {"MAX_HEADER_BYTES", CONFIG_INT, F(max_header_bytes), "32768", 4096, 1048576, false, "limits",
     "Largest request head (request line plus headers), in bytes (431 beyond)."},
    {"MAX_HEADER_COUNT", CONFIG_INT, F(max_header_count), "100", 8, 10000, false, "limits",
     "Most request headers accepted (431 beyond)."},
    {"CLIENT_TIMEOUT", CONFIG_INT, F(client_timeout), "30", 1, 3600, false, "limits",
     "Seconds a client may stay idle or trickle its request before it is disconnected."},
    {"SHUTDOWN_TIMEOUT", CONFIG_INT, F(shutdown_timeout), "10", 0, 600, false, "server",
     "Seconds to let requests in flight finish on SIGINT/SIGTERM."},
    {"TRUSTED_PROXIES", CONFIG_STR, F(trusted_proxies), "", 0, 0, false, "server",
     "Comma-separated proxy addresses whose X-Forwarded-For is believed; empty trusts none."},
    {"LOG_LEVEL", CONFIG_STR, F(log_level), "info", 0, 0, false, "server",
     "debug, info, warn or error."},
    {"CAMPAIGND_DATA_DIR", CONFIG_STR, F(data_dir), "./var", 0, 0, false, "database",
     "Where campaignd keeps its embedded PostgreSQL, generated secrets and files."},
    {"DATABASE_URL", CONFIG_STR, F(database_url), "", 0, 0, true, "database",
     "An external PostgreSQL to use instead of the embedded one (a role that owns the database and "
     "has CREATEROLE)."},
    {"DB_STATEMENT_TIMEOUT", CONFIG_INT, F(db_statement_timeout_ms), "8000", 100, 3600000, false,
     "database", "Milliseconds a request's SQL may run before it is cancelled."},
    {"DB_MAX_ROWS", CONFIG_INT, F(db_max_rows), "1000", 0, 100000000, false, "database",
     "Most rows a /rest/v1 read or function call returns (0 = no limit), like PostgREST's "
     "db-max-rows."},
    {"JWT_SECRET", CONFIG_STR, F(jwt_secret), "", 0, 0, true, "auth",
     "HS256 secret for access tokens, at least 32 bytes; generated into the data dir on first run "
     "if unset."},
    {"JWT_EXP", CONFIG_INT, F(jwt_exp), "3600", 30, 604800, false, "auth",
     "Access-token lifetime in seconds."},
    {"JWT_ISSUER", CONFIG_STR, F(jwt_issuer), "", 0, 0, false, "auth",
     "The iss claim of access tokens (default API_EXTERNAL_URL/auth/v1)."},
    {"REFRESH_TOKEN_REUSE_INTERVAL", CONFIG_INT, F(refresh_token_reuse_interval), "10", 0, 3600,
     false, "auth",
     "Seconds during which an already used refresh token may be presented again (parallel tabs) "
     "before reuse revokes the session."},
    {"PASSWORD_MIN_LENGTH", CONFIG_INT, F(password_min_length), "8", 6, 72, false, "auth",
     "Shortest password accepted, in bytes."},
    {"BCRYPT_COST", CONFIG_INT, F(bcrypt_cost), "10", 10, 15, false, "auth",
     "bcrypt cost for new password hashes."},
    {"DISABLE_SIGNUP", CONFIG_BOOL, F(disable_signup), "true", 0, 0, false, "auth",
     "Refuse self-service sign-up (invite-only: admins invite or create users); false opens "
     "sign-up to anyone, who then gets DEFAULT_USER_ROLE."},
    {"MAILER_AUTOCONFIRM", CONFIG_STR, F(mailer_autoconfirm), "", 0, 0, false, "auth",
     "true: sign-ups are confirmed at once; false: they must follow the mailed link or code "
     "first. Unset: false when SMTP_URL is set, else true (with a warning at start)."},
    {"MAILER_OTP_EXP", CONFIG_INT, F(mailer_otp_exp), "3600", 60, 86400, false, "auth",
     "Lifetime in seconds of mailed links and 6-digit codes."},
    {"MAILER_OTP_MAX_ATTEMPTS", CONFIG_INT, F(mailer_otp_max_attempts), "5", 1, 20, false, "auth",
     "Wrong 6-digit codes for one address before its live codes die."},
    /* MFA (issue 14) */
    {"MFA_REQUIRED_FOR_ADMIN", CONFIG_BOOL, F(mfa_required_for_admin), "false", 0, 0, false, "auth",
     "true turns on app_settings.mfa_required_for_admin at every start: an admin whose session has "
     "not verified a second factor (aal1) has no admin rights until it does (docs/auth.md)."},
    {"MFA_MAX_VERIFY_ATTEMPTS", CONFIG_INT, F(mfa_max_verify_attempts), "5", 1, 100, false, "auth",
     "Wrong TOTP or recovery codes in a row before the factor is locked."},
    {"MFA_LOCKOUT_SECONDS", CONFIG_INT, F(mfa_lockout_seconds), "900", 1, 86400, false, "auth",
     "How long a factor stays locked after MFA_MAX_VERIFY_ATTEMPTS wrong codes."},
    {"ADDITIONAL_REDIRECT_URLS", CONFIG_STR, F(additional_redirect_urls), "", 0, 0, false, "auth",
     "Comma-separated redirect_to URLs allowed besides SITE_URL; * matches within a path segment "
     "or host label, ** matches anything (GoTrue's globs)."},
    {"SMTP_URL", CONFIG_STR, F(smtp_url), "", 0, 0, true, "mail",
     "SMTP server for Auth's mails: smtp://user:password@host:587 (STARTTLS; required when the URL "
     "has a user or password, unless the host is localhost) or smtps://...:465. Unset: no mail is "
     "sent. Campaigns: an admin's value in the app settings "
     "wins (Auth's mails keep this one)."},
    {"SMTP_ADMIN_EMAIL", CONFIG_STR, F(smtp_admin_email), "noreply@localhost", 0, 0, false, "mail",
     "Sender address of Auth's mails."},
    {"SMTP_SENDER_NAME", CONFIG_STR, F(smtp_sender_name), "campaignd", 0, 0, false, "mail",
     "Sender display name of Auth's mails (UTF-8)."},
    {"SMTP_MAX_FREQUENCY", CONFIG_INT, F(smtp_max_frequency), "60", 0, 86400, false, "limits",
     "Seconds between two Auth mails to one address (429 over_email_send_rate_limit sooner)."},
    {"RATE_LIMIT_EMAIL_SENT", CONFIG_INT, F(rate_limit_email_sent), "30", 1, 1000000, false,
     "limits", "Auth mails one client address may cause per hour (429 beyond)."},
    {"DEFAULT_USER_ROLE", CONFIG_STR, F(default_user_role), "user", 0, 0, false, "auth",
     "Role given at sign-up: user or viewer."},
    {"LOGIN_MAX_FAILURES_PER_EMAIL", CONFIG_INT, F(login_max_failures_per_email), "5", 1, 100000,
     false, "limits",
     "Failed sign-ins for one e-mail from one client address within LOGIN_WINDOW_SECONDS before "
     "that address gets 429 for 60 s, doubling with each further failure (other addresses go "
     "on)."},
    {"LOGIN_MAX_FAILURES_PER_EMAIL_GLOBAL", CONFIG_INT, F(login_max_failures_per_email_global),
     "100", 1, 1000000, false, "limits",
     "Failed sign-ins for one e-mail from all addresses within LOGIN_WINDOW_SECONDS before every "
     "address gets 429; high, so that one stranger cannot lock an account out."},
    {"LOGIN_MAX_FAILURES_PER_IP", CONFIG_INT, F(login_max_failures_per_ip), "30", 1, 1000000, false,
     "limits", "Failed sign-ins from one client address within LOGIN_WINDOW_SECONDS before 429."},
    {"LOGIN_WINDOW_SECONDS", CONFIG_INT, F(login_window_seconds), "900", 10, 86400, false, "limits",
     "Window of the sign-in failure counters, in seconds."},
    {"AUTH_RATE_LIMIT", CONFIG_INT, F(auth_rate_limit), "300", 1, 10000000, false, "limits",
     "Sign-up, sign-in and refresh requests one client address may make per 5 minutes (429 "
     "beyond)."},
    {"CAMPAIGND_ADMIN_EMAIL", CONFIG_STR, F(admin_email), "", 0, 0, false, "auth",
     "With CAMPAIGND_ADMIN_PASSWORD: create this admin on start if no admin exists."},
    {"CAMPAIGND_ADMIN_PASSWORD", CONFIG_STR, F(admin_password), "", 0, 0, true, "auth",
     "Password of the bootstrap admin."},
    {"CAMPAIGND_ENCRYPTION_KEY", CONFIG_STR, F(encryption_key), "", 0, 0, true, "secrets",
     "Key that encrypts stored credentials (at least 32 bytes); generated into the data dir on "
     "first run if unset."},
    {"REALTIME_TABLES", CONFIG_STR, F(realtime_tables),
     "campaigns,campaign_progress,analytics_data,reports,report_schedules,contacts,data_sources,"
     "sync_logs",
     0, 0, false, "realtime",
     "Comma-separated tables (schema.table, default schema public) whose inserts, updates and "
     "deletes are published as postgres_changes; applied at start, empty publishes none."},
    {"REALTIME_MAX_CHANNELS", CONFIG_INT, F(realtime_max_channels), "100", 1, 10000, false,
     "realtime", "Channels one WebSocket connection may join at once."},
    {"REALTIME_MAX_MESSAGE_BYTES", CONFIG_INT, F(realtime_max_message_bytes), "1048576", 1024,
     16777216, false, "realtime",
     "Largest WebSocket message a client may send, in bytes (closed with 1009 beyond)."},
    {"REALTIME_MAX_BROADCAST_BYTES", CONFIG_INT, F(realtime_max_broadcast_bytes), "262144", 64,
     16777216, false, "realtime",
     "Largest broadcast payload, in bytes; a larger one is answered with an error and sent to "
     "nobody."},
    {"REALTIME_MAX_PRESENCE_BYTES", CONFIG_INT, F(realtime_max_presence_bytes), "4096", 64, 1048576,
     false, "realtime",
     "Largest presence payload (what one track stores), in bytes; a larger track is refused."},
    {"REALTIME_MAX_PRESENCE_PER_TOPIC", CONFIG_INT, F(realtime_max_presence_per_topic), "1000", 1,
     1000000, false, "realtime", "Most presences tracked in one topic at once."},
    {"REALTIME_MAX_PRESENCE_PER_CONNECTION", CONFIG_INT, F(realtime_max_presence_per_conn), "10", 1,
     10000, false, "realtime",
     "Most presences one WebSocket connection tracks at once (over all its channels)."},
    {"REALTIME_CHECK_CONNECTIONS", CONFIG_INT, F(realtime_check_connections), "2", 1, 8, false,
     "realtime",
     "Database connections that check which postgres_changes each claims group may see; the "
     "groups of a batch are spread over them, one pipelined round trip per connection."},
    {"REALTIME_FEED_WINDOW_MS", CONFIG_INT, F(realtime_feed_window_ms), "10", 0, 1000, false,
     "realtime",
     "Shortest time in milliseconds between two reads of the postgres_changes feed: commits "
     "that wake it sooner are read (and checked, once per claims group) together when the "
     "window ends. A commit after a quiet spell is read at once; 0 reads on every wake-up."},
    {"STORAGE_MAX_FILE_BYTES", CONFIG_INT, F(storage_max_file_bytes), "52428800", 1, 1099511627776,
     false, "storage",
     "Largest object /storage/v1 accepts, in bytes (a bucket's file_size_limit may lower it)."},
    {"RETENTION_INTERVAL", CONFIG_INT, F(retention_interval), "3600", 0, 604800, false, "jobs",
     "Seconds between runs of the retention job, which deletes audit log rows older than "
     "app_settings.data_retention_days, old sign-in attempts and old finished jobs (0 disables "
     "it)."},
    {"JOBS_ENABLED", CONFIG_BOOL, F(jobs_enabled), "true", 0, 0, false, "jobs",
     "Whether this process runs background jobs and the scheduler; false makes an API-only "
     "process (other processes on the database run the jobs)."},
    {"JOB_WORKERS", CONFIG_INT, F(job_workers), "0", 0, 256, false, "jobs",
     "Worker threads that run queued jobs in this process, each with its own database "
     "connection (0: one per CPU)."},
    {"JOB_LEASE_SECONDS", CONFIG_INT, F(job_lease_seconds), "30", 2, 3600, false, "jobs",
     "Seconds a running job stays claimed without its process renewing the lease; a job of a "
     "process that died is taken over after this."},
    {"JOB_POLL_INTERVAL", CONFIG_INT, F(job_poll_interval), "5", 1, 3600, false, "jobs",
     "Seconds between the scheduler's passes (due syncs); each pass also wakes one idle worker "
     "to look for due jobs (idle workers otherwise wait for a notification)."},
    {"JOB_KEEP_DAYS", CONFIG_INT, F(job_keep_days), "7", 1, 3650, false, "jobs",
     "Days that finished (done or failed) jobs stay in jobs.jobs before the retention job "
     "deletes them."},
    /* durable mail (mailjobs) */
    {"MAIL_MAX_ATTEMPTS", CONFIG_INT, F(mail_max_attempts), "8", 1, 50, false, "mail",
     "Delivery attempts of one mail (Auth's, scheduled reports) before it is recorded as failed."},
    {"MAIL_RETRY_DELAY", CONFIG_INT, F(mail_retry_delay), "30", 1, 86400, false, "mail",
     "Seconds before a mail whose delivery failed is tried again; doubled each attempt (at most "
     "a day)."},
    {"WEB_DIR", CONFIG_STR, F(web_dir), "./build/web", 0, 0, false, "server",
     "Directory of the built dashboard (index.html and assets/) served at /; made by `make build` "
     "(scripts/build-web.sh). Empty serves no dashboard."},
    {"IMPORT_MAX_BYTES", CONFIG_INT, F(import_max_bytes), "2147483648", 1024, 1099511627776, false,
     "imports",
     "Largest file an import reads, in bytes: uploads over it fail, URL downloads stop there."},
    {"IMPORT_ALLOW_PRIVATE_NETWORKS", CONFIG_BOOL, F(import_allow_private_networks), "false", 0, 0,
     false, "imports",
     "Let csv_url and google_sheets imports fetch from loopback, private and link-local addresses "
     "(off: such URLs, and redirects to them, are refused)."},
    {"IMPORT_MAX_ROWS_PER_SECOND", CONFIG_INT, F(import_max_rows_per_second), "0", 0, 100000000,
     false, "imports",
     "Most rows per second one import loads (0: as fast as it can). Keeps a large import from "
     "taking the database's whole capacity from the dashboard and the sending work."},
    {"IMPORT_FETCH_TIMEOUT", CONFIG_INT, F(import_fetch_timeout), "600", 1, 86400, false, "imports",
     "Seconds a URL import's download may take."},
    {"IMPORT_DB_CONNECT_TIMEOUT", CONFIG_INT, F(import_db_connect_timeout), "15", 1, 600, false,
     "imports",
     "Seconds a database import (postgres, mysql, …) may take to connect to its source."},
    {"IMPORT_DB_STATEMENT_TIMEOUT", CONFIG_INT, F(import_db_statement_timeout), "3600", 1, 86400,
     false, "imports",
     "Seconds a database import's query may run on its source (the source's statement timeout)."},
    {"IMPORT_DB_KEEP_SECONDS", CONFIG_INT, F(import_db_keep_seconds), "60", 0, 3600, false,
     "imports",
     "Seconds an idle PostgreSQL source connection stays open after a sync that read the whole "
     "result, for the next sync of the same source (0: closed at once). Kept read-only; a change "
     "of the source's configuration or credentials opens a new one; the source closes it after "
     "that time too (idle_session_timeout: PostgreSQL 14 and later; older servers and Redshift "
     "never keep one)."},
    {"GOOGLE_SHEETS_BASE_URL", CONFIG_STR, F(google_sheets_base_url), "https://docs.google.com", 0,
     0, false, "imports",
     "Where google_sheets imports fetch a sheet's CSV export (<base>/spreadsheets/d/<id>/export)."},
    /* OAuth providers (docs/auth.md, "Sign-in with GitHub, Google or OIDC") */
    {"EXTERNAL_GITHUB_ENABLED", CONFIG_BOOL, F(github_enabled), "false", 0, 0, false, "oauth",
     "Offer sign-in with GitHub (needs EXTERNAL_GITHUB_CLIENT_ID and EXTERNAL_GITHUB_SECRET)."},
    {"EXTERNAL_GITHUB_CLIENT_ID", CONFIG_STR, F(github_client_id), "", 0, 0, false, "oauth",
     "Client ID of the GitHub OAuth app."},
    {"EXTERNAL_GITHUB_SECRET", CONFIG_STR, F(github_secret), "", 0, 0, true, "oauth",
     "Client secret of the GitHub OAuth app."},
    {"EXTERNAL_GITHUB_URL", CONFIG_STR, F(github_url), "", 0, 0, false, "oauth",
     "Base URL of a GitHub Enterprise server (<url>/login/oauth/..., API at <url>/api/v3); "
     "empty: github.com."},
    {"EXTERNAL_GOOGLE_ENABLED", CONFIG_BOOL, F(google_enabled), "false", 0, 0, false, "oauth",
     "Offer sign-in with Google (needs EXTERNAL_GOOGLE_CLIENT_ID and EXTERNAL_GOOGLE_SECRET)."},
    {"EXTERNAL_GOOGLE_CLIENT_ID", CONFIG_STR, F(google_client_id), "", 0, 0, false, "oauth",
     "Client ID of the Google OAuth client."},
    {"EXTERNAL_GOOGLE_SECRET", CONFIG_STR, F(google_secret), "", 0, 0, true, "oauth",
     "Client secret of the Google OAuth client."},
    {"EXTERNAL_GOOGLE_URL", CONFIG_STR, F(google_url), "", 0, 0, false, "oauth",
     "One base URL for Google's endpoints (<url>/o/oauth2/v2/auth, <url>/token, "
     "<url>/v1/userinfo), for tests; empty: Google's own hosts."},
    {"EXTERNAL_OIDC_ENABLED", CONFIG_BOOL, F(oidc_enabled), "false", 0, 0, false, "oauth",
     "Offer sign-in with a generic OpenID Connect provider (provider=oidc)."},
    {"EXTERNAL_OIDC_CLIENT_ID", CONFIG_STR, F(oidc_client_id), "", 0, 0, false, "oauth",
     "Client ID at the OIDC provider."},
    {"EXTERNAL_OIDC_SECRET", CONFIG_STR, F(oidc_secret), "", 0, 0, true, "oauth",
     "Client secret at the OIDC provider."},
    {"EXTERNAL_OIDC_AUTHORIZE_URL", CONFIG_STR, F(oidc_authorize_url), "", 0, 0, false, "oauth",
     "The OIDC provider's authorization endpoint (no discovery: copy it from its "
     ".well-known/openid-configuration)."},
    {"EXTERNAL_OIDC_TOKEN_URL", CONFIG_STR, F(oidc_token_url), "", 0, 0, false, "oauth",
     "The OIDC provider's token endpoint."},
    {"EXTERNAL_OIDC_USERINFO_URL", CONFIG_STR, F(oidc_userinfo_url), "", 0, 0, false, "oauth",
     "The OIDC provider's userinfo endpoint (sub, email, email_verified are read)."},
    {"EXTERNAL_OIDC_ISSUER", CONFIG_STR, F(oidc_issuer), "", 0, 0, false, "oauth",
     "The OIDC provider's issuer (iss). Its discovery document "
     "(<issuer>/.well-known/openid-configuration) names the JWKS the id_token is verified with; "
     "empty: an id_token is not trusted and the user comes from the userinfo endpoint."},
    {"EXTERNAL_OIDC_SCOPES", CONFIG_STR, F(oidc_scopes), "openid email profile", 0, 0, false,
     "oauth", "Scopes requested from the OIDC provider, space-separated."},
    /* the send engine (issue 12) */
    {"EMAIL_PROVIDER", CONFIG_STR, F(email_provider), "", 0, 0, false, "sending",
     "E-mail provider of campaigns: smtp or sendgrid; empty: smtp when SMTP_URL is set, else none "
     "(sending answers 409 provider_not_configured); an admin's value in the app settings wins."},
    {"EMAIL_FROM", CONFIG_STR, F(email_from), "", 0, 0, false, "sending",
     "Sender address of campaign e-mail when the campaign names none (empty: SMTP_ADMIN_EMAIL); an "
     "admin's value in the app settings wins."},
    {"EMAIL_RATE_PER_SECOND", CONFIG_INT, F(email_rate_per_second), "50", 0, 100000, false,
     "sending",
     "Most campaign e-mails this process hands to the provider per second (0: no limit)."},
    {"SMS_RATE_PER_SECOND", CONFIG_INT, F(sms_rate_per_second), "10", 0, 100000, false, "sending",
     "Most campaign SMS this process hands to the provider per second (0: no limit)."},
    {"SEND_WORKERS", CONFIG_INT, F(send_workers), "2", 1, 64, false, "sending",
     "Workers that send one campaign at once, in all processes together (each one SMTP "
     "connection); after a crash at most SEND_WORKERS x SEND_IN_FLIGHT messages become "
     "`unknown`."},
    {"SEND_IN_FLIGHT", CONFIG_INT, F(send_in_flight), "32", 1, 100, false, "sending",
     "Messages one worker may have in flight at once: with SMTP and SMS it puts them in flight "
     "in groups of at most SEND_IN_FLIGHT/2 with one database step each and hands a group over "
     "one after the other on its connection while the next group's step runs (1: one message "
     "per step, no overlap); with SendGrid a step's group is one call of at most SEND_IN_FLIGHT. "
     "Part of the send concurrency, since a crash may leave all of them `unknown`; fewer "
     "database commits per message when larger."},
    {"SEND_BATCH_SIZE", CONFIG_INT, F(send_batch_size), "100", 1, 100, false, "sending",
     "Most messages a worker claims (leases) at once, and never more than a second of its "
     "channel's rate (EMAIL_RATE_PER_SECOND, SMS_RATE_PER_SECOND): a claim leaves as fast as "
     "the provider takes it, so that is the largest burst the provider sees. They are put in "
     "flight SEND_IN_FLIGHT at most at a time, so the batch does not bound what a crash "
     "loses."},
    {"SEND_LEASE_SECONDS", CONFIG_INT, F(send_lease_seconds), "120", 2, 3600, false, "sending",
     "Seconds a worker holds its claimed messages and one may stay in flight; past that its "
     "worker is taken for dead: a message in flight becomes `unknown` (never resent), the "
     "others are claimed again."},
    {"SEND_MAX_ATTEMPTS", CONFIG_INT, F(send_max_attempts), "5", 1, 100, false, "sending",
     "Tries of a message that fails temporarily before it is marked failed."},
    {"SEND_RETRY_SECONDS", CONFIG_INT, F(send_retry_seconds), "60", 1, 86400, false, "sending",
     "First delay before a temporarily failed message is tried again; doubles each try (at most "
     "an hour)."},
    {"SEND_SCHEDULER_INTERVAL", CONFIG_INT, F(send_scheduler_interval), "30", 1, 3600, false,
     "sending", "Seconds between checks for scheduled campaigns whose date has come."},
    {"SEND_ROLLUP_INTERVAL", CONFIG_INT, F(send_rollup_interval), "300", 0, 86400, false, "sending",
     "Seconds between roll-ups of delivery counts into analytics_data: every day of the "
     "campaigns sending or changed since the last one (0 disables it; a campaign that "
     "finishes is rolled up at once)."},
    /* providers (issue 12): SendGrid and Twilio */
    {"SENDGRID_API_KEY", CONFIG_STR, F(sendgrid_api_key), "", 0, 0, true, "providers",
     "SendGrid API key (Mail Send permission); an admin's value in the app settings wins."},
    {"SENDGRID_API_BASE", CONFIG_STR, F(sendgrid_api_base), "https://api.sendgrid.com", 0, 0, false,
     "providers",
     "Base URL of SendGrid's v3 API (requests go to <base>/v3/mail/send); an admin's value in the "
     "app settings wins."},
    {"SENDGRID_WEBHOOK_PUBLIC_KEY", CONFIG_STR, F(sendgrid_webhook_public_key), "", 0, 0, false,
     "providers",
     "Verification key of SendGrid's signed Event Webhook (base64, from SendGrid's console); "
     "unset: /webhooks/sendgrid/events answers 403."},
    {"TWILIO_ACCOUNT_SID", CONFIG_STR, F(twilio_account_sid), "", 0, 0, false, "providers",
     "Twilio account SID (AC...); an admin's value in the app settings wins."},
    {"TWILIO_AUTH_TOKEN", CONFIG_STR, F(twilio_auth_token), "", 0, 0, true, "providers",
     "Twilio auth token: API requests and the X-Twilio-Signature of webhooks; an admin's value in "
     "the app settings wins."},
    {"TWILIO_FROM", CONFIG_STR, F(twilio_from), "", 0, 0, false, "providers",
     "Default SMS sender: an E.164 number or a messaging service SID (MG...); a campaign's "
     "sms_sender wins, then an admin's value in the app settings."},
    {"TWILIO_API_BASE", CONFIG_STR, F(twilio_api_base), "https://api.twilio.com", 0, 0, false,
     "providers", "Base URL of Twilio's REST API; an admin's value in the app settings wins."},
    {"SMS_HELP_TEXT", CONFIG_STR, F(sms_help_text),
     "Reply STOP to opt out, START to opt back in. Msg&data rates may apply.", 0, 0, false,
     "providers", "Answer to an inbound HELP or INFO."},
    {"SMS_PRICE_RETRY_SECONDS", CONFIG_INT, F(sms_price_retry_seconds), "60", 1, 86400, false,
     "providers",
     "Seconds after an SMS's final status before its price is fetched from Twilio (which prices "
     "messages a while later), and the first delay between tries (doubling; 12 tries)."},
    {"WEBHOOK_RATE_LIMIT", CONFIG_INT, F(webhook_rate_limit), "60000", 1, 100000000, false,
     "limits",
     "Signed provider webhook requests (/webhooks/...) accepted per client address per 5 "
     "minutes; beyond it 429 with Retry-After (a bad signature is always 403 first)."},
};
/* clang-format on */
const size_t config_table_len = CD_ARRAY_LEN(config_table);

const config_entry_t *config_find(const char *name)
{
    for (size_t i = 0; i < config_table_len; i++)
        if (strcmp(config_table[i].name, name) == 0)
            return &config_table[i];
    return NULL;
}

static bool parse_bool(const char *v, bool *out)
{
    static const char *yes[] = {"1", "true", "yes", "on"};
    static const char *no[] = {"0", "false", "no", "off", ""};
    for (size_t i = 0; i < CD_ARRAY_LEN(yes); i++)
        if (strcasecmp(v, yes[i]) == 0)
            return (*out = true), true;
    for (size_t i = 0; i < CD_ARRAY_LEN(no); i++)
        if (strcasecmp(v, no[i]) == 0)
            return (*out = false), true;
    return false;
}

static bool entry_set(config_t *cfg, const config_entry_t *e, const char *v, char *err,
                      size_t errlen)
{
    char *base = (char *)cfg + e->offset;
    if (strlen(v) > CONFIG_MAX_VALUE) {
        snprintf(err, errlen, "%s is longer than %d bytes", e->name, CONFIG_MAX_VALUE);
        return false;
    }
    switch (e->type) {
    case CONFIG_STR: {
        char *copy = strdup(v);
        if (!copy) {
            snprintf(err, errlen, "out of memory");
            return false;
        }
        free(*(char **)base);
        *(char **)base = copy;
        return true;
    }
    case CONFIG_INT: {
        char *end;
        errno = 0;
        long n = strtol(v, &end, 10);
        if (errno || end == v || *end != '\0' || n < e->min || n > e->max) {
            snprintf(err, errlen, "%s must be a whole number from %ld to %ld (got \"%s\")", e->name,
                     e->min, e->max, v);
            return false;
        }
        *(long *)base = n;
        return true;
    }
    case CONFIG_BOOL:
        if (!parse_bool(v, (bool *)base)) {
            snprintf(err, errlen, "%s must be true or false (got \"%s\")", e->name, v);
            return false;
        }
        return true;
    }
    return false;
}

bool config_set(config_t *cfg, const char *name, const char *value, char *err, size_t errlen)
{
    const config_entry_t *e = config_find(name);
    if (!e) {
        snprintf(err, errlen, "unknown setting %s", name);
        return false;
    }
    return entry_set(cfg, e, value, err, errlen);
}

/* Reads KEY=VALUE lines; blank lines and # comments are skipped; a value may be
 * wrapped in single or double quotes. Only known settings are taken; the
 * environment still wins, so the file only fills what the environment lacks. */
static bool load_env_file(config_t *cfg, const char *path, bool required, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        if (!required && errno == ENOENT)
            return true;
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return false;
    }
    char line[CONFIG_MAX_VALUE + 256];
    int lineno = 0;
    bool ok = true;
    while (ok && fgets(line, sizeof(line), f)) {
        lineno++;
        size_t n = strlen(line);
        while (n && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' '))
            line[--n] = '\0';
        char *p = line;
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '\0' || *p == '#')
            continue;
        if (strncmp(p, "export ", 7) == 0)
            p += 7;
        char *eq = strchr(p, '=');
        if (!eq) {
            snprintf(err, errlen, "%s:%d: expected NAME=value", path, lineno);
            ok = false;
            break;
        }
        *eq = '\0';
        char *key = p, *val = eq + 1;
        size_t vl = strlen(val);
        if (vl >= 2 && (val[0] == '"' || val[0] == '\'') && val[vl - 1] == val[0]) {
            val[vl - 1] = '\0';
            val++;
        }
        const config_entry_t *e = config_find(key);
        if (!e || getenv(key))
            continue;
        char sub[512];
        if (!entry_set(cfg, e, val, sub, sizeof(sub))) {
            snprintf(err, errlen, "%s:%d: %s", path, lineno, sub);
            ok = false;
        }
    }
    fclose(f);
    return ok;
}

static bool load_all(config_t *cfg, const char *env_path, char *err, size_t errlen)
{
    for (size_t i = 0; i < config_table_len; i++)
        if (!entry_set(cfg, &config_table[i], config_table[i].def, err, errlen))
            return false;
    if (!load_env_file(cfg, env_path ? env_path : ".env", env_path != NULL, err, errlen))
        return false;
    for (size_t i = 0; i < config_table_len; i++) {
        const char *v = getenv(config_table[i].name);
        if (v && !entry_set(cfg, &config_table[i], v, err, errlen))
            return false;
    }
    if (strcmp(cfg->log_level, "debug") && strcmp(cfg->log_level, "info") &&
        strcmp(cfg->log_level, "warn") && strcmp(cfg->log_level, "error")) {
        snprintf(err, errlen, "LOG_LEVEL must be debug, info, warn or error");
        return false;
    }
    if (strcmp(cfg->default_user_role, "user") && strcmp(cfg->default_user_role, "viewer")) {
        snprintf(err, errlen, "DEFAULT_USER_ROLE must be user or viewer");
        return false;
    }
    if (*cfg->email_provider && strcmp(cfg->email_provider, "smtp") &&
        strcmp(cfg->email_provider, "sendgrid")) {
        snprintf(err, errlen, "EMAIL_PROVIDER must be smtp or sendgrid");
        return false;
    }
    return true;
}

bool config_load(config_t *cfg, const char *env_path, char *err, size_t errlen)
{
    memset(cfg, 0, sizeof(*cfg));
    if (load_all(cfg, env_path, err, errlen))
        return true;
    config_free(cfg);
    return false;
}

void config_format_value(const config_t *cfg, const config_entry_t *e, bool mask, char *out,
                         size_t outlen)
{
    const char *base = (const char *)cfg + e->offset;
    switch (e->type) {
    case CONFIG_STR: {
        const char *s = *(char *const *)base;
        if (mask && e->secret && s && *s)
            snprintf(out, outlen, "(set, %zu bytes)", strlen(s));
        else
            snprintf(out, outlen, "%s", s ? s : "");
        break;
    }
    case CONFIG_INT:
        snprintf(out, outlen, "%ld", *(const long *)base);
        break;
    case CONFIG_BOOL:
        snprintf(out, outlen, "%s", *(const bool *)base ? "true" : "false");
        break;
    }
}

void config_free(config_t *cfg)
{
    for (size_t i = 0; i < config_table_len; i++) {
        if (config_table[i].type == CONFIG_STR) {
            char **p = (char **)((char *)cfg + config_table[i].offset);
            free(*p);
            *p = NULL;
        }
    }
}

void config_print_help(FILE *f, bool markdown)
{
    if (markdown) {
        fprintf(f, "# Configuration\n\n"
                   "<!-- Generated by `campaignd config --markdown`; `make test` checks it. -->\n\n"
                   "campaignd reads its settings from the environment and from an optional `.env`\n"
                   "file in the working directory (the environment wins). Every setting has a\n"
                   "default that works for a first run on one machine.\n");
        const char *group = "";
        for (size_t i = 0; i < config_table_len; i++) {
            const config_entry_t *e = &config_table[i];
            if (strcmp(group, e->group) != 0) {
                group = e->group;
                fprintf(f, "\n## %s\n\n| setting | default | description |\n| --- | --- | --- |\n",
                        group);
            }
            fprintf(f, "| `%s` | %s%s%s | %s%s |\n", e->name, *e->def ? "`" : "",
                    *e->def ? e->def : "(none)", *e->def ? "`" : "", e->help,
                    e->secret ? " Secret: never logged, shown masked." : "");
        }
    } else {
        fprintf(f, "Settings (environment variables, or NAME=value lines in ./.env):\n");
        for (size_t i = 0; i < config_table_len; i++) {
            const config_entry_t *e = &config_table[i];
            fprintf(f, "  %-30s %s%s%s\n", e->name, e->help, *e->def ? " Default: " : "",
                    *e->def ? e->def : "");
        }
    }
}
