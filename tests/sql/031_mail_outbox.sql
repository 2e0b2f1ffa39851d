-- tests/sql/031_mail_outbox.sql: the durable mail outbox
-- (migrations/031_mail_outbox.sql): privileges, the job it queues (naming the
-- row, never holding the message), at-most-once claims, retries, the final
-- states and their scrubbing.
BEGIN;
SELECT plan(23);

SELECT ok(NOT has_table_privilege('authenticated', 'jobs.mail_outbox', 'SELECT')
          AND NOT has_table_privilege('anon', 'jobs.mail_outbox', 'SELECT')
          AND NOT has_table_privilege('service_role', 'jobs.mail_outbox', 'UPDATE'),
          'API roles cannot read the outbox; service_role cannot write it directly');
SELECT ok(has_function_privilege('service_role', 'jobs.queue_mail(text, text, text, text, text, text, text, text, bytea, integer, interval)', 'EXECUTE')
          AND NOT has_function_privilege('authenticated', 'jobs.mail_claim(bigint)', 'EXECUTE')
          AND NOT has_function_privilege('anon', 'jobs.mail_finish(bigint, text, text)', 'EXECUTE'),
          'only service_role queues, claims and finishes mail');

SELECT tests.authenticate_as_service();
SELECT jobs.queue_mail('auth', 'signup', 'a@example.test', 'Confirm', 'code 123456 token abc', '<p>x</p>',
                       null, null, null, 4, '5 seconds') AS m1 \gset
SELECT tests.clear_authentication();

SELECT is((SELECT payload FROM jobs.jobs WHERE kind = 'mail.send' AND (payload ->> 'mail_id')::bigint = :m1),
          jsonb_build_object('mail_id', :m1), 'the job names the row only');
SELECT is((SELECT max_attempts || '/' || retry_delay FROM jobs.jobs WHERE (payload ->> 'mail_id')::bigint = :m1),
          '4/00:00:05', 'the job carries the retry settings');
SELECT ok((SELECT position('123456' in payload::text) = 0 FROM jobs.jobs WHERE (payload ->> 'mail_id')::bigint = :m1),
          'the token is not in jobs.jobs');
SELECT is((SELECT status FROM jobs.mail_outbox WHERE id = :m1), 'queued', 'a new mail is queued');

SELECT throws_ok($$SELECT jobs.queue_mail('auth', 'signup', E'a@example.test\r\nBcc: x@evil.test', 's', 't', null)$$,
                 '23514', NULL, 'a recipient is one address');
SELECT throws_ok($$SELECT jobs.queue_mail('spam', 'signup', 'a@example.test', 's', 't', null)$$,
                 '23514', NULL, 'the purpose is auth or report');
SELECT throws_ok($$SELECT jobs.queue_mail('auth', 'signup', 'a@example.test', null, 't', null)$$,
                 '23514', NULL, 'a queued mail has a subject');

-- claim: marked sending (with the message), a temporary failure queues it again
SELECT is((SELECT outcome || '|' || attempts || '|' || body_text FROM jobs.mail_claim(:m1)),
          'send|1|code 123456 token abc', 'the claim returns the message');
SELECT is((SELECT status FROM jobs.mail_outbox WHERE id = :m1), 'sending', 'marked sending before the send');
SELECT is(jobs.mail_finish(:m1, 'retry', 'SMTP delivery failed: refused'), 'queued', 'a temporary failure queues it again');
SELECT is((SELECT outcome FROM jobs.mail_claim(:m1)), 'send', 'claimed again');
SELECT is(jobs.mail_finish(:m1, 'sent'), 'sent', 'then sent');
SELECT ok((SELECT subject IS NULL AND body_text IS NULL AND body_html IS NULL AND sent_at IS NOT NULL
           FROM jobs.mail_outbox WHERE id = :m1), 'a sent mail is scrubbed, sent_at set');
SELECT is((SELECT outcome FROM jobs.mail_claim(:m1)), 'gone', 'a sent mail is never claimed again');
SELECT throws_ok(format('UPDATE jobs.mail_outbox SET status = %L WHERE id = %s', 'queued', :m1),
                 '55000', NULL, 'final states are final');

-- at most once: a row found 'sending' by a new claim was being sent by a dead process
SELECT jobs.queue_mail('report', 'report.weekly', 'b@example.test', 'Report', 'see attached', null,
                       'r.csv', 'text/csv', '\x612c620d0a'::bytea) AS m2 \gset
SELECT is((SELECT outcome || '|' || attachment_name || '|' || convert_from(attachment, 'UTF8')
           FROM jobs.mail_claim(:m2)), E'send|r.csv|a,b\r\n', 'an attachment round-trips');
SELECT is((SELECT outcome FROM jobs.mail_claim(:m2)), 'unknown', 'claimed while sending: not sent again');
SELECT ok((SELECT status = 'unknown' AND attachment IS NULL AND body_text IS NULL
           FROM jobs.mail_outbox WHERE id = :m2), 'recorded as unknown and scrubbed');

-- housekeeping: a mail whose job ended without an outcome is closed and erased
SELECT jobs.queue_mail('auth', 'recovery', 'c@example.test', 'Reset', 'code 654321', null) AS m3 \gset
UPDATE jobs.jobs SET status = 'failed', finished_at = now() WHERE (payload ->> 'mail_id')::bigint = :m3;
SELECT is(jobs.purge_mail_outbox('7 days'), 0, 'nothing old enough to delete');
SELECT ok((SELECT status = 'failed' AND body_text IS NULL FROM jobs.mail_outbox WHERE id = :m3),
          'an orphaned queued mail is failed and erased');
ALTER TABLE jobs.mail_outbox DISABLE TRIGGER mail_outbox_states; -- final rows are frozen: age them
UPDATE jobs.mail_outbox SET updated_at = now() - interval '8 days' WHERE id IN (:m1, :m2, :m3);
ALTER TABLE jobs.mail_outbox ENABLE TRIGGER mail_outbox_states;
SELECT is(jobs.purge_mail_outbox('7 days'), 3, 'final rows past the keep period are deleted');

SELECT * FROM finish();
ROLLBACK;
