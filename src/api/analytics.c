/*
 * /api/analytics: the caller's analytics metrics (RLS: users see their own
 * rows, admins and viewers all rows) aggregated into totals and a series per
 * day, week or month, and the creation of one metric record. Days are
 * calendar days; "today" is taken in the application's time zone
 * (app_settings_public.timezone). PostgreSQL computes the whole answer as
 * JSON in one statement.
 */
#include <stdio.h>
#include <string.h>

#include "api/api_internal.h"

#define STR_(x)     #x
#define STR(x)      STR_(x)
#define MAX_PERIODS STR(API_MAX_PERIODS)
#define MAX_METRICS STR(API_MAX_METRICS)

/* $1 metric (NULL = all), $2 from, $3 to (NULL = defaults), $4 interval.
 * Returns one row: a problem ("range_reversed", "too_many_periods" or NULL)
 * and the answer as JSON. At most API_MAX_METRICS metrics (by name) get
 * totals and a series; "truncated" says when there were more. Each series
 * has every period from the one holding `from` to the one holding `to`. */
static const char GET_SQL[] =
    "with tz as materialized ("
    "  select coalesce((select s.timezone from public.app_settings_public s limit 1), 'UTC')"
    "    as name), "
    "b0 as materialized ("
    "  select coalesce($3::date, (now() at time zone (select name from tz))::date) as to_d), "
    "b as materialized ("
    "  select coalesce($2::date, case $4::text"
    "           when 'day' then b0.to_d - 29"
    "           when 'week' then (date_trunc('week', b0.to_d::timestamp) - interval '11 "
    "weeks')::date"
    "           else (date_trunc('month', b0.to_d::timestamp) - interval '11 months')::date end)"
    "         as from_d, b0.to_d"
    "  from b0), "
    "periods as materialized ("
    "  select g::date as period from b,"
    "    generate_series(date_trunc($4::text, b.from_d::timestamp),"
    "                    date_trunc($4::text, b.to_d::timestamp), ('1 ' || $4::text)::interval) g"
    "  limit " MAX_PERIODS " + 1), "
    "r as materialized ("
    "  select a.metric_type::text as metric, a.value,"
    "         date_trunc($4::text, a.date::timestamp)::date as period"
    "  from public.analytics_data a, b"
    "  where a.date between b.from_d and b.to_d and ($1::text is null or a.metric_type = "
    "$1::text)), "
    "m as materialized ("
    "  select d.metric, row_number() over (order by d.metric) as rn"
    "  from (select distinct r.metric from r) d), "
    "tot as ("
    "  select r.metric, count(*) as n, sum(r.value) as sum, trim_scale(round(avg(r.value), 6)) as "
    "avg,"
    "         min(r.value) as min, max(r.value) as max"
    "  from r join m on m.metric = r.metric and m.rn <= " MAX_METRICS " group by r.metric), "
    "ser as ("
    "  select m.metric, p.period, count(r.metric) as n, coalesce(sum(r.value), 0) as sum"
    "  from m cross join periods p"
    "  left join r on r.metric = m.metric and r.period = p.period"
    "  where m.rn <= " MAX_METRICS " group by m.metric, p.period) "
    "select case when b.from_d > b.to_d then 'range_reversed'"
    "            when (select count(*) from periods) > " MAX_PERIODS " then 'too_many_periods' end,"
    "  json_build_object("
    "    'metric', $1::text, 'interval', $4::text, 'from', b.from_d, 'to', b.to_d,"
    "    'timezone', (select name from tz),"
    "    'totals', coalesce((select json_object_agg(t.metric, json_build_object("
    "        'count', t.n, 'sum', t.sum, 'avg', t.avg, 'min', t.min, 'max', t.max)"
    "        order by t.metric) from tot t), '{}'),"
    "    'series', coalesce((select json_object_agg(x.metric, x.points order by x.metric) from ("
    "        select s.metric, json_agg(json_build_object('period', s.period, 'count', s.n,"
    "          'sum', s.sum) order by s.period) as points from ser s group by s.metric) x), '{}'),"
    "    'truncated', exists (select 1 from m where m.rn > " MAX_METRICS "))::text "
    "from b";

void api__analytics_get(http_request_t *req)
{
    api_ctx_t ctx;
    if (!api__begin(req, true, &ctx))
        return;
    const char *metric = http_query_arg(req, "metric");
    const char *from = http_query_arg(req, "from");
    const char *to = http_query_arg(req, "to");
    const char *interval = http_query_arg(req, "interval");
    int fy, fm, fd, ty, tm, td;
    if (metric && !api__valid_metric_name(metric)) {
        api__reply_invalid(req, "invalid_parameter", "metric",
                           "metric must be 1 to %d characters of letters, digits, '_', '.', ':' "
                           "or '-', starting with a letter or digit",
                           API_MAX_METRIC_CHARS);
        goto done;
    }
    if (from && !api__parse_date(from, &fy, &fm, &fd)) {
        api__reply_invalid(req, "invalid_parameter", "from", "from must be a date YYYY-MM-DD");
        goto done;
    }
    if (to && !api__parse_date(to, &ty, &tm, &td)) {
        api__reply_invalid(req, "invalid_parameter", "to", "to must be a date YYYY-MM-DD");
        goto done;
    }
    if (!interval)
        interval = "day";
    if (strcmp(interval, "day") && strcmp(interval, "week") && strcmp(interval, "month")) {
        api__reply_invalid(req, "invalid_parameter", "interval",
                           "interval must be day, week or month");
        goto done;
    }
    if (from && to && api__days_from_civil(fy, fm, fd) > api__days_from_civil(ty, tm, td)) {
        api__reply_invalid(req, "invalid_parameter", "from", "from (%s) is after to (%s)", from,
                           to);
        goto done;
    }
    const char *p[4] = {metric, from, to, interval};
    db_stmt_t st = {GET_SQL, 4, p};
    PGresult *res = NULL;
    if (!api__run(req, &ctx, &st, 1, &res))
        goto done;
    if (PQgetisnull(res, 0, 0)) {
        api__reply_cell(req, 200, res, 0, 1);
    } else if (strcmp(PQgetvalue(res, 0, 0), "range_reversed") == 0) {
        api__reply_invalid(req, "invalid_parameter", from ? "from" : "to",
                           "the range is empty: from is after to");
    } else {
        char msg[160];
        snprintf(msg, sizeof(msg), "the range holds more than %d periods of one %s",
                 API_MAX_PERIODS, interval);
        api__reply_error(req, 400, "invalid_parameter", msg, "field: from",
                         "Narrow from/to or use a longer interval.");
    }
    PQclear(res);
done:
    api__end(&ctx);
}

/* $1 the request body (validated): metric_type, value and date are read
 * from it as jsonb, so a decimal value reaches numeric exactly as sent. A
 * row is unique per (user, metric, day, dimensions) (018_domain_rules.sql):
 * posting the same metric and day again replaces the day's value. */
static const char CREATE_SQL[] =
    "insert into public.analytics_data as a (metric_type, value, date) "
    "select $1::jsonb ->> 'metric_type', ($1::jsonb ->> 'value')::numeric,"
    "  coalesce(($1::jsonb ->> 'date')::date,"
    "    (now() at time zone coalesce("
    "      (select s.timezone from public.app_settings_public s limit 1), 'UTC'))::date) "
    "on conflict (user_id, metric_type, date, dimensions) do update set value = excluded.value "
    "returning to_json(a)::text";

static const char *const analytics_keys[] = {"metric_type", "value", "date", NULL};

void api__analytics_create(http_request_t *req)
{
    api_ctx_t ctx;
    if (!api__begin(req, false, &ctx))
        return;
    json_t *body = api__read_body(req);
    if (!body || !api__check_keys(req, body, analytics_keys))
        goto done;
    json_t *metric = json_object_get(body, "metric_type");
    json_t *value = json_object_get(body, "value");
    json_t *date = json_object_get(body, "date");
    int y, m, d;
    if (!metric || json_is_null(metric)) {
        api__reply_invalid(req, "invalid_body", "metric_type", "metric_type is required");
        goto done;
    }
    if (!json_is_string(metric) || !api__valid_metric_name(json_string_value(metric)) ||
        json_string_length(metric) != strlen(json_string_value(metric))) {
        api__reply_invalid(req, "invalid_body", "metric_type",
                           "metric_type must be 1 to %d characters of letters, digits, '_', '.', "
                           "':' or '-', starting with a letter or digit",
                           API_MAX_METRIC_CHARS);
        goto done;
    }
    if (!value || json_is_null(value)) {
        api__reply_invalid(req, "invalid_body", "value", "value is required");
        goto done;
    }
    if (!json_is_number(value)) {
        api__reply_invalid(req, "invalid_body", "value", "value must be a number");
        goto done;
    }
    if (date && !json_is_null(date) &&
        (!json_is_string(date) || !api__parse_date(json_string_value(date), &y, &m, &d))) {
        api__reply_invalid(req, "invalid_body", "date", "date must be a date YYYY-MM-DD");
        goto done;
    }
    const char *p[1] = {cd_buf_str(&req->body)};
    db_stmt_t st = {CREATE_SQL, 1, p};
    PGresult *res = NULL;
    if (!api__run(req, &ctx, &st, 1, &res))
        goto done;
    api__reply_cell(req, 201, res, 0, 0);
    PQclear(res);
done:
    json_decref(body);
    api__end(&ctx);
}
