-- 026_sending_base.sql: the schema the sending work shares (issue 12).
--
-- The delivery engine (src/sending/), the provider webhooks and the segment
-- compiler are built on these tables, so they land first and alone:
--   * public.audience_segments: the seed's Visual Builder table (its module
--     010), brought forward because a campaign now targets a segment. The rules
--     format, its validation and the compiler are in 030_visual_builders.sql.
--   * campaigns.template_id / segment_id / subject / from_name / from_email /
--     sms_sender: what a campaign says and who it goes to. A campaign may name
--     only a template and a segment of its own owner.
--   * public.suppressions: addresses nothing is ever sent to again (hard
--     bounce, complaint, unsubscribe, manual). Instance-wide: a marketing team's
--     instance sends as one organisation, so an address that bounced or
--     complained is suppressed for every user of the instance.
--   * message statuses 'sending' (e-mail) and 'unknown' (both): a message the
--     engine handed to a provider and then lost track of (the process died
--     mid-conversation) is 'unknown' - never resent silently.
--   * one message per campaign and recipient, and statuses that only move
--     forward (a late 'sent' never overwrites 'delivered'; opened_at,
--     clicked_at, sent_at, delivered_at are set once).
-- Applied once, inside one transaction, by the database owner.

-- ---------------------------------------------------------------------------
-- audience_segments
-- ---------------------------------------------------------------------------

create table public.audience_segments (
    id uuid primary key default gen_random_uuid(),
    user_id uuid default auth.uid() references auth.users (id) on delete cascade,
    name varchar(255) not null
        constraint audience_segments_name_not_blank check (btrim(name) <> ''),
    description text,
    rules jsonb not null default '{"all": []}'::jsonb,
    is_dynamic boolean not null default true,
    estimated_size integer,
    last_calculated_at timestamptz,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
comment on table public.audience_segments is
    'Dynamic audiences: rules over the owner''s contacts (format: docs/segments.md). Owner writes; admins manage; viewers read.';
comment on column public.audience_segments.estimated_size is
    'Set by calculate_segment_size(); not writable through the API.';

create index idx_audience_segments_user on public.audience_segments (user_id, created_at desc);

create trigger set_updated_at before update on public.audience_segments
    for each row execute function public.set_updated_at();
create trigger audit after insert or update or delete on public.audience_segments
    for each row execute function public.audit_trigger();

alter table public.audience_segments enable row level security;

revoke all on public.audience_segments from public, anon, authenticated;
grant select, delete on public.audience_segments to authenticated;
grant insert (id, user_id, name, description, rules, is_dynamic) on public.audience_segments to authenticated;
grant update (user_id, name, description, rules, is_dynamic) on public.audience_segments to authenticated;
grant all on public.audience_segments to service_role;

select public.apply_owner_role_policies('public.audience_segments', 'user_id = (select auth.uid())', true);

-- ---------------------------------------------------------------------------
-- campaigns: content, sender and audience
-- ---------------------------------------------------------------------------

alter table public.campaigns
    -- restrict, not set null: a scheduled campaign whose segment vanished must
    -- not silently widen to every contact.
    add column template_id uuid references public.templates (id) on delete restrict,
    add column segment_id uuid references public.audience_segments (id) on delete restrict,
    add column subject varchar(998)
        constraint campaigns_subject_one_line check (subject !~ '[\r\n]'),
    add column from_name varchar(255)
        constraint campaigns_from_name_one_line check (from_name !~ '[\r\n]'),
    add column from_email varchar(255)
        constraint campaigns_from_email_valid
        check (from_email = lower(from_email) and from_email ~ '^[^@[:space:]<>",]+@[^@[:space:]<>",]+$'),
    -- an E.164 number or an alphanumeric sender ID (1-11 letters, digits, spaces)
    add column sms_sender varchar(20)
        constraint campaigns_sms_sender_valid
        check (sms_sender ~ '^\+[1-9][0-9]{1,14}$' or sms_sender ~ '^[A-Za-z0-9 ]{1,11}$');

comment on column public.campaigns.template_id is 'The template rendered for each recipient (same owner).';
comment on column public.campaigns.segment_id is
    'The audience; NULL = every live contact of the owner. Consent and suppressions are applied at send time.';

create index idx_campaigns_template on public.campaigns (template_id) where template_id is not null;
create index idx_campaigns_segment on public.campaigns (segment_id) where segment_id is not null;

create trigger normalize_from_email before insert or update of from_email on public.campaigns
    for each row execute function public.normalize_email('from_email');

-- A campaign names only its owner's template and segment. SECURITY DEFINER:
-- the check reads the referenced row whatever the caller may see (a user who
-- guesses another user's segment id learns nothing but this error).
create function public.campaigns_check_references()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
    if new.template_id is not null
       and (tg_op = 'INSERT' or new.template_id is distinct from old.template_id
            or new.user_id is distinct from old.user_id)
       and not exists (select 1 from public.templates t
                       where t.id = new.template_id and t.user_id is not distinct from new.user_id
                         and t.deleted_at is null) then
        raise exception 'template % is not a live template of the campaign''s owner', new.template_id
            using errcode = '23503', hint = 'pick one of your own templates';
    end if;
    if new.segment_id is not null
       and (tg_op = 'INSERT' or new.segment_id is distinct from old.segment_id
            or new.user_id is distinct from old.user_id)
       and not exists (select 1 from public.audience_segments s
                       where s.id = new.segment_id and s.user_id is not distinct from new.user_id) then
        raise exception 'segment % is not a segment of the campaign''s owner', new.segment_id
            using errcode = '23503', hint = 'pick one of your own segments';
    end if;
    return new;
end
$$;

revoke all on function public.campaigns_check_references() from public, anon, authenticated;

create trigger check_references before insert or update on public.campaigns
    for each row execute function public.campaigns_check_references();

grant insert (template_id, segment_id, subject, from_name, from_email, sms_sender)
    on public.campaigns to authenticated;
grant update (template_id, segment_id, subject, from_name, from_email, sms_sender)
    on public.campaigns to authenticated;

-- ---------------------------------------------------------------------------
-- suppressions
-- ---------------------------------------------------------------------------

create table public.suppressions (
    id uuid primary key default gen_random_uuid(),
    channel varchar(10) not null
        constraint suppressions_channel_valid check (channel in ('email', 'sms')),
    address varchar(255) not null,
    reason varchar(30) not null
        constraint suppressions_reason_valid
        check (reason in ('hard_bounce', 'complaint', 'unsubscribe', 'manual', 'invalid')),
    detail text,
    campaign_id uuid references public.campaigns (id) on delete set null,
    created_at timestamptz not null default now(),
    constraint suppressions_address_valid check (
        (channel = 'email' and address = lower(address) and address ~ '^[^@[:space:]]+@[^@[:space:]]+$')
        or (channel = 'sms' and address ~ '^\+[1-9][0-9]{1,14}$')),
    constraint suppressions_one_per_address unique (channel, address)
);
comment on table public.suppressions is
    'Addresses never sent to again, instance-wide. Written by the server and admins; users read those of their own contacts.';

create index idx_suppressions_created_at on public.suppressions (created_at desc);

create trigger audit after insert or update or delete on public.suppressions
    for each row execute function public.audit_trigger();

alter table public.suppressions enable row level security;

revoke all on public.suppressions from public, anon, authenticated;
grant select on public.suppressions to authenticated;
grant insert (channel, address, reason, detail), delete on public.suppressions to authenticated;
grant all on public.suppressions to service_role;

create policy suppressions_select_admin on public.suppressions for select to app_admin using (true);
create policy suppressions_insert_admin on public.suppressions for insert to app_admin
    with check (reason in ('manual', 'invalid'));
create policy suppressions_delete_admin on public.suppressions for delete to app_admin using (true);
create policy suppressions_select_user on public.suppressions for select to app_user
    using (exists (select 1 from public.contacts c
                   where c.user_id = (select auth.uid())
                     and ((suppressions.channel = 'email' and c.email = suppressions.address)
                          or (suppressions.channel = 'sms' and c.phone = suppressions.address))));

-- Adds (or keeps) a suppression; the first reason stays. For the server's
-- delivery work and webhooks (service_role).
create function public.suppress(p_channel text, p_address text, p_reason text,
                                p_detail text default null, p_campaign_id uuid default null)
returns void
language sql
security definer
set search_path = ''
as $$
    insert into public.suppressions (channel, address, reason, detail, campaign_id)
    values (p_channel,
            case p_channel when 'email' then lower(btrim(p_address)) else btrim(p_address) end,
            p_reason, p_detail, p_campaign_id)
    on conflict (channel, address) do nothing
$$;

create function public.is_suppressed(p_channel text, p_address text)
returns boolean
language sql stable
security definer
set search_path = ''
as $$
    select exists (select 1 from public.suppressions s
                   where s.channel = p_channel
                     and s.address = case p_channel when 'email' then lower(btrim(p_address))
                                                    else btrim(p_address) end)
$$;

revoke all on function public.suppress(text, text, text, text, uuid),
                       public.is_suppressed(text, text) from public, anon, authenticated;
grant execute on function public.suppress(text, text, text, text, uuid),
                          public.is_suppressed(text, text) to service_role;

-- ---------------------------------------------------------------------------
-- messages: statuses, one per campaign and recipient, forward only
-- ---------------------------------------------------------------------------

alter table public.email_messages drop constraint email_messages_status_valid;
alter table public.email_messages add constraint email_messages_status_valid check (status in (
    'queued', 'sending', 'unknown', 'sent', 'deferred', 'delivered', 'bounced', 'dropped',
    'opened', 'clicked', 'failed', 'spam_reported', 'unsubscribed'));
alter table public.sms_messages drop constraint sms_messages_status_valid;
alter table public.sms_messages add constraint sms_messages_status_valid check (status in (
    'accepted', 'scheduled', 'queued', 'sending', 'unknown', 'sent', 'delivered',
    'undelivered', 'failed', 'canceled', 'read'));

create unique index email_messages_one_per_recipient
    on public.email_messages (campaign_id, recipient) where campaign_id is not null;
create unique index sms_messages_one_per_recipient
    on public.sms_messages (campaign_id, recipient) where campaign_id is not null;

-- The order statuses move in. Equal ranks may replace each other (sent and
-- deferred; delivered then an asynchronous bounce), lower ranks never do.
create function public.message_status_rank(p_channel text, p_status text)
returns integer
language sql immutable
set search_path = ''
as $$
    select case p_channel
        when 'email' then case p_status
            when 'queued' then 0 when 'sending' then 1 when 'unknown' then 2
            when 'sent' then 3 when 'deferred' then 3
            when 'delivered' then 4 when 'bounced' then 4 when 'dropped' then 4 when 'failed' then 4
            when 'opened' then 5 when 'clicked' then 6
            when 'spam_reported' then 7 when 'unsubscribed' then 7 end
        else case p_status
            when 'accepted' then 0 when 'scheduled' then 0 when 'queued' then 0
            when 'sending' then 1 when 'unknown' then 2 when 'sent' then 3
            when 'delivered' then 4 when 'undelivered' then 4 when 'failed' then 4
            when 'canceled' then 4 when 'read' then 5 end
    end
$$;

grant execute on function public.message_status_rank(text, text) to anon, authenticated, service_role;

-- BEFORE UPDATE on both message tables: a status change to a lower rank is
-- ignored (the row keeps its status; the other columns of the update apply),
-- and a milestone time once set stays. Ignored, not refused: provider
-- callbacks arrive out of order and must be accepted idempotently.
create function public.messages_forward_only()
returns trigger
language plpgsql
set search_path = ''
as $$
declare
    v_channel text := case tg_table_name when 'email_messages' then 'email' else 'sms' end;
    v_old integer := public.message_status_rank(v_channel, old.status);
    v_new integer := public.message_status_rank(v_channel, new.status);
begin
    if new.status is distinct from old.status then
        if v_new < v_old
           or (v_new = v_old and v_old = 4 and not (v_channel = 'email' and old.status = 'delivered'
                                                  and new.status = 'bounced')) then
            new.status := old.status;
        end if;
    end if;
    new.sent_at := coalesce(old.sent_at, new.sent_at);
    new.delivered_at := coalesce(old.delivered_at, new.delivered_at);
    if v_channel = 'email' then
        new.opened_at := coalesce(old.opened_at, new.opened_at);
        new.clicked_at := coalesce(old.clicked_at, new.clicked_at);
        new.bounced_at := coalesce(old.bounced_at, new.bounced_at);
    else
        new.failed_at := coalesce(old.failed_at, new.failed_at);
    end if;
    return new;
end
$$;

revoke all on function public.messages_forward_only() from public, anon, authenticated;

create trigger forward_only before update on public.email_messages
    for each row execute function public.messages_forward_only();
create trigger forward_only before update on public.sms_messages
    for each row execute function public.messages_forward_only();
