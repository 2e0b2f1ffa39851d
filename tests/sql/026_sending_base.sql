-- tests/sql/026_sending_base.sql: the shared sending schema of
-- migrations/026_sending_base.sql: segments' RLS, a campaign's references to
-- its owner's template and segment only, suppressions, and message statuses
-- that move forward only.
BEGIN;
SELECT plan(30);

SELECT tests.create_user('admin@example.test', 'admin') AS admin \gset
SELECT tests.create_user('viewer@example.test', 'viewer') AS viewer \gset
SELECT tests.create_user('alice@example.test', 'user') AS alice \gset
SELECT tests.create_user('bob@example.test', 'user') AS bob \gset

INSERT INTO public.templates (id, user_id, name, type, subject, content) VALUES
    ('70000000-0000-0000-0000-00000000000a', :'alice', 'Welcome', 'email', 'Hi', 'Hello'),
    ('70000000-0000-0000-0000-00000000000b', :'bob', 'Promo', 'email', 'Sale', 'Sale!');
INSERT INTO public.audience_segments (id, user_id, name) VALUES
    ('5e000000-0000-0000-0000-00000000000a', :'alice', 'Alice all'),
    ('5e000000-0000-0000-0000-00000000000b', :'bob', 'Bob all');
INSERT INTO public.contacts (user_id, email, phone) VALUES
    (:'alice', 'carol@example.test', '+15550000001'),
    (:'bob', 'dave@example.test', NULL);
INSERT INTO public.campaigns (id, user_id, name, type, status) VALUES
    ('c0000000-0000-0000-0000-000000000001', :'alice', 'Spring', 'email', 'draft');

-- ---------------------------------------------------------------------------
-- audience_segments
-- ---------------------------------------------------------------------------

SELECT tests.authenticate_as(:'alice');
SELECT is((SELECT count(*)::int FROM public.audience_segments), 1, 'a user sees only her segments');
SELECT is((SELECT rules FROM public.audience_segments), '{"all": []}'::jsonb,
          'a new segment matches every live contact by default');
SELECT is(tests.affected($$UPDATE public.audience_segments SET name = 'x'
                          WHERE id = '5e000000-0000-0000-0000-00000000000b'$$), 0::bigint,
          'a user cannot rename another user''s segment');
SELECT throws_ok($$UPDATE public.audience_segments SET estimated_size = 5$$, '42501', NULL,
                 'estimated_size is not writable through the API');
SELECT lives_ok($$INSERT INTO public.audience_segments (name, rules) VALUES ('VIPs', '{"any": []}')$$,
                'a user creates a segment');
SELECT is((SELECT user_id FROM public.audience_segments WHERE name = 'VIPs'), :'alice'::uuid,
          'owned by its creator');
SELECT throws_ok($$INSERT INTO public.audience_segments (user_id, name) VALUES ('$$ || :'bob' || $$', 'x')$$,
                 '42501', NULL, 'a user cannot create a segment for another user');
SELECT tests.authenticate_as(:'viewer');
SELECT is((SELECT count(*)::int FROM public.audience_segments), 3, 'a viewer reads every segment');
SELECT throws_ok($$INSERT INTO public.audience_segments (name) VALUES ('x')$$, '42501', NULL,
                 'a viewer cannot create one');
SELECT tests.authenticate_as(:'admin');
SELECT is(tests.affected($$UPDATE public.audience_segments SET description = 'checked'$$), 3::bigint,
          'an admin manages every segment');
SELECT tests.authenticate_as_anon();
SELECT throws_ok($$SELECT * FROM public.audience_segments$$, '42501', NULL, 'anon has no access');

-- ---------------------------------------------------------------------------
-- campaigns: template, segment, sender
-- ---------------------------------------------------------------------------

SELECT tests.authenticate_as(:'alice');
SELECT lives_ok($$UPDATE public.campaigns SET template_id = '70000000-0000-0000-0000-00000000000a',
                      segment_id = '5e000000-0000-0000-0000-00000000000a', subject = 'Spring sale',
                      from_name = 'Acme Marketing', from_email = 'News@Acme.Example',
                      sms_sender = 'ACME'
                  WHERE id = 'c0000000-0000-0000-0000-000000000001'$$,
                'the owner sets her template, segment and sender');
SELECT is((SELECT from_email FROM public.campaigns), 'news@acme.example', 'the sender address is normalised');
SELECT is(tests.error_of($$UPDATE public.campaigns SET template_id = '70000000-0000-0000-0000-00000000000b'$$),
          '23503 pick one of your own templates', 'another user''s template is refused');
SELECT is(tests.error_of($$UPDATE public.campaigns SET segment_id = '5e000000-0000-0000-0000-00000000000b'$$),
          '23503 pick one of your own segments', 'another user''s segment is refused');
SELECT throws_ok($$UPDATE public.campaigns SET subject = e'Hi\r\nBcc: victim@example.test'$$, '23514', NULL,
                 'a subject cannot smuggle a header');
SELECT throws_ok($$UPDATE public.campaigns SET from_email = 'a@b.example>, evil@x.example'$$, '23514', NULL,
                 'a sender address cannot smuggle a second address');
SELECT throws_ok($$UPDATE public.campaigns SET sms_sender = 'TOO LONG SENDER'$$, '23514', NULL,
                 'an alphanumeric sender ID has at most 11 characters');
SELECT tests.clear_authentication();
SELECT throws_ok($$DELETE FROM public.audience_segments WHERE id = '5e000000-0000-0000-0000-00000000000a'$$,
                 '23503', NULL, 'a segment a campaign targets cannot be deleted (it would widen the audience)');

-- ---------------------------------------------------------------------------
-- suppressions
-- ---------------------------------------------------------------------------

SELECT tests.authenticate_as_service();
SELECT public.suppress('email', ' Carol@Example.test ', 'hard_bounce', '550 no such user');
SELECT public.suppress('email', 'carol@example.test', 'complaint');
SELECT public.suppress('email', 'dave@example.test', 'unsubscribe');
SELECT ok(public.is_suppressed('email', 'CAROL@example.test'), 'suppressed, whatever the case');
SELECT is((SELECT reason FROM public.suppressions WHERE address = 'carol@example.test'), 'hard_bounce',
          'the first reason stays');
SELECT ok(NOT public.is_suppressed('sms', '+15550000001'), 'per channel');
SELECT tests.authenticate_as(:'alice');
SELECT is((SELECT array_agg(address)::text FROM public.suppressions), '{carol@example.test}',
          'a user reads the suppressions of her own contacts only');
SELECT throws_ok($$SELECT public.is_suppressed('email', 'x@example.test')$$, '42501', NULL,
                 'the check is the server''s');
SELECT throws_ok($$INSERT INTO public.suppressions (channel, address, reason) VALUES ('email', 'x@example.test', 'manual')$$,
                 '42501', NULL, 'a user cannot add suppressions');
SELECT tests.authenticate_as(:'admin');
SELECT throws_ok($$INSERT INTO public.suppressions (channel, address, reason) VALUES ('email', 'y@example.test', 'unsubscribe')$$,
                 '42501', NULL, 'an admin cannot forge an unsubscribe');
SELECT lives_ok($$INSERT INTO public.suppressions (channel, address, reason) VALUES ('sms', '+15550000009', 'manual')$$,
                'an admin adds a manual suppression');

-- ---------------------------------------------------------------------------
-- messages: one per recipient, forward only
-- ---------------------------------------------------------------------------

SELECT tests.clear_authentication();
INSERT INTO public.email_messages (id, campaign_id, recipient, status) VALUES
    ('e0000000-0000-0000-0000-000000000001', 'c0000000-0000-0000-0000-000000000001', 'carol@example.test', 'queued');
SELECT throws_ok($$INSERT INTO public.email_messages (campaign_id, recipient)
                   VALUES ('c0000000-0000-0000-0000-000000000001', 'Carol@example.test')$$,
                 '23505', NULL, 'one message per campaign and recipient');
UPDATE public.email_messages SET status = 'delivered', delivered_at = '2026-01-01T00:00:00Z';
UPDATE public.email_messages SET status = 'sent', delivered_at = '2026-02-01T00:00:00Z';
SELECT is((SELECT status || ' ' || to_char(delivered_at AT TIME ZONE 'UTC', 'MM-DD') FROM public.email_messages),
          'delivered 01-01', 'a late sent never overwrites delivered, and delivered_at is set once');
UPDATE public.email_messages SET status = 'bounced', bounce_type = 'hard';
SELECT is((SELECT status FROM public.email_messages), 'bounced', 'an asynchronous bounce after delivery applies');

SELECT * FROM finish();
ROLLBACK;
