/*
 * /api/reports: campaign performance reports. Generating one is a single SQL
 * statement run as the caller: it reads the campaign and its delivery history
 * (sms_messages, email_messages, email_clicks) through row-level security,
 * computes totals, per-channel figures, rates and a per-day breakdown, and
 * stores them in reports.data. Exports send a stored report as JSON or as
 * CSV; the CSV writer (RFC 4180 quoting, spreadsheet formula neutralisation)
 * is here because libcsv's writer quotes every field and knows nothing of
 * formulas, and the rules fit in one small, unit-tested function.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "api/api_internal.h"
#include "api/reports_pdf.h"
#include "storage/storage.h"
#include "core/crypto.h"
#include "core/log.h"

#define REPORT_TYPE "campaign_performance"

/* ------------------------------------------------------------------ CSV */

bool api__csv_is_number(const char *s, size_t len)
{
    size_t i = 0;
    if (i < len && (s[i] == '+' || s[i] == '-'))
        i++;
    size_t start = i;
    while (i < len && s[i] >= '0' && s[i] <= '9')
        i++;
    if (i == start)
        return false;
    if (i < len && s[i] == '.') {
        size_t frac = ++i;
        while (i < len && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == frac)
            return false;
    }
    return i == len;
}

/* Where a spreadsheet may start a new cell: ',' or ';' (the separator of
 * locales with a decimal comma), a tab, a line break. */
static bool csv_is_separator(char c)
{
    return c == ',' || c == ';' || c == '\t' || c == '\r' || c == '\n';
}

/* Whether a cell that starts at s and has len characters before the next
 * separator (s[0] may be that separator) would start a formula. */
static bool csv_is_formula(const char *s, size_t len)
{
    return (s[0] == '=' || s[0] == '+' || s[0] == '-' || s[0] == '@' || s[0] == '\t' ||
            s[0] == '\r') &&
           !api__csv_is_number(s, len);
}

bool api__csv_append_field(cd_buf_t *b, const char *s, size_t len)
{
    if (!s)
        return true;
    bool quote = false;
    for (size_t i = 0; i < len && !quote; i++)
        quote = s[i] == ',' || s[i] == ';' || s[i] == '"' || s[i] == '\r' || s[i] == '\n';
    size_t before = b->len;
    bool ok = !quote || cd_buf_add(b, "\"", 1);
    /* Each stretch between separators is a cell to some spreadsheet: a formula
     * start is neutralised at the field's start and after every separator. */
    size_t i = 0;
    while (ok && i < len) {
        size_t n = 0;
        while (i + n < len && !csv_is_separator(s[i + n]))
            n++;
        /* the cell, and the separator after it (itself a formula start only as
         * the first character of a field) */
        size_t cell = n < len - i ? n + 1 : n;
        if (csv_is_formula(s + i, n))
            ok = cd_buf_add(b, "'", 1);
        for (size_t k = 0; ok && k < cell; k++)
            ok = cd_buf_add(b, s + i + k, 1) &&
                 (!quote || s[i + k] != '"' || cd_buf_add(b, "\"", 1));
        i += cell;
    }
    ok = ok && (!quote || cd_buf_add(b, "\"", 1));
    if (!ok) {
        /* leave the buffer as it was: a half field must never be sent */
        b->len = before;
        if (b->data)
            b->data[before] = '\0';
    }
    return ok;
}

void api__safe_filename(const char *prefix, const char *name, const char *ext, char *out,
                        size_t outlen)
{
    char slug[49];
    size_t n = 0;
    bool dash = false;
    for (const char *p = name ? name : ""; *p && n < sizeof(slug) - 1; p++) {
        char c = *p;
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
            if (dash && n > 0 && n < sizeof(slug) - 2)
                slug[n++] = '-';
            slug[n++] = c;
            dash = false;
        } else {
            dash = true;
        }
    }
    slug[n] = '\0';
    snprintf(out, outlen, "%s-%s.%s", prefix, n ? slug : "report", ext);
}

/* ------------------------------------------------------------ generation */

/* $1 campaign id, $2 report name (NULL: "<campaign name> performance"),
 * $3 from, $4 to (dates in the application's time zone; NULL = open).
 * A message belongs to the day of coalesce(sent_at, created_at) in that
 * time zone. Returns one row: how many campaigns matched (0 = not found for
 * this caller), the stored report as JSON, and whether the caller may
 * generate it. Formulas: docs/api.md.
 *
 * Reports are generated, not written (migrations/018_domain_rules.sql): the
 * API roles have no INSERT on public.reports, so a signed-in caller's report
 * is computed and stored as service_role with the caller's claims, and the
 * statement itself applies what RLS did before: the caller sees the campaign
 * when it owns it or is an admin or viewer (camp), and may generate a report
 * when it owns it with role user or is an admin (may). Its authoritative role
 * comes from auth.db_role_for_claims(), as for every request (anon when banned). */
static const char CREATE_SQL[] =
    "with tz as materialized ("
    "  select coalesce((select s.timezone from public.app_settings_public s limit 1), 'UTC')"
    "    as name), "
    "who as materialized ("
    "  select auth.uid() as uid,"
    "    case when auth.role() = 'authenticated' then auth.db_role_for_claims(auth.jwt())"
    "         else current_user::text end as role), "
    "camp as materialized ("
    "  select c.id, c.name, c.type, c.status,"
    "    (who.role = 'app_admin' or (who.role = 'app_user' and c.user_id = who.uid)) as may"
    "  from public.campaigns c, who"
    "  where c.id = $1::uuid and c.deleted_at is null"
    "    and (who.role in ('app_admin', 'app_viewer') or c.user_id = who.uid)), "
    "win as materialized ("
    "  select ($3::date)::timestamp at time zone tz.name as t0,"
    "         ($4::date + 1)::timestamp at time zone tz.name as t1 from tz), "
    "em as materialized ("
    "  select m.id, m.recipient::text as recipient, m.status, m.opened_at, m.clicked_at,"
    "    m.unsubscribed_at,"
    "    (coalesce(m.sent_at, m.created_at) at time zone (select name from tz))::date as day,"
    "    (select count(*) from public.email_clicks k where k.message_id = m.id) as clicks"
    "  from public.email_messages m, camp, win"
    "  where m.campaign_id = camp.id"
    "    and (win.t0 is null or coalesce(m.sent_at, m.created_at) >= win.t0)"
    "    and (win.t1 is null or coalesce(m.sent_at, m.created_at) < win.t1)), "
    "allm as materialized ("
    "  select 'email'::text as channel, em.day, em.recipient,"
    "    em.status in ('sent', 'deferred', 'delivered', 'bounced', 'opened', 'clicked',"
    "                  'spam_reported', 'unsubscribed') as sent,"
    "    em.status in ('delivered', 'opened', 'clicked', 'spam_reported', 'unsubscribed')"
    "      as delivered,"
    "    em.status in ('failed', 'dropped') as failed,"
    "    em.status = 'bounced' as bounced,"
    "    (em.status in ('opened', 'clicked') or em.opened_at is not null"
    "     or em.clicked_at is not null or em.clicks > 0) as opened,"
    "    (em.status = 'clicked' or em.clicked_at is not null or em.clicks > 0) as clicked_msg,"
    "    em.clicks, 0::bigint as segments, 0::numeric as cost,"
    "    em.status = 'unknown' as unknown,"
    "    (em.status = 'unsubscribed' or em.unsubscribed_at is not null) as unsubscribed"
    "  from em"
    "  union all"
    "  select 'sms', (coalesce(s.sent_at, s.created_at) at time zone (select name from tz))::date,"
    "    s.recipient::text,"
    "    s.status in ('sent', 'delivered', 'undelivered', 'read'),"
    "    s.status in ('delivered', 'read'),"
    "    s.status in ('failed', 'undelivered'),"
    "    false, false, false, 0, s.segments, abs(coalesce(s.cost, 0)), s.status = 'unknown', false"
    "  from public.sms_messages s, camp, win"
    "  where s.campaign_id = camp.id"
    "    and (win.t0 is null or coalesce(s.sent_at, s.created_at) >= win.t0)"
    "    and (win.t1 is null or coalesce(s.sent_at, s.created_at) < win.t1)), "
    "agg as materialized ("
    "  select ch.channel, a.day, grouping(ch.channel) as g_ch, grouping(a.day) as g_day,"
    "    count(a.channel) as messages,"
    "    count(*) filter (where a.sent) as sent,"
    "    count(*) filter (where a.delivered) as delivered,"
    "    count(*) filter (where a.failed) as failed,"
    "    count(*) filter (where a.bounced) as bounced,"
    "    count(*) filter (where a.opened) as opened,"
    "    coalesce(sum(a.clicks), 0) as clicked,"
    "    count(distinct a.recipient) filter (where a.opened) as unique_opens,"
    "    count(distinct a.recipient) filter (where a.clicked_msg) as unique_clicks,"
    "    count(*) filter (where a.clicked_msg) as clicked_messages,"
    "    count(*) filter (where a.sent and a.channel = 'email') as email_sent,"
    "    count(*) filter (where a.delivered and a.channel = 'email') as email_delivered,"
    "    coalesce(sum(a.segments), 0) as segments,"
    "    coalesce(sum(a.cost), 0) as cost,"
    "    count(*) filter (where a.unknown) as unknown,"
    "    count(*) filter (where a.unsubscribed) as unsubscribed"
    "  from (values ('email'), ('sms')) as ch(channel)"
    "  left join allm a on a.channel = ch.channel"
    "  group by grouping sets ((ch.channel), (a.day), ())), "
    "j as materialized ("
    "  select agg.channel, agg.day, agg.g_ch, agg.g_day, jsonb_build_object("
    "    'messages', messages, 'sent', sent, 'delivered', delivered, 'failed', failed,"
    "    'bounced', bounced, 'opened', opened, 'clicked', clicked,"
    "    'unique_opens', unique_opens, 'unique_clicks', unique_clicks,"
    "    'clicked_messages', clicked_messages, 'segments', segments, 'cost', cost,"
    "    'unknown', unknown, 'unsubscribed', unsubscribed,"
    "    'delivery_rate', round(100.0 * delivered / nullif(sent, 0), 2),"
    "    'bounce_rate', round(100.0 * bounced / nullif(email_sent, 0), 2),"
    "    'open_rate', round(100.0 * opened / nullif(email_delivered, 0), 2),"
    "    'click_rate', round(100.0 * clicked_messages / nullif(email_delivered, 0), 2)) as m"
    "  from agg), "
    "ins as ("
    "  insert into public.reports as r (campaign_id, report_type, data)"
    "  select camp.id, '" REPORT_TYPE "', jsonb_build_object("
    "    'name', coalesce($2::text, left(camp.name, 180) || ' performance'),"
    "    'campaign', jsonb_build_object('id', camp.id, 'name', camp.name, 'type', camp.type,"
    "                                   'status', camp.status),"
    "    'period', jsonb_build_object('from', $3::date, 'to', $4::date,"
    "                                 'timezone', (select name from tz)),"
    "    'totals', (select j.m from j where j.g_ch = 1 and j.g_day = 1),"
    "    'email', (select j.m from j where j.g_ch = 0 and j.channel = 'email'),"
    "    'sms', (select j.m from j where j.g_ch = 0 and j.channel = 'sms'),"
    "    'daily', coalesce((select jsonb_agg(jsonb_build_object('date', j.day) || j.m"
    "                                        order by j.day)"
    "                       from j where j.g_day = 0 and j.day is not null), '[]'::jsonb))"
    "  from camp where camp.may"
    "  returning r.*) "
    "select (select count(*) from camp)::int, (select to_json(i)::text from ins i),"
    "  coalesce((select bool_and(camp.may) from camp), false)";

static const char *const report_keys[] = {"report_type", "campaign_id", "name", "from", "to", NULL};

/* Longest range of a report beyond one campaign, in days. */
#define API_REPORT_MAX_DAYS 366

static bool read_date(http_request_t *req, json_t *body, const char *key, const char **out,
                      long *days)
{
    json_t *v = json_object_get(body, key);
    int y, m, d;
    *out = NULL;
    if (!v || json_is_null(v))
        return true;
    if (!json_is_string(v) || !api__parse_date(json_string_value(v), &y, &m, &d)) {
        api__reply_invalid(req, "invalid_body", key, "%s must be a date YYYY-MM-DD", key);
        return false;
    }
    *out = json_string_value(v);
    *days = api__days_from_civil(y, m, d);
    return true;
}

/* A report beyond one campaign (reports_types.c): from and to required, at
 * most API_REPORT_MAX_DAYS days, no campaign_id. */
static void create_flat(http_request_t *req, api_ctx_t *ctx, json_t *body, const char *type)
{
    const char *name, *from, *to;
    bool present;
    long from_days = 0, to_days = 0;
    if (json_object_get(body, "campaign_id")) {
        api__reply_invalid(req, "invalid_body", "campaign_id",
                           "campaign_id is only for campaign_performance reports");
        return;
    }
    if (!api__body_text(req, body, "name", API_MAX_REPORT_NAME_CHARS,
                        API_TEXT_NULLABLE | API_TEXT_NOT_BLANK, &name, &present) ||
        !read_date(req, body, "from", &from, &from_days) ||
        !read_date(req, body, "to", &to, &to_days))
        return;
    if (!from || !to) {
        api__reply_invalid(req, "invalid_body", from ? "to" : "from",
                           "%s is required for %s reports", from ? "to" : "from", type);
        return;
    }
    if (from_days > to_days) {
        api__reply_invalid(req, "invalid_body", "from", "from (%s) is after to (%s)", from, to);
        return;
    }
    if (to_days - from_days + 1 > API_REPORT_MAX_DAYS) {
        api__reply_invalid(req, "invalid_body", "to", "a report covers at most %d days",
                           API_REPORT_MAX_DAYS);
        return;
    }
    if (ctx->anon) {
        api__reply_error(req, 401, "42501", "sign in to generate reports", NULL, NULL);
        return;
    }
    char *row = NULL;
    db_error_t err;
    switch (api_report_generate(&ctx->who, type, name, from, to, &row, NULL, &err)) {
    case API_REPORT_OK: {
        json_t *j = json_loads(row, 0, NULL);
        const char *id = json_string_value(json_object_get(j, "id"));
        char loc[80];
        snprintf(loc, sizeof(loc), "/api/reports/%s", id ? id : "");
        http_add_header(req, "Location", loc);
        http_reply_take(req, 201, "application/json", row, strlen(row));
        json_decref(j);
        return;
    }
    case API_REPORT_DENIED:
        api__reply_error(req, 403, "42501", "permission denied: you may not generate this report",
                         NULL, "Reports are generated by users (role user) and admins.");
        break;
    case API_REPORT_UNAVAILABLE:
        http_reply_unavailable(req, db_retry_after());
        break;
    default:
        log_error("report %s not generated: %s (SQLSTATE %s)", type, err.message, err.sqlstate);
        api__reply_error(req, 500, "internal_error", "the report could not be generated", NULL,
                         NULL);
        break;
    }
    free(row);
}

void api__reports_create(http_request_t *req)
{
    api_ctx_t ctx;
    if (!api__begin(req, false, &ctx))
        return;
    json_t *body = api__read_body(req);
    if (!body || !api__check_keys(req, body, report_keys))
        goto done;
    const char *type, *campaign_id, *name, *from, *to;
    bool present;
    long from_days = 0, to_days = 0;
    if (!api__body_text(req, body, "report_type", 40, API_TEXT_NULLABLE, &type, &present))
        goto done;
    if (type && strcmp(type, REPORT_TYPE) != 0) {
        if (!api_report_type_title(type))
            api__reply_invalid(req, "invalid_body", "report_type",
                               "report_type must be one of campaign_performance, period_summary, "
                               "channel_comparison, audience");
        else
            create_flat(req, &ctx, body, type);
        goto done;
    }
    if (!api__body_text(req, body, "campaign_id", 36, API_TEXT_REQUIRED, &campaign_id, &present))
        goto done;
    if (!cd_is_uuid(campaign_id)) {
        api__reply_invalid(req, "invalid_body", "campaign_id", "campaign_id must be a UUID");
        goto done;
    }
    if (!api__body_text(req, body, "name", API_MAX_REPORT_NAME_CHARS,
                        API_TEXT_NULLABLE | API_TEXT_NOT_BLANK, &name, &present) ||
        !read_date(req, body, "from", &from, &from_days) ||
        !read_date(req, body, "to", &to, &to_days))
        goto done;
    if (from && to && from_days > to_days) {
        api__reply_invalid(req, "invalid_body", "from", "from (%s) is after to (%s)", from, to);
        goto done;
    }
    const char *p[4] = {campaign_id, name, from, to};
    db_stmt_t st = {CREATE_SQL, 4, p};
    PGresult *res = NULL;
    /* A signed-in caller's report is stored as service_role (see CREATE_SQL);
     * anon keeps its role and gets the 401 of a missing privilege. */
    if (strcmp(ctx.who.role, "authenticated") == 0)
        ctx.who.role = "service_role";
    if (!api__run(req, &ctx, &st, 1, &res))
        goto done;
    if (strcmp(PQgetvalue(res, 0, 0), "0") == 0) {
        api__reply_not_found(req, "campaign");
    } else if (strcmp(PQgetvalue(res, 0, 2), "t") != 0 || PQgetisnull(res, 0, 1)) {
        api__reply_error(req, 403, "42501", "permission denied: you may not generate this report",
                         NULL,
                         "Reports are generated by the campaign's owner (role user) or an admin.");
    } else {
        api__reply_created(req, res, 1, "/api/reports");
    }
    PQclear(res);
done:
    json_decref(body);
    api__end(&ctx);
}

/* ----------------------------------------------------------- list, read */

static const char LIST_SQL[] =
    "with f as ("
    "  select r.* from public.reports r"
    "  where ($1::uuid is null or r.campaign_id = $1::uuid)) "
    "select (select count(*) from f)::text,"
    "  coalesce((select json_agg(p order by p.generated_at desc, p.id desc) from ("
    "    select * from f order by generated_at desc, id desc"
    "    limit $2::int offset $3::bigint) p), '[]')::text";

void api__reports_list(http_request_t *req)
{
    api_ctx_t ctx;
    if (!api__begin(req, true, &ctx))
        return;
    api_page_t pg;
    const char *campaign_id = http_query_arg(req, "campaign_id");
    if (!api__parse_page(req, &pg))
        goto done;
    if (campaign_id && !cd_is_uuid(campaign_id)) {
        api__reply_invalid(req, "invalid_parameter", "campaign_id", "campaign_id must be a UUID");
        goto done;
    }
    char limit[24], offset[32];
    api__page_params(&pg, limit, offset);
    const char *p[3] = {campaign_id, limit, offset};
    db_stmt_t st = {LIST_SQL, 3, p};
    PGresult *res = NULL;
    if (!api__run(req, &ctx, &st, 1, &res))
        goto done;
    char extra[64] = "";
    if (campaign_id)
        snprintf(extra, sizeof(extra), "&campaign_id=%s", campaign_id);
    api__reply_page(req, res, "/api/reports", extra, &pg);
    PQclear(res);
done:
    api__end(&ctx);
}

static const char GET_SQL[] = "select to_json(r)::text, coalesce(r.data ->> 'name', r.report_type),"
                              "  r.report_type, to_char(r.generated_at at time zone 'UTC', "
                              "'YYYY-MM-DD') from public.reports r where r.id = $1::uuid";

void api__reports_get(http_request_t *req)
{
    api__reply_by_id(req, GET_SQL, "report");
}

/* --------------------------------------------------------------- export */

/* The CSV columns: the first five describe the row, the rest are keys of
 * the report's metric objects (totals and daily rows). */
static const char *const csv_head[] = {"report_id", "report_name", "campaign_id", "campaign_name",
                                       "date"};
static const char *const csv_metrics[] = {
    "messages",    "sent",    "delivered",     "failed",        "bounced",
    "opened",      "clicked", "unique_opens",  "unique_clicks", "clicked_messages",
    "segments",    "cost",    "delivery_rate", "open_rate",     "click_rate",
    "bounce_rate", "unknown", "unsubscribed",
};

/* One row per day of the stored report, then a row "total". Built once from
 * csv_metrics so the header and the columns cannot drift apart. */
static char csv_sql[4096];
static bool csv_sql_ok;
static pthread_once_t csv_sql_once = PTHREAD_ONCE_INIT;

static void build_csv_sql(void)
{
    cd_buf_t b;
    cd_buf_init(&b, sizeof(csv_sql) - 1);
    bool ok = cd_buf_adds(&b, "select r.id::text, r.data ->> 'name', r.campaign_id::text,"
                              " r.data #>> '{campaign,name}', x.label");
    for (size_t i = 0; ok && i < CD_ARRAY_LEN(csv_metrics); i++)
        ok = cd_buf_printf(&b, ", x.m ->> '%s'", csv_metrics[i]);
    ok = ok && cd_buf_adds(&b, " from public.reports r cross join lateral ("
                               "  select e.value ->> 'date' as label, e.value as m, e.ord"
                               "  from jsonb_array_elements(case when jsonb_typeof(r.data -> "
                               "'daily') = 'array' then r.data -> 'daily' else '[]'::jsonb end)"
                               "    with ordinality as e(value, ord)"
                               "  union all"
                               "  select 'total', r.data -> 'totals', 9223372036854775807) x"
                               " where r.id = $1::uuid order by x.ord");
    if (ok)
        snprintf(csv_sql, sizeof(csv_sql), "%s", cd_buf_str(&b));
    csv_sql_ok = ok;
    cd_buf_free(&b);
}

static bool write_csv(const PGresult *rows, cd_buf_t *out)
{
    bool ok = true;
    for (size_t i = 0; ok && i < CD_ARRAY_LEN(csv_head); i++)
        ok = (i == 0 || cd_buf_add(out, ",", 1)) &&
             api__csv_append_field(out, csv_head[i], strlen(csv_head[i]));
    for (size_t i = 0; ok && i < CD_ARRAY_LEN(csv_metrics); i++)
        ok = cd_buf_add(out, ",", 1) &&
             api__csv_append_field(out, csv_metrics[i], strlen(csv_metrics[i]));
    ok = ok && cd_buf_add(out, "\r\n", 2);
    int nf = PQnfields(rows);
    for (int r = 0; ok && r < PQntuples(rows); r++) {
        for (int f = 0; ok && f < nf; f++)
            ok = (f == 0 || cd_buf_add(out, ",", 1)) &&
                 api__csv_append_field(out, PQgetisnull(rows, r, f) ? NULL : PQgetvalue(rows, r, f),
                                       (size_t)PQgetlength(rows, r, f));
        ok = ok && cd_buf_add(out, "\r\n", 2);
    }
    return ok;
}

void api__report_disposition(http_request_t *req, const char *name, const char *day,
                             const char *ext)
{
    char file[API_FILENAME_MAX], prefix[32], header[API_FILENAME_MAX + 40];
    snprintf(prefix, sizeof(prefix), "report-%.10s", day);
    api__safe_filename(prefix, name, ext, file, sizeof(file));
    snprintf(header, sizeof(header), "attachment; filename=\"%s\"", file);
    http_add_header(req, "Content-Disposition", header);
    http_add_header(req, "Cache-Control", "no-store");
}

/* POST .../export: the export is saved, as the caller (so storage RLS
 * applies: a user writes under their own folder), into the private "exports"
 * bucket at <user id>/reports/<report id>.<ext>, and the answer is a signed
 * download URL instead of the file. */
#define API_EXPORT_URL_SECONDS 3600

void api__report_save_export(http_request_t *req, const api_ctx_t *ctx, const char *ext,
                             const char *content_type, const char *data, size_t len)
{
    const char *uid = ctx->caller.user_id[0] ? ctx->caller.user_id : "service";
    char name[160], url[2048];
    snprintf(name, sizeof(name), "%s/reports/%s.%s", uid, req->params[0], ext);
    storage_status_t st = storage_put_bytes(req->ctx, &ctx->who, ctx->caller.user_id, "exports",
                                            name, content_type, data, len, true, NULL);
    if (st == STORAGE_ERR_UNAVAILABLE) {
        http_reply_unavailable(req, db_retry_after());
        return;
    }
    if (st == STORAGE_ERR_DENIED) {
        api__reply_error(req, 403, "42501", "you may not save exports", NULL,
                         "Exports are saved under your own folder of the exports bucket.");
        return;
    }
    if (st != STORAGE_OK) {
        api__reply_error(req, 500, "export_not_saved", storage_status_message(st), NULL, NULL);
        return;
    }
    if (!storage_signed_url(req->ctx, "exports", name, API_EXPORT_URL_SECONDS, true, url,
                            sizeof(url))) {
        api__reply_error(req, 500, "internal_error", "could not sign the download URL", NULL, NULL);
        return;
    }
    http_reply_json(req, 201,
                    json_pack("{s:s, s:s, s:s, s:i}", "bucket", "exports", "path", name,
                              "signedURL", url, "expires_in", API_EXPORT_URL_SECONDS));
}

void api__reports_export(http_request_t *req)
{
    api_ctx_t ctx;
    bool save = strcmp(req->method, "POST") == 0;
    const char *format = http_query_arg(req, "format");
    if (format && strcmp(format, "pdf") == 0) {
        api__reports_export_pdf(req, save); /* reports_pdf.c */
        return;
    }
    /* read-write: the export is recorded in the audit log (action export) */
    if (!api__begin(req, false, &ctx))
        return;
    PGresult *res[4] = {NULL, NULL, NULL, NULL};
    cd_buf_t out;
    cd_buf_init(&out, API_EXPORT_MAX_BYTES);
    if (!api__path_id(req, "report"))
        goto done;
    if (!format)
        format = "csv";
    bool csv = strcmp(format, "csv") == 0;
    if (!csv && strcmp(format, "json") != 0) {
        api__reply_invalid(req, "invalid_parameter", "format", "format must be csv, json or pdf");
        goto done;
    }
    pthread_once(&csv_sql_once, build_csv_sql);
    if (csv && !csv_sql_ok) {
        api__reply_error(req, 500, "internal_error", "the CSV export query does not fit", NULL,
                         NULL);
        goto done;
    }
    const char *p[1] = {req->params[0]};
    const char *pa[2] = {req->params[0], csv ? "csv" : "json"};
    db_stmt_t st[4] = {{GET_SQL, 1, p},
                       {"select public.audit_report_export($1::uuid, $2::text)", 2, pa},
                       {csv_sql, 1, p},
                       {api__flat_csv_sql(), 1, p}};
    if (!api__run(req, &ctx, st, csv ? 4 : 2, res))
        goto done;
    if (PQntuples(res[0]) != 1) {
        api__reply_not_found(req, "report");
        goto done;
    }
    const char *name = PQgetvalue(res[0], 0, 1);
    const char *day = PQgetvalue(res[0], 0, 3);
    if (!csv) {
        if (save) {
            api__report_save_export(req, &ctx, "json", "application/json", PQgetvalue(res[0], 0, 0),
                                    (size_t)PQgetlength(res[0], 0, 0));
            goto done;
        }
        api__report_disposition(req, name, day, "json");
        api__reply_cell(req, 200, res[0], 0, 0);
        goto done;
    }
    bool campaign = strcmp(PQgetvalue(res[0], 0, 2), REPORT_TYPE) == 0;
    if (!campaign && PQntuples(res[3]) != 1) {
        api__reply_error(req, 422, "unsupported_report_type",
                         "this report has no CSV form (no columns and rows)", "field: format",
                         "Use format=json.");
        goto done;
    }
    bool written =
        campaign ? PQnfields(res[2]) == (int)(CD_ARRAY_LEN(csv_head) + CD_ARRAY_LEN(csv_metrics)) &&
                       write_csv(res[2], &out)
                 : api__csv_write_flat(PQgetvalue(res[3], 0, 0), PQgetvalue(res[3], 0, 1), &out);
    if (!written) {
        log_error("report %s: CSV export larger than %d bytes", req->params[0],
                  API_EXPORT_MAX_BYTES);
        api__reply_error(req, 500, "export_too_large", "the report is too large to export", NULL,
                         NULL);
        goto done;
    }
    if (save) {
        api__report_save_export(req, &ctx, "csv", "text/csv; charset=utf-8", cd_buf_str(&out),
                                out.len);
        goto done;
    }
    api__report_disposition(req, name, day, "csv");
    size_t len = out.len;
    char *text = cd_buf_take(&out);
    if (!text) {
        api__reply_error(req, 500, "internal_error", "out of memory", NULL, NULL);
        goto done;
    }
    http_reply_take(req, 200, "text/csv; charset=utf-8; header=present", text, len);
done:
    cd_buf_free(&out);
    PQclear(res[0]);
    PQclear(res[1]);
    PQclear(res[2]);
    PQclear(res[3]);
    api__end(&ctx);
}
