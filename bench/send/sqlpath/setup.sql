-- bench/send/sqlpath/setup.sql: one SMS campaign of :n recipients (numbers
-- +1<:base + i>, with consent), started and materialised; :tz is an
-- application time zone where it is daytime now (quiet hours).
\set ON_ERROR_STOP 1
select tests.create_user('drv' || gen_random_uuid() || '@example.test', 'user') as uid \gset
update public.app_settings set timezone = :'tz', monthly_sms_limit = 100000000;
insert into public.contacts (user_id, phone, first_name)
  select :'uid', '+1' || (:base + g)::text, 'C' || g from generate_series(1, :n) g;
insert into public.sms_consent (phone_number, consent_given, consent_source)
  select '+1' || (:base + g)::text, true, 'import' from generate_series(1, :n) g
  on conflict do nothing;
insert into public.campaigns (user_id, name, type, content)
  values (:'uid', 'drv', 'sms', 'Hi {{first_name}}') returning id as cid \gset
select sending.start(:'cid', 1) is not null;
\o /dev/null
select sending.ensure_materialised(:'cid');
\o
