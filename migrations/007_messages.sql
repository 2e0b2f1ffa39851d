-- 007_messages.sql: delivery history: SMS and e-mail messages, e-mail link clicks.
--
-- public.sms_messages / public.email_messages: one row per message sent (or
-- queued) to one recipient, updated by the delivery pipeline and provider
-- webhooks (Twilio / SendGrid statuses). public.email_clicks: one row per tracked
-- click. These rows are history: campaign_id references campaigns ON DELETE
-- RESTRICT (a campaign with history is soft-deleted, never hard-deleted), clicks
-- reference their message ON DELETE RESTRICT, and contact_id is ON DELETE SET NULL
-- (erasing a contact keeps the delivery record, whose recipient column remains).
--
-- Access (RLS, see docs/schema.md): these tables have no owner column; a user
-- reads the rows of campaigns they own (also soft-deleted ones); admins read all
-- and may DELETE (erasure requests; audited); nobody but service_role inserts or
-- updates them (they are facts reported by the server and the providers);
-- viewers and anon: no access.
-- Applied once, inside one transaction, by the database owner.

-- ---------------------------------------------------------------------------
-- sms_messages
-- ---------------------------------------------------------------------------

create table public.sms_messages (
    id uuid primary key default gen_random_uuid(),
    campaign_id uuid references public.campaigns (id) on delete restrict,
    contact_id uuid references public.contacts (id) on delete set null,
    recipient varchar(20) not null
        constraint sms_messages_recipient_e164 check (recipient ~ '^\+[1-9][0-9]{1,14}$'),
    message text not null,
    message_sid varchar(100) unique,            -- provider id (Twilio SID)
    status varchar(50) not null default 'queued'
        constraint sms_messages_status_valid check (status in (
            'accepted', 'scheduled', 'queued', 'sending', 'sent', 'delivered',
            'undelivered', 'failed', 'canceled', 'read')),
    error_code varchar(10),
    segments integer not null default 1
        constraint sms_messages_segments_positive check (segments >= 1),
    cost decimal(10, 4),                        -- provider price (Twilio reports it negative)
    sent_at timestamptz,
    delivered_at timestamptz,
    failed_at timestamptz,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
comment on table public.sms_messages is
    'SMS delivery history. Owners of the campaign read; admins read and delete; written by service_role only.';

create index idx_sms_messages_campaign on public.sms_messages (campaign_id);
create index idx_sms_messages_status on public.sms_messages (status);
create index idx_sms_messages_contact on public.sms_messages (contact_id);
create index idx_sms_messages_recipient on public.sms_messages (recipient);

create trigger set_updated_at before update on public.sms_messages
    for each row execute function public.set_updated_at();
create trigger audit after insert or update or delete on public.sms_messages
    for each row execute function public.audit_trigger();

alter table public.sms_messages enable row level security;

revoke all on public.sms_messages from public, anon, authenticated;
grant select, delete on public.sms_messages to authenticated;
grant all on public.sms_messages to service_role;

create policy sms_messages_select_own on public.sms_messages
    for select to authenticated
    using (exists (select 1 from public.campaigns c
                   where c.id = sms_messages.campaign_id and c.user_id = (select auth.uid())));
create policy sms_messages_select_admin on public.sms_messages
    for select to authenticated
    using ((select public.get_user_role()) = 'admin');
create policy sms_messages_delete_admin on public.sms_messages
    for delete to authenticated
    using ((select public.get_user_role()) = 'admin');

-- ---------------------------------------------------------------------------
-- email_messages
-- ---------------------------------------------------------------------------

create table public.email_messages (
    id uuid primary key default gen_random_uuid(),
    campaign_id uuid references public.campaigns (id) on delete restrict,
    contact_id uuid references public.contacts (id) on delete set null,
    recipient varchar(255) not null
        constraint email_messages_recipient_valid
        check (recipient = lower(recipient) and recipient ~ '^[^@[:space:]]+@[^@[:space:]]+$'),
    subject text,
    message_id varchar(255) unique,             -- provider / Message-ID header
    status varchar(50) not null default 'queued'
        constraint email_messages_status_valid check (status in (
            'queued', 'sent', 'deferred', 'delivered', 'bounced', 'dropped',
            'opened', 'clicked', 'failed', 'spam_reported', 'unsubscribed')),
    sent_at timestamptz,
    delivered_at timestamptz,
    opened_at timestamptz,
    clicked_at timestamptz,
    bounced_at timestamptz,
    bounce_type varchar(50)
        constraint email_messages_bounce_type_valid check (bounce_type in ('hard', 'soft')),
    bounce_reason text,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
comment on table public.email_messages is
    'E-mail delivery history. Owners of the campaign read; admins read and delete; written by service_role only.';

create index idx_email_messages_campaign on public.email_messages (campaign_id);
create index idx_email_messages_status on public.email_messages (status);
create index idx_email_messages_contact on public.email_messages (contact_id);
create index idx_email_messages_recipient on public.email_messages (recipient);

create trigger normalize_email before insert or update of recipient on public.email_messages
    for each row execute function public.normalize_email('recipient');
create trigger set_updated_at before update on public.email_messages
    for each row execute function public.set_updated_at();
create trigger audit after insert or update or delete on public.email_messages
    for each row execute function public.audit_trigger();

alter table public.email_messages enable row level security;

revoke all on public.email_messages from public, anon, authenticated;
grant select, delete on public.email_messages to authenticated;
grant all on public.email_messages to service_role;

create policy email_messages_select_own on public.email_messages
    for select to authenticated
    using (exists (select 1 from public.campaigns c
                   where c.id = email_messages.campaign_id and c.user_id = (select auth.uid())));
create policy email_messages_select_admin on public.email_messages
    for select to authenticated
    using ((select public.get_user_role()) = 'admin');
create policy email_messages_delete_admin on public.email_messages
    for delete to authenticated
    using ((select public.get_user_role()) = 'admin');

-- ---------------------------------------------------------------------------
-- email_clicks
-- ---------------------------------------------------------------------------

create table public.email_clicks (
    id uuid primary key default gen_random_uuid(),
    message_id uuid not null references public.email_messages (id) on delete restrict,
    url text not null
        constraint email_clicks_url_length check (length(url) between 1 and 8192),
    clicked_at timestamptz not null default now()
);
comment on table public.email_clicks is
    'Tracked e-mail link clicks. Owners of the campaign read; admins read and delete; written by service_role only.';

create index idx_email_clicks_message on public.email_clicks (message_id);
create index idx_email_clicks_clicked_at on public.email_clicks (clicked_at desc);

create trigger audit after insert or update or delete on public.email_clicks
    for each row execute function public.audit_trigger();

alter table public.email_clicks enable row level security;

revoke all on public.email_clicks from public, anon, authenticated;
grant select, delete on public.email_clicks to authenticated;
grant all on public.email_clicks to service_role;

create policy email_clicks_select_own on public.email_clicks
    for select to authenticated
    using (exists (select 1 from public.email_messages m
                   join public.campaigns c on c.id = m.campaign_id
                   where m.id = email_clicks.message_id and c.user_id = (select auth.uid())));
create policy email_clicks_select_admin on public.email_clicks
    for select to authenticated
    using ((select public.get_user_role()) = 'admin');
create policy email_clicks_delete_admin on public.email_clicks
    for delete to authenticated
    using ((select public.get_user_role()) = 'admin');
