/*
 * /api/campaigns: list (filters, pagination), create, read, update with
 * enforced status transitions, and soft delete. The transition table lives
 * here, in one place; the update statement receives, from this table, the
 * statuses a change may start from, so the check and the write happen in one
 * SQL statement under the caller's row-level security and no concurrent
 * change can slip between them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_internal.h"
#include "core/crypto.h"

/* ------------------------------------------------------- status machine */

/* Every status the schema allows (004_campaigns.sql). */
static const char *const campaign_statuses[] = {
    "draft", "scheduled", "active", "sending", "sent", "paused", "completed", "cancelled", "failed",
};

/* The changes the API allows: draft → scheduled; paused from scheduled or
 * sending and back to scheduled; cancelled from draft, scheduled, sending or
 * paused. sent and cancelled are final; sending, sent, active, completed and
 * failed are set by the delivery work (service_role), not through here. The
 * database enforces the same table for every API role
 * (public.campaign_api_transition_allowed, migrations/018_domain_rules.sql);
 * this copy only words the 409 before the statement runs. */
static const struct {
    const char *from;
    const char *to;
} campaign_transitions[] = {
    {"draft", "scheduled"},     {"draft", "cancelled"},  {"scheduled", "paused"},
    {"scheduled", "cancelled"}, {"sending", "paused"},   {"sending", "cancelled"},
    {"paused", "scheduled"},    {"paused", "cancelled"},
};

static const char *const campaign_types[] = {"email", "sms", "social"};

bool api__campaign_status_known(const char *s)
{
    for (size_t i = 0; s && i < CD_ARRAY_LEN(campaign_statuses); i++)
        if (strcmp(campaign_statuses[i], s) == 0)
            return true;
    return false;
}

bool api__campaign_type_valid(const char *s)
{
    for (size_t i = 0; s && i < CD_ARRAY_LEN(campaign_types); i++)
        if (strcmp(campaign_types[i], s) == 0)
            return true;
    return false;
}

bool api__campaign_transition_allowed(const char *from, const char *to)
{
    for (size_t i = 0; from && to && i < CD_ARRAY_LEN(campaign_transitions); i++)
        if (strcmp(campaign_transitions[i].from, from) == 0 &&
            strcmp(campaign_transitions[i].to, to) == 0)
            return true;
    return false;
}

/* Joins the from/to side of the transitions whose other side is `key`. */
static void join_matching(const char *key, bool by_from, const char *open, const char *sep,
                          const char *close, const char *empty, char *out, size_t outlen)
{
    size_t used = 0;
    int n = snprintf(out, outlen, "%s", open);
    if (n < 0 || (size_t)n >= outlen)
        return;
    used = (size_t)n;
    bool any = false;
    for (size_t i = 0; key && i < CD_ARRAY_LEN(campaign_transitions); i++) {
        const char *match = by_from ? campaign_transitions[i].from : campaign_transitions[i].to;
        const char *other = by_from ? campaign_transitions[i].to : campaign_transitions[i].from;
        if (strcmp(match, key) != 0)
            continue;
        n = snprintf(out + used, outlen - used, "%s%s", any ? sep : "", other);
        if (n < 0 || (size_t)n >= outlen - used)
            return;
        used += (size_t)n;
        any = true;
    }
    snprintf(out + used, outlen - used, "%s", any ? close : empty);
}

void api__campaign_allowed_targets(const char *from, char *out, size_t outlen)
{
    join_matching(from, true, "", ", ", "", "none", out, outlen);
}

void api__campaign_sources_literal(const char *to, char *out, size_t outlen)
{
    join_matching(to, false, "{", ",", "}", "}", out, outlen);
}

/* ------------------------------------------------------------- handlers */

static const char LIST_SQL[] =
    "with f as ("
    "  select c.* from public.campaigns c"
    "  where c.deleted_at is null"
    "    and ($1::text is null or c.status = $1::text)"
    "    and ($2::text is null or c.type = $2::text)) "
    "select (select count(*) from f)::text,"
    "  coalesce((select json_agg(p order by p.created_at desc, p.id desc) from ("
    "    select * from f order by created_at desc, id desc"
    "    limit $3::int offset $4::bigint) p), '[]')::text";

void api__campaigns_list(http_request_t *req)
{
    api_ctx_t ctx;
    if (!api__begin(req, true, &ctx))
        return;
    api_page_t pg;
    const char *status = http_query_arg(req, "status");
    const char *type = http_query_arg(req, "type");
    if (!api__parse_page(req, &pg))
        goto done;
    if (status && !api__campaign_status_known(status)) {
        api__reply_invalid(req, "invalid_parameter", "status",
                           "status must be one of draft, scheduled, active, sending, sent, "
                           "paused, completed, cancelled, failed");
        goto done;
    }
    if (type && !api__campaign_type_valid(type)) {
        api__reply_invalid(req, "invalid_parameter", "type", "type must be email, sms or social");
        goto done;
    }
    char limit[24], offset[32];
    api__page_params(&pg, limit, offset);
    const char *p[4] = {status, type, limit, offset};
    db_stmt_t st = {LIST_SQL, 4, p};
    PGresult *res = NULL;
    if (!api__run(req, &ctx, &st, 1, &res))
        goto done;
    char extra[96] = "";
    cd_buf_t q;
    cd_buf_init(&q, sizeof(extra) - 1);
    if ((!status || api__query_append(&q, "status", status)) &&
        (!type || api__query_append(&q, "type", type)))
        snprintf(extra, sizeof(extra), "%s", cd_buf_str(&q));
    cd_buf_free(&q);
    api__reply_page(req, res, "/api/campaigns", extra, &pg);
    PQclear(res);
done:
    api__end(&ctx);
}

/* The writable fields, checked; *_set say which were given. */
struct campaign_input {
    const char *name, *type, *status, *content, *scheduled_date;
    bool name_set, type_set, status_set, content_set, date_set;
};

static const char *const campaign_keys[] = {"name",   "type",           "content",
                                            "status", "scheduled_date", NULL};

static bool read_campaign(http_request_t *req, json_t *body, bool create, struct campaign_input *in)
{
    memset(in, 0, sizeof(*in));
    if (!api__check_keys(req, body, campaign_keys))
        return false;
    int req_flag = create ? API_TEXT_REQUIRED : 0;
    if (!api__body_text(req, body, "name", API_MAX_NAME_CHARS, req_flag | API_TEXT_NOT_BLANK,
                        &in->name, &in->name_set) ||
        !api__body_text(req, body, "type", 64, req_flag, &in->type, &in->type_set) ||
        !api__body_text(req, body, "status", 64, 0, &in->status, &in->status_set) ||
        !api__body_text(req, body, "content", API_MAX_CONTENT_BYTES,
                        API_TEXT_NULLABLE | API_TEXT_MULTILINE, &in->content, &in->content_set) ||
        !api__body_text(req, body, "scheduled_date", 64, API_TEXT_NULLABLE, &in->scheduled_date,
                        &in->date_set))
        return false;
    if (in->type && !api__campaign_type_valid(in->type)) {
        api__reply_invalid(req, "invalid_body", "type", "type must be email, sms or social");
        return false;
    }
    if (in->status && !api__campaign_status_known(in->status)) {
        api__reply_invalid(req, "invalid_body", "status",
                           "status must be one of draft, scheduled, active, sending, sent, "
                           "paused, completed, cancelled, failed");
        return false;
    }
    if (in->scheduled_date && !api__valid_timestamp(in->scheduled_date)) {
        api__reply_invalid(req, "invalid_body", "scheduled_date",
                           "scheduled_date must be an ISO 8601 timestamp with a time zone, e.g. "
                           "2030-01-31T09:00:00Z");
        return false;
    }
    if (!create && !in->name_set && !in->type_set && !in->status_set && !in->content_set &&
        !in->date_set) {
        api__reply_invalid(req, "invalid_body", "(body)",
                           "the body names no field to change; send any of name, type, content, "
                           "status, scheduled_date");
        return false;
    }
    return true;
}

static const char CREATE_SQL[] =
    "with chk as materialized ("
    "  select coalesce($4::text, 'draft') <> 'scheduled' or $5::timestamptz > now() as ok), "
    "ins as ("
    "  insert into public.campaigns as c (name, type, status, content, scheduled_date)"
    "  select $1::text, $2::text, coalesce($4::text, 'draft'), $3::text, $5::timestamptz"
    "  from chk where chk.ok"
    "  returning c.*) "
    "select chk.ok, (select to_json(i)::text from ins i) from chk";

void api__campaigns_create(http_request_t *req)
{
    api_ctx_t ctx;
    if (!api__begin(req, false, &ctx))
        return;
    json_t *body = api__read_body(req);
    struct campaign_input in;
    if (!body || !read_campaign(req, body, true, &in))
        goto done;
    if (in.status && strcmp(in.status, "draft") != 0 && strcmp(in.status, "scheduled") != 0) {
        api__reply_error(req, 422, "invalid_status", "a new campaign starts as draft or scheduled",
                         "field: status",
                         "Create it, then change its status with PUT /api/campaigns/:id.");
        goto done;
    }
    if (in.status && strcmp(in.status, "scheduled") == 0 && !in.scheduled_date) {
        api__reply_error(req, 422, "scheduled_date_required",
                         "scheduled_date is required when status is scheduled",
                         "field: scheduled_date", NULL);
        goto done;
    }
    const char *p[5] = {in.name, in.type, in.content, in.status, in.scheduled_date};
    db_stmt_t st = {CREATE_SQL, 5, p};
    PGresult *res = NULL;
    if (!api__run(req, &ctx, &st, 1, &res))
        goto done;
    if (strcmp(PQgetvalue(res, 0, 0), "t") != 0) {
        api__reply_error(req, 422, "scheduled_date_in_past", "scheduled_date must be in the future",
                         "field: scheduled_date", NULL);
    } else {
        api__reply_created(req, res, 1, "/api/campaigns");
    }
    PQclear(res);
done:
    json_decref(body);
    api__end(&ctx);
}

static const char GET_SQL[] = "select to_json(c)::text from public.campaigns c "
                              "where c.id = $1::uuid and c.deleted_at is null";

void api__campaigns_get(http_request_t *req)
{
    api__reply_by_id(req, GET_SQL, "campaign");
}

/* One statement: find the campaign (visible, then lockable = updatable under
 * RLS), judge the change against the current row, write it if it is allowed.
 * $1 id, $2 name, $3 type, $4 content given, $5 content, $6 date given,
 * $7 scheduled_date, $8 status, $9 the statuses $8 may be reached from.
 * Returns one row: visible count, current status (NULL when the caller may
 * not update the row), verdict, the updated row as JSON. The UPDATE also
 * requires the status it judged, so a concurrent change makes it a no-op. */
static const char UPDATE_SQL[] =
    "with vis as materialized ("
    "  select c.id from public.campaigns c where c.id = $1::uuid and c.deleted_at is null), "
    "cur as materialized ("
    "  select c.id, c.status, c.type,"
    "    case when $6::bool then $7::timestamptz else c.scheduled_date end as new_date"
    "  from public.campaigns c where c.id = $1::uuid and c.deleted_at is null"
    "  for update), "
    "v as materialized ("
    "  select cur.*, case"
    "    when $8::text is not null and $8::text <> cur.status"
    "         and not (cur.status = any ($9::text[])) then 'transition'"
    "    when $3::text is not null and $3::text <> cur.type and cur.status <> 'draft'"
    "         then 'type_locked'"
    "    when coalesce($8::text, cur.status) = 'scheduled' and cur.new_date is null"
    "         then 'date_required'"
    "    when coalesce($8::text, cur.status) = 'scheduled'"
    "         and ($8::text is distinct from cur.status or $6::bool)"
    "         and cur.new_date <= now() then 'date_past'"
    "    else 'ok' end as verdict"
    "  from cur), "
    "upd as ("
    "  update public.campaigns c set"
    "    name = coalesce($2::text, c.name),"
    "    type = coalesce($3::text, c.type),"
    "    content = case when $4::bool then $5::text else c.content end,"
    "    scheduled_date = v.new_date,"
    "    status = coalesce($8::text, c.status)"
    "  from v where c.id = v.id and v.verdict = 'ok' and c.status = v.status"
    "  returning c.*) "
    "select (select count(*) from vis)::int, v.status, v.verdict,"
    "  (select to_json(u)::text from upd u) "
    "from (select 1) one left join v on true";

static void reply_update_verdict(http_request_t *req, const char *current, const char *verdict,
                                 const struct campaign_input *in)
{
    char msg[160], details[200];
    if (strcmp(verdict, "transition") == 0) {
        char allowed[128];
        api__campaign_allowed_targets(current, allowed, sizeof(allowed));
        snprintf(msg, sizeof(msg), "cannot change status from %s to %s", current, in->status);
        snprintf(details, sizeof(details), "allowed from %s: %s", current, allowed);
        api__reply_error(req, 409, "invalid_transition", msg, details,
                         "draft -> scheduled; paused from scheduled or sending and back to "
                         "scheduled; cancelled from draft, scheduled, sending or paused. sending, "
                         "sent, active, completed and failed are set by the delivery work.");
    } else if (strcmp(verdict, "type_locked") == 0) {
        snprintf(details, sizeof(details), "current status: %s", current);
        api__reply_error(req, 409, "type_locked",
                         "the type of a campaign can change only while it is a draft", details,
                         NULL);
    } else if (strcmp(verdict, "date_required") == 0) {
        api__reply_error(req, 422, "scheduled_date_required",
                         "scheduled_date is required when status is scheduled",
                         "field: scheduled_date", NULL);
    } else if (strcmp(verdict, "date_past") == 0) {
        api__reply_error(req, 422, "scheduled_date_in_past", "scheduled_date must be in the future",
                         "field: scheduled_date",
                         "Send a new scheduled_date together with the status.");
    } else {
        api__reply_error(req, 409, "concurrent_update",
                         "the campaign changed while this request ran", NULL, "Read it and retry.");
    }
}

void api__campaigns_update(http_request_t *req)
{
    api_ctx_t ctx;
    if (!api__begin(req, false, &ctx))
        return;
    json_t *body = NULL;
    struct campaign_input in;
    if (!api__path_id(req, "campaign"))
        goto done;
    body = api__read_body(req);
    if (!body || !read_campaign(req, body, false, &in))
        goto done;
    char sources[160];
    api__campaign_sources_literal(in.status, sources, sizeof(sources));
    const char *p[9] = {req->params[0],
                        in.name,
                        in.type,
                        in.content_set ? "true" : "false",
                        in.content,
                        in.date_set ? "true" : "false",
                        in.scheduled_date,
                        in.status,
                        sources};
    db_stmt_t st = {UPDATE_SQL, 9, p};
    PGresult *res = NULL;
    if (!api__run(req, &ctx, &st, 1, &res))
        goto done;
    if (strcmp(PQgetvalue(res, 0, 0), "0") == 0) {
        api__reply_not_found(req, "campaign");
    } else if (PQgetisnull(res, 0, 1)) {
        api__reply_error(req, 403, "42501", "permission denied: you may not change this campaign",
                         NULL, "Only its owner (role user) and admins change a campaign.");
    } else if (strcmp(PQgetvalue(res, 0, 2), "ok") == 0 && !PQgetisnull(res, 0, 3)) {
        api__reply_cell(req, 200, res, 0, 3);
    } else {
        const char *verdict = PQgetvalue(res, 0, 2);
        reply_update_verdict(req, PQgetvalue(res, 0, 1),
                             strcmp(verdict, "ok") == 0 ? "concurrent" : verdict, &in);
    }
    PQclear(res);
done:
    json_decref(body);
    api__end(&ctx);
}

/* Soft delete through public.soft_delete_campaign() (deleted_at is not
 * writable by API roles; the function is the audited path): messages, reports
 * and audit stay. Returns the visible count and the deleted row (NULL when the
 * caller may not change the campaign: the function is called only for its
 * owner with role user and for admins, so a viewer gets 403, not its error). */
static const char DELETE_SQL[] =
    "with vis as materialized ("
    "  select c.id, c.user_id from public.campaigns c"
    "  where c.id = $1::uuid and c.deleted_at is null) "
    "select (select count(*) from vis)::int,"
    "  case when exists (select 1 from vis v where current_user = 'app_admin'"
    "                    or (current_user = 'app_user' and v.user_id = auth.uid()))"
    "  then (select to_json(d)::text from public.soft_delete_campaign($1::uuid) d"
    "        where d.id is not null) end";

void api__campaigns_delete(http_request_t *req)
{
    api_ctx_t ctx;
    if (!api__begin(req, false, &ctx))
        return;
    if (!api__path_id(req, "campaign"))
        goto done;
    const char *p[1] = {req->params[0]};
    db_stmt_t st = {DELETE_SQL, 1, p};
    PGresult *res = NULL;
    if (!api__run(req, &ctx, &st, 1, &res))
        goto done;
    if (strcmp(PQgetvalue(res, 0, 0), "0") == 0)
        api__reply_not_found(req, "campaign");
    else if (PQgetisnull(res, 0, 1))
        api__reply_error(req, 403, "42501", "permission denied: you may not delete this campaign",
                         NULL, "Only its owner (role user) and admins delete a campaign.");
    else
        api__reply_cell(req, 200, res, 0, 1);
    PQclear(res);
done:
    api__end(&ctx);
}
