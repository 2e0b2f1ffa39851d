/*
 * Reports beyond one campaign (issue 12): period_summary (every channel per
 * day over a date range), channel_comparison (email vs SMS vs social over the
 * range) and audience (contacts added, opt-ins and opt-outs per channel,
 * bounces, per day). Each is one SQL statement run AS THE CALLER, so
 * row-level security decides which messages, contacts and consent rows count
 * (a user's own, everything for an admin); the result is then stored as
 * service_role with the caller's claims (API roles may not insert reports,
 * migration 018), in a second transaction, with the numbers the server
 * computed — a caller never supplies them. Days are days of the application's
 * time zone (app_settings.timezone). Social figures come from analytics_data
 * (metric types social_impressions, social_clicks, social_engagements) until
 * a social module stores posts. The stored data is
 * {name, period, columns, rows, totals}: rows and totals are flat objects
 * keyed by columns, which is also the CSV export's shape (reports.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "api/api_internal.h"
#include "core/log.h"

/* The application's zone, the window [t0, t1) of the range $1..$2 in it. */
#define TZ_WIN_SQL                                                                                 \
    "with tz as materialized ("                                                                    \
    "  select coalesce((select s.timezone from public.app_settings_public s limit 1), 'UTC')"      \
    "    as name), "                                                                               \
    "win as materialized ("                                                                        \
    "  select ($1::date)::timestamp at time zone tz.name as t0,"                                   \
    "         ($2::date + 1)::timestamp at time zone tz.name as t1 from tz), "                     \
    "days as materialized ("                                                                       \
    "  select d::date as day from generate_series($1::date, $2::date, interval '1 day') d), "

/* Every message and social metric of the range, one row each, as numbers to
 * add up per channel and day (the definitions of docs/api.md's campaign
 * report: sent, delivered, ... by status). */
#define CHANNEL_ROWS_SQL                                                                           \
    "x as materialized ("                                                                          \
    "  select 'email'::text as channel,"                                                           \
    "    (coalesce(m.sent_at, m.created_at) at time zone (select name from tz))::date as day,"     \
    "    1 as messages,"                                                                           \
    "    (m.status in ('sent', 'deferred', 'delivered', 'bounced', 'opened', 'clicked',"           \
    "                  'spam_reported', 'unsubscribed'))::int as sent,"                            \
    "    (m.status in ('delivered', 'opened', 'clicked', 'spam_reported', 'unsubscribed'))::int"   \
    "      as delivered,"                                                                          \
    "    (m.status in ('failed', 'dropped'))::int as failed,"                                      \
    "    (m.status = 'bounced')::int as bounced,"                                                  \
    "    (m.status in ('opened', 'clicked') or m.opened_at is not null"                            \
    "     or m.clicked_at is not null)::int as opened,"                                            \
    "    (m.status = 'clicked' or m.clicked_at is not null or exists ("                            \
    "       select 1 from public.email_clicks k where k.message_id = m.id))::int::numeric"         \
    "      as clicked,"                                                                            \
    "    0 as segments, 0::numeric as cost, 0::numeric as impressions,"                            \
    "    0::numeric as engagements"                                                                \
    "  from public.email_messages m, win"                                                          \
    "  where coalesce(m.sent_at, m.created_at) >= win.t0"                                          \
    "    and coalesce(m.sent_at, m.created_at) < win.t1"                                           \
    "  union all"                                                                                  \
    "  select 'sms', (coalesce(s.sent_at, s.created_at) at time zone (select name from "           \
    "tz))::date,"                                                                                  \
    "    1, (s.status in ('sent', 'delivered', 'undelivered', 'read'))::int,"                      \
    "    (s.status in ('delivered', 'read'))::int, (s.status in ('failed', 'undelivered'))::int,"  \
    "    0, 0, 0, s.segments, abs(coalesce(s.cost, 0)), 0, 0"                                      \
    "  from public.sms_messages s, win"                                                            \
    "  where coalesce(s.sent_at, s.created_at) >= win.t0"                                          \
    "    and coalesce(s.sent_at, s.created_at) < win.t1"                                           \
    "  union all"                                                                                  \
    "  select 'social', a.date, 0, 0, 0, 0, 0, 0,"                                                 \
    "    case when a.metric_type = 'social_clicks' then coalesce(a.value, 0) else 0 end, 0, 0,"    \
    "    case when a.metric_type = 'social_impressions' then coalesce(a.value, 0) else 0 end,"     \
    "    case when a.metric_type = 'social_engagements' then coalesce(a.value, 0) else 0 end"      \
    "  from public.analytics_data a"                                                               \
    "  where a.date between $1::date and $2::date"                                                 \
    "    and a.metric_type in ('social_impressions', 'social_clicks', 'social_engagements')), "    \
    "chans as (select * from (values (1, 'email'), (2, 'sms'), (3, 'social')) c(ord, channel)), "

#define SUMS_SQL                                                                                   \
    "coalesce(sum(x.messages), 0) as messages, coalesce(sum(x.sent), 0) as sent,"                  \
    " coalesce(sum(x.delivered), 0) as delivered, coalesce(sum(x.failed), 0) as failed,"           \
    " coalesce(sum(x.bounced), 0) as bounced, coalesce(sum(x.opened), 0) as opened,"               \
    " coalesce(sum(x.clicked), 0) as clicked, coalesce(sum(x.segments), 0) as segments,"           \
    " coalesce(sum(x.cost), 0) as cost, coalesce(sum(x.impressions), 0) as impressions,"           \
    " coalesce(sum(x.engagements), 0) as engagements"

/* The caller's database role (app_admin, app_user, ...) and the report's
 * data: $1 from, $2 to, $3 name. */
static const char PERIOD_SUMMARY_SQL[] = TZ_WIN_SQL CHANNEL_ROWS_SQL
    "per_day as ("
    "  select d.day, c.ord, c.channel, " SUMS_SQL "  from days d cross join chans c"
    "  left join x on x.day = d.day and x.channel = c.channel"
    "  group by d.day, c.ord, c.channel), "
    "tot as ("
    "  select c.ord, c.channel, " SUMS_SQL
    "  from chans c left join x on x.channel = c.channel group by c.ord, c.channel) "
    "select current_user::text, jsonb_build_object("
    "  'name', $3::text,"
    "  'period', jsonb_build_object('from', $1::date, 'to', $2::date,"
    "                               'timezone', (select name from tz)),"
    "  'columns', jsonb_build_array('date', 'channel', 'messages', 'sent', 'delivered', 'failed',"
    "    'bounced', 'opened', 'clicked', 'segments', 'cost', 'impressions', 'engagements'),"
    "  'rows', coalesce((select jsonb_agg(jsonb_build_object('date', p.day) ||"
    "     (to_jsonb(p) - 'day' - 'ord') order by p.day, p.ord) from per_day p), '[]'::jsonb),"
    "  'totals', (select jsonb_agg(jsonb_build_object('date', 'total') ||"
    "     (to_jsonb(t) - 'ord') order by t.ord) from tot t))::text";

static const char CHANNEL_COMPARISON_SQL[] = TZ_WIN_SQL CHANNEL_ROWS_SQL
    "tot as ("
    "  select c.ord, c.channel, " SUMS_SQL
    "  from chans c left join x on x.channel = c.channel group by c.ord, c.channel), "
    "rated as ("
    "  select t.*,"
    "    round(100.0 * t.delivered / nullif(t.sent, 0), 2) as delivery_rate,"
    "    round(100.0 * t.opened / nullif(t.delivered, 0), 2) as open_rate,"
    "    round(100.0 * t.clicked / nullif(case when t.channel = 'social' then t.impressions"
    "                                         else t.delivered end, 0), 2) as click_rate,"
    "    round(t.cost / nullif(t.delivered, 0), 4) as cost_per_delivered,"
    "    round(100.0 * t.engagements / nullif(t.impressions, 0), 2) as engagement_rate"
    "  from tot t) "
    "select current_user::text, jsonb_build_object("
    "  'name', $3::text,"
    "  'period', jsonb_build_object('from', $1::date, 'to', $2::date,"
    "                               'timezone', (select name from tz)),"
    "  'columns', jsonb_build_array('channel', 'messages', 'sent', 'delivered', 'failed',"
    "    'bounced', 'opened', 'clicked', 'segments', 'cost', 'impressions', 'engagements',"
    "    'delivery_rate', 'open_rate', 'click_rate', 'cost_per_delivered', 'engagement_rate'),"
    "  'rows', (select jsonb_agg(to_jsonb(r) - 'ord' order by r.ord) from rated r),"
    "  'totals', '[]'::jsonb)::text";

/* Per day of the application's zone: a row's instant ts counts on day d. */
#define DAY_OF(ts) "((" ts ") at time zone (select name from tz))::date"

static const char AUDIENCE_SQL[] = TZ_WIN_SQL
    "ev as materialized ("
    "  select " DAY_OF(
        "c.created_at") " as day, 'contacts_added' as what"
                        "  from public.contacts c, win"
                        "  where c.deleted_at is null and c.created_at >= win.t0 and "
                        "c.created_at < win.t1"
                        "  union all"
                        "  select " DAY_OF(
                            "e.subscribed_at") ", 'email_opt_ins' from "
                                               "public.email_subscriptions e, win"
                                               "  where e.subscribed_at >= win.t0 and "
                                               "e.subscribed_at < win.t1"
                                               "  union all"
                                               "  select " DAY_OF(
                                                   "e.unsubscribed_at") ", "
                                                                        "'email_opt_"
                                                                        "outs'"
                                                                        "  from "
                                                                        "public.email_"
                                                                        "subscriptions "
                                                                        "e, win"
                                                                        "  where "
                                                                        "e.unsubscribed_"
                                                                        "at >= win.t0 "
                                                                        "and "
                                                                        "e.unsubscribed_"
                                                                        "at < win.t1"
                                                                        "  union all"
                                                                        "  "
                                                                        "select " DAY_OF(
                                                                            "s."
                                                                            "consented_"
                                                                            "at") ", "
                                                                                  "'sms_"
                                                                                  "opt_"
                                                                                  "ins' "
                                                                                  "from "
                                                                                  "publi"
                                                                                  "c."
                                                                                  "sms_"
                                                                                  "conse"
                                                                                  "nt "
                                                                                  "s, "
                                                                                  "win"
                                                                                  "  "
                                                                                  "where"
                                                                                  " s."
                                                                                  "conse"
                                                                                  "nted_"
                                                                                  "at "
                                                                                  ">= "
                                                                                  "win."
                                                                                  "t0 "
                                                                                  "and "
                                                                                  "s."
                                                                                  "conse"
                                                                                  "nted_"
                                                                                  "at < "
                                                                                  "win."
                                                                                  "t1"
                                                                                  "  "
                                                                                  "union"
                                                                                  " all"
                                                                                  "  "
                                                                                  "selec"
                                                                                  "t"
                                                                                  " " DAY_OF(
                                                                                      "s"
                                                                                      "."
                                                                                      "o"
                                                                                      "p"
                                                                                      "t"
                                                                                      "_"
                                                                                      "o"
                                                                                      "u"
                                                                                      "t"
                                                                                      "_"
                                                                                      "a"
                                                                                      "t") ", "
                                                                                           "'sms_"
                                                                                           "opt_"
                                                                                           "outs' "
                                                                                           "from "
                                                                                           "public."
                                                                                           "sms_"
                                                                                           "consent"
                                                                                           " s, win"
                                                                                           "  "
                                                                                           "where "
                                                                                           "s.opt_"
                                                                                           "out_at "
                                                                                           ">= "
                                                                                           "win.t0 "
                                                                                           "and "
                                                                                           "s.opt_"
                                                                                           "out_at "
                                                                                           "< "
                                                                                           "win.t1"
                                                                                           "  "
                                                                                           "union "
                                                                                           "all"
                                                                                           "  "
                                                                                           "select"
                                                                                           " " DAY_OF(
                                                                                               "coa"
                                                                                               "les"
                                                                                               "ce("
                                                                                               "m."
                                                                                               "bou"
                                                                                               "nce"
                                                                                               "d_"
                                                                                               "at,"
                                                                                               " m."
                                                                                               "sen"
                                                                                               "t_"
                                                                                               "at,"
                                                                                               " m."
                                                                                               "cre"
                                                                                               "ate"
                                                                                               "d_"
                                                                                               "at"
                                                                                               ")") ","
                                                                                                    "    case when m.bounce_type = 'hard' then 'hard_bounces' else 'soft_bounces' end"
                                                                                                    "  from public.email_messages m, win"
                                                                                                    "  where (m.status = 'bounced' or m.bounced_at is not null)"
                                                                                                    "    and coalesce(m.bounced_at, m.sent_at, m.created_at) >= win.t0"
                                                                                                    "    and coalesce(m.bounced_at, m.sent_at, m.created_at) < win.t1), "
                                                                                                    "per_day as ("
                                                                                                    "  select d.day as date,"
                                                                                                    "    count(ev.what) filter (where ev.what = 'contacts_added') as contacts_added,"
                                                                                                    "    count(ev.what) filter (where ev.what = 'email_opt_ins') as email_opt_ins,"
                                                                                                    "    count(ev.what) filter (where ev.what = 'email_opt_outs') as email_opt_outs,"
                                                                                                    "    count(ev.what) filter (where ev.what = 'sms_opt_ins') as sms_opt_ins,"
                                                                                                    "    count(ev.what) filter (where ev.what = 'sms_opt_outs') as sms_opt_outs,"
                                                                                                    "    count(ev.what) filter (where ev.what like '%bounces') as bounces,"
                                                                                                    "    count(ev.what) filter (where ev.what = 'hard_bounces') as hard_bounces"
                                                                                                    "  from days d left join ev on ev.day = d.day group by d.day) "
                                                                                                    "select current_user::text, jsonb_build_object("
                                                                                                    "  'name', $3::text,"
                                                                                                    "  'period', jsonb_build_object('from', $1::date, 'to', $2::date,"
                                                                                                    "                               'timezone', (select name from tz)),"
                                                                                                    "  'columns', jsonb_build_array('date', 'contacts_added', 'email_opt_ins', 'email_opt_outs',"
                                                                                                    "    'sms_opt_ins', 'sms_opt_outs', 'bounces', 'hard_bounces'),"
                                                                                                    "  'rows', coalesce((select jsonb_agg(to_jsonb(p) order by p.date) from per_day p),"
                                                                                                    "                   '[]'::jsonb),"
                                                                                                    "  'totals', (select jsonb_build_array(jsonb_build_object('date', 'total',"
                                                                                                    "    'contacts_added', sum(contacts_added), 'email_opt_ins', sum(email_opt_ins),"
                                                                                                    "    'email_opt_outs', sum(email_opt_outs), 'sms_opt_ins', sum(sms_opt_ins),"
                                                                                                    "    'sms_opt_outs', sum(sms_opt_outs), 'bounces', sum(bounces),"
                                                                                                    "    'hard_bounces', sum(hard_bounces))) from per_day))::text";

static const struct {
    const char *type;
    const char *sql;
    const char *title;
} report_types[] = {
    {"period_summary", PERIOD_SUMMARY_SQL, "Period summary"},
    {"channel_comparison", CHANNEL_COMPARISON_SQL, "Channel comparison"},
    {"audience", AUDIENCE_SQL, "Audience"},
};

const char *api_report_type_title(const char *type)
{
    for (size_t i = 0; type && i < CD_ARRAY_LEN(report_types); i++)
        if (strcmp(report_types[i].type, type) == 0)
            return report_types[i].title;
    return NULL;
}

static const char STORE_SQL[] =
    "insert into public.reports as r (report_type, data) values ($1, $2::jsonb)"
    " returning to_json(r)::text, r.id::text";

api_report_status_t api_report_generate(const db_caller_t *who, const char *type, const char *name,
                                        const char *from, const char *to, char **row_json,
                                        char **report_id, db_error_t *err)
{
    *row_json = NULL;
    if (report_id)
        *report_id = NULL;
    const char *sql = NULL;
    const char *title = api_report_type_title(type);
    for (size_t i = 0; i < CD_ARRAY_LEN(report_types); i++)
        if (strcmp(report_types[i].type, type) == 0)
            sql = report_types[i].sql;
    if (!sql || !title)
        return API_REPORT_BAD_TYPE;
    char label[API_MAX_REPORT_NAME_CHARS * 4 + 64];
    if (!name)
        snprintf(label, sizeof(label), "%s %s to %s", title, from, to);
    const char *p[3] = {from, to, name ? name : label};
    db_caller_t reader = *who;
    reader.read_only = true;
    PGresult *res = NULL;
    db_status_t st = db_run(&reader, &(db_stmt_t){sql, 3, p}, 1, &res, err);
    if (st == DB_SQL_ERROR && strcmp(err->sqlstate, "42501") == 0)
        return API_REPORT_DENIED; /* a banned caller runs as anon: no privilege at all */
    if (st != DB_OK)
        return st == DB_UNAVAILABLE ? API_REPORT_UNAVAILABLE : API_REPORT_DB_ERROR;
    const char *role = PQgetvalue(res, 0, 0);
    if (strcmp(role, "app_admin") != 0 && strcmp(role, "app_user") != 0) {
        PQclear(res);
        return API_REPORT_DENIED;
    }
    /* stored as service_role with the caller's claims: user_id is the caller */
    db_caller_t writer = *who;
    writer.role = "service_role";
    writer.read_only = false;
    const char *ps[2] = {type, PQgetvalue(res, 0, 1)};
    PGresult *out = NULL;
    st = db_run(&writer, &(db_stmt_t){STORE_SQL, 2, ps}, 1, &out, err);
    PQclear(res);
    if (st != DB_OK)
        return st == DB_UNAVAILABLE ? API_REPORT_UNAVAILABLE : API_REPORT_DB_ERROR;
    *row_json = strdup(PQgetvalue(out, 0, 0));
    if (report_id)
        *report_id = strdup(PQgetvalue(out, 0, 1));
    PQclear(out);
    if (!*row_json || (report_id && !*report_id)) {
        free(*row_json);
        *row_json = NULL;
        if (report_id) {
            free(*report_id);
            *report_id = NULL;
        }
        snprintf(err->message, sizeof(err->message), "out of memory");
        return API_REPORT_DB_ERROR;
    }
    return API_REPORT_OK;
}

/* The CSV of a flat report: the header (a JSON array of column names) and
 * every row and total as a JSON array of text cells (exact numbers as
 * PostgreSQL wrote them; null = empty), one statement. */
static const char FLAT_CSV_SQL[] =
    "select (select jsonb_agg(c) from jsonb_array_elements_text(r.data -> 'columns') c)::text,"
    "  coalesce((select jsonb_agg((select jsonb_agg(e.value ->> c.value order by c.ord)"
    "      from jsonb_array_elements_text(r.data -> 'columns') with ordinality c(value, ord))"
    "    order by e.ord)"
    "   from jsonb_array_elements(coalesce(r.data -> 'rows', '[]'::jsonb)"
    "                             || coalesce(r.data -> 'totals', '[]'::jsonb))"
    "     with ordinality e(value, ord)), '[]'::jsonb)::text"
    " from public.reports r"
    " where r.id = $1::uuid and jsonb_typeof(r.data -> 'columns') = 'array'"
    "   and jsonb_typeof(coalesce(r.data -> 'rows', '[]'::jsonb)) = 'array'"
    "   and jsonb_typeof(coalesce(r.data -> 'totals', '[]'::jsonb)) = 'array'";

const char *api__flat_csv_sql(void)
{
    return FLAT_CSV_SQL;
}

/* Appends one JSON array of strings (or nulls) as a CSV line. */
static bool csv_line(cd_buf_t *out, const json_t *cells)
{
    if (!json_is_array(cells))
        return false;
    bool ok = true;
    size_t i;
    json_t *c;
    json_array_foreach(cells, i, c)
    {
        if (!json_is_string(c) && !json_is_null(c))
            return false;
        ok = ok && (i == 0 || cd_buf_add(out, ",", 1)) &&
             api__csv_append_field(out, json_string_value(c), json_string_length(c));
    }
    return ok && cd_buf_add(out, "\r\n", 2);
}

bool api__csv_write_flat(const char *header_json, const char *rows_json, cd_buf_t *out)
{
    json_t *head = json_loads(header_json, 0, NULL);
    json_t *rows = json_loads(rows_json, 0, NULL);
    bool ok = json_is_array(head) && json_array_size(head) > 0 && json_is_array(rows) &&
              csv_line(out, head);
    size_t r;
    json_t *row;
    json_array_foreach(rows, r, row)
    {
        ok = ok && json_array_size(row) == json_array_size(head) && csv_line(out, row);
    }
    json_decref(head);
    json_decref(rows);
    return ok;
}

api_report_status_t api_report_csv(const db_caller_t *who, const char *report_id, cd_buf_t *out,
                                   db_error_t *err)
{
    const char *p[1] = {report_id};
    db_caller_t reader = *who;
    reader.read_only = true;
    PGresult *res = NULL;
    db_status_t st = db_run(&reader, &(db_stmt_t){FLAT_CSV_SQL, 1, p}, 1, &res, err);
    if (st != DB_OK)
        return st == DB_UNAVAILABLE ? API_REPORT_UNAVAILABLE : API_REPORT_DB_ERROR;
    api_report_status_t rc = API_REPORT_NOT_FOUND;
    if (PQntuples(res) == 1)
        rc = api__csv_write_flat(PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1), out)
                 ? API_REPORT_OK
                 : API_REPORT_TOO_LARGE;
    PQclear(res);
    return rc;
}
