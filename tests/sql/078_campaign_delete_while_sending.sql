-- tests/sql/078_campaign_delete_while_sending.sql: a sending or paused campaign
-- cannot be soft-deleted (through soft_delete_campaign or a direct update of
-- deleted_at, by its owner, an admin or service_role); other campaigns can;
-- after a cancel it can.
BEGIN;
SELECT plan(12);

SELECT tests.create_user('dora@example.test', 'user') AS dora \gset
SELECT tests.create_user('adam@example.test', 'admin') AS adam \gset
SELECT tests.clear_authentication();
UPDATE public.app_settings SET postal_address = '1 Main St', monthly_email_limit = 1000000;
INSERT INTO public.contacts (user_id, email, first_name)
    SELECT :'dora', 'd' || g || '@delete.test', 'D' || g FROM generate_series(1, 3) g;
INSERT INTO public.campaigns (id, user_id, name, type, subject, content) VALUES
    ('c7800000-0000-0000-0000-000000000001', :'dora', 'Sending', 'email', 'Hi', '<p>x</p>'),
    ('c7800000-0000-0000-0000-000000000002', :'dora', 'Paused', 'email', 'Hi', '<p>x</p>'),
    ('c7800000-0000-0000-0000-000000000003', :'dora', 'Draft', 'email', 'Hi', '<p>x</p>');
INSERT INTO public.campaigns (id, user_id, name, type, subject, content, status, scheduled_date) VALUES
    ('c7800000-0000-0000-0000-000000000004', :'dora', 'Scheduled', 'email', 'Hi', '<p>x</p>',
     'scheduled', now() + interval '1 day');
SELECT tests.authenticate_as_service();
SELECT sending.start('c7800000-0000-0000-0000-000000000001', 1);
SELECT sending.ensure_materialised('c7800000-0000-0000-0000-000000000001');
SELECT sending.start('c7800000-0000-0000-0000-000000000002', 1);
SELECT sending.ensure_materialised('c7800000-0000-0000-0000-000000000002');
SELECT sending.pause('c7800000-0000-0000-0000-000000000002', 'test');
SELECT is((SELECT status FROM public.campaigns WHERE id = 'c7800000-0000-0000-0000-000000000002'),
          'paused', 'the second campaign is paused');

-- the owner, through the API's function
SELECT tests.authenticate_as(:'dora');
SELECT throws_ok($$SELECT public.soft_delete_campaign('c7800000-0000-0000-0000-000000000001')$$,
                 'PT409', 'a sending campaign cannot be deleted', 'the owner cannot delete a sending campaign');
SELECT throws_ok($$SELECT public.soft_delete_campaign('c7800000-0000-0000-0000-000000000002')$$,
                 'PT409', 'a paused campaign cannot be deleted', 'nor a paused one');
-- the owner, as /rest/v1 would (a PATCH of deleted_at): the column is not
-- theirs to write at all (a delete goes through soft_delete_campaign)
SELECT throws_ok($$UPDATE public.campaigns SET deleted_at = now()
                   WHERE id = 'c7800000-0000-0000-0000-000000000001'$$,
                 '42501', NULL, 'nor by updating deleted_at');
SELECT isnt((SELECT (public.soft_delete_campaign('c7800000-0000-0000-0000-000000000003')).deleted_at), NULL,
            'a draft is deleted as before');
SELECT isnt((SELECT (public.soft_delete_campaign('c7800000-0000-0000-0000-000000000004')).deleted_at), NULL,
            'a scheduled campaign is deleted as before');
-- an admin and service_role are held by the same rule
SELECT tests.authenticate_as(:'adam');
SELECT throws_ok($$SELECT public.soft_delete_campaign('c7800000-0000-0000-0000-000000000001')$$,
                 'PT409', NULL, 'an admin cannot delete a sending campaign either');
SELECT tests.authenticate_as_service();
SELECT throws_ok($$UPDATE public.campaigns SET deleted_at = now()
                   WHERE id = 'c7800000-0000-0000-0000-000000000002'$$,
                 'PT409', NULL, 'nor service_role');
SELECT is((SELECT count(*)::int FROM public.campaigns
           WHERE id IN ('c7800000-0000-0000-0000-000000000001', 'c7800000-0000-0000-0000-000000000002')
             AND deleted_at IS NULL), 2, 'both stay live');
-- the way out: cancel, then delete
SELECT sending.cancel('c7800000-0000-0000-0000-000000000001');
SELECT sending.cancel('c7800000-0000-0000-0000-000000000002');
SELECT tests.authenticate_as(:'dora');
SELECT isnt((SELECT (public.soft_delete_campaign('c7800000-0000-0000-0000-000000000001')).deleted_at), NULL,
            'a cancelled campaign is deleted');
SELECT isnt((SELECT (public.soft_delete_campaign('c7800000-0000-0000-0000-000000000002')).deleted_at), NULL,
            'so is the cancelled paused one');
SELECT tests.clear_authentication();
-- a deleted sending campaign's messages would have stayed queued: none are left so
SELECT is((SELECT count(*)::int FROM public.email_messages
           WHERE campaign_id IN ('c7800000-0000-0000-0000-000000000001', 'c7800000-0000-0000-0000-000000000002')
             AND status = 'queued'), 0, 'nothing of the deleted campaigns waits to be sent');

SELECT * FROM finish();
ROLLBACK;
