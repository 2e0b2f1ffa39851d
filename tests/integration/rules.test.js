// The database's rules (issue 9 §1–§2) through /rest/v1 with the real
// @supabase/supabase-js: what /api forbids cannot be done by a table write
// either. Each request runs as the member role of the user's authoritative role
// (app_admin / app_user / app_viewer), chosen per request from auth.users, so a
// ban or a role change counts at the next request. Fixtures that only the
// server's delivery work may write go in with psql as the database owner.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { startServer, client, signIn, request, uniqueEmail, sql, lit, noError, PASSWORD } from './helpers.js';

let server;
let service;
const users = {}; // name -> {id, token, email, db}
const tag = crypto.randomBytes(3).toString('hex');

before(async () => {
  server = await startServer();
  service = client(server, server.serviceKey);
  for (const [name, role] of [['alice', 'user'], ['bob', 'user'], ['viewer', 'viewer'], ['boss', 'admin'], ['mallory', 'user']]) {
    const email = uniqueEmail(name);
    const { error } = await service.auth.admin.createUser({ email, password: PASSWORD, email_confirm: true, app_metadata: { role } });
    noError(error, `createUser(${name})`);
    const s = await signIn(server, email);
    users[name] = { id: s.user.id, token: s.session.access_token, email, db: s.client };
  }
});
after(async () => {
  await server?.stop();
});

const future = () => new Date(Date.now() + 30 * 86400e3).toISOString();

/** Asserts a PostgREST error with this SQLSTATE; returns it. */
function refused({ data, error, status }, code, what) {
  assert.ok(error, `${what}: expected ${code}, got data ${JSON.stringify(data)} (status ${status})`);
  assert.equal(error.code, code, `${what}: ${JSON.stringify(error)}`);
  return error;
}

async function campaign(who, fields) {
  const { data, error } = await users[who].db.from('campaigns').insert({ name: `c-${tag}`, type: 'email', ...fields }).select().single();
  noError(error, 'insert campaign');
  return data;
}

describe('§1 the member role comes from the database, per request', () => {
  it('a user reads only her campaigns; a viewer reads all', async () => {
    const a = await campaign('alice', {});
    const b = await campaign('bob', {});
    const mine = await users.alice.db.from('campaigns').select('id').in('id', [a.id, b.id]);
    noError(mine.error);
    assert.deepEqual(mine.data.map((r) => r.id), [a.id]);
    const all = await users.viewer.db.from('campaigns').select('id').in('id', [a.id, b.id]);
    assert.equal(all.data.length, 2);
  });

  it('a role change takes effect on the next request, not at token expiry', async () => {
    const b = await campaign('bob', {});
    const before = await users.mallory.db.from('campaigns').select('id').eq('id', b.id);
    assert.deepEqual(before.data, []);
    await sql(server, `update auth.users set raw_app_meta_data = raw_app_meta_data || '{"role":"viewer"}' where id = ${lit(users.mallory.id)}`);
    const after = await users.mallory.db.from('campaigns').select('id').eq('id', b.id); // same token
    assert.deepEqual(after.data.map((r) => r.id), [b.id]);
    refused(await users.mallory.db.from('campaigns').insert({ name: 'x', type: 'email' }), '42501', 'a viewer inserts');
    await sql(server, `update auth.users set raw_app_meta_data = raw_app_meta_data || '{"role":"user"}' where id = ${lit(users.mallory.id)}`);
  });

  it('a banned user is anon on the next request', async () => {
    const own = await campaign('mallory', {});
    await sql(server, `update auth.users set banned_until = now() + interval '1 hour' where id = ${lit(users.mallory.id)}`);
    try {
      const r = await users.mallory.db.from('campaigns').select('id').eq('id', own.id);
      assert.ok(r.error, `a banned user still reads: ${JSON.stringify(r.data)}`);
      assert.equal(r.error.code, '42501');
    } finally {
      await sql(server, `update auth.users set banned_until = null where id = ${lit(users.mallory.id)}`);
    }
  });
});

describe('§2 campaigns: the state machine in the database', () => {
  it('refuses sending/sent/completed/failed from an owner, and a new campaign that is not draft or scheduled', async () => {
    const c = await campaign('alice', {});
    for (const status of ['sending', 'sent', 'completed', 'failed', 'active']) {
      const e = refused(await users.alice.db.from('campaigns').update({ status }).eq('id', c.id).select(), '23514', `-> ${status}`);
      assert.match(e.message, new RegExp(`cannot change status from draft to ${status}`));
    }
    refused(await users.alice.db.from('campaigns').insert({ name: 'x', type: 'email', status: 'sent' }), '23514', 'insert sent');
    const row = await sql(server, `select status from public.campaigns where id = ${lit(c.id)}`);
    assert.equal(row, 'draft');
  });

  it('scheduled needs a future date; type is fixed after draft', async () => {
    const c = await campaign('alice', {});
    refused(await users.alice.db.from('campaigns').update({ status: 'scheduled' }).eq('id', c.id), '23514', 'no date');
    refused(await users.alice.db.from('campaigns').update({ status: 'scheduled', scheduled_date: '2001-01-01T00:00:00Z' }).eq('id', c.id),
      '23514', 'past date');
    const ok = await users.alice.db.from('campaigns').update({ status: 'scheduled', scheduled_date: future() }).eq('id', c.id).select().single();
    noError(ok.error, 'schedule');
    const e = refused(await users.alice.db.from('campaigns').update({ type: 'sms' }).eq('id', c.id), '23514', 'type change');
    assert.match(e.message, /fixed/);
  });

  it('created_at and deleted_at are not writable; soft delete and restore go through audited functions', async () => {
    const c = await campaign('alice', {});
    refused(await users.alice.db.from('campaigns').update({ deleted_at: new Date().toISOString() }).eq('id', c.id), '42501', 'deleted_at');
    refused(await users.alice.db.from('campaigns').update({ created_at: '2000-01-01T00:00:00Z' }).eq('id', c.id), '42501', 'created_at');
    refused(await users.alice.db.from('campaigns').insert({ name: 'x', type: 'email', created_at: '2000-01-01T00:00:00Z' }), '42501', 'insert created_at');
    refused(await users.viewer.db.rpc('soft_delete_campaign', { p_id: c.id }), '42501', 'viewer soft delete');
    const bob = await users.bob.db.rpc('soft_delete_campaign', { p_id: c.id });
    noError(bob.error);
    assert.equal(bob.data?.id ?? null, null, 'bob cannot soft-delete alice\'s campaign');
    const del = await users.alice.db.rpc('soft_delete_campaign', { p_id: c.id });
    noError(del.error, 'soft delete');
    assert.ok(del.data.deleted_at);
    const back = await users.alice.db.rpc('restore_campaign', { p_id: c.id });
    noError(back.error, 'restore');
    assert.equal(back.data.deleted_at, null);
    const audit = await sql(server, `select string_agg(action, ',' order by action) from public.audit_logs
      where resource_id = ${lit(c.id)} and action in ('soft_delete', 'restore') and user_id = ${lit(users.alice.id)}`);
    assert.equal(audit, 'restore,soft_delete');
  });
});

describe('§2 reports are generated, not written', () => {
  it('an owner cannot insert or fake a report; POST /api/reports still generates one', async () => {
    const c = await campaign('alice', {});
    refused(await users.alice.db.from('reports').insert({ campaign_id: c.id, report_type: 'campaign_performance', data: { totals: { sent: 1e6 } } }),
      '42501', 'insert report');
    const r = await request(`${server.url}/api/reports`, {
      method: 'POST', headers: { apikey: server.anonKey, Authorization: `Bearer ${users.alice.token}` }, body: { campaign_id: c.id },
    });
    assert.equal(r.status, 201, r.text);
    assert.equal(r.json.user_id, users.alice.id);
    refused(await users.alice.db.from('reports').update({ data: { totals: { sent: 1e6 } } }).eq('id', r.json.id), '42501', 'update data');
    refused(await users.boss.db.from('reports').update({ generated_at: '2000-01-01T00:00:00Z' }).eq('id', r.json.id), '42501', 'admin generated_at');
    const viewer = await request(`${server.url}/api/reports`, {
      method: 'POST', headers: { apikey: server.anonKey, Authorization: `Bearer ${users.viewer.token}` }, body: { campaign_id: c.id },
    });
    assert.equal(viewer.status, 403, viewer.text);
    const bob = await request(`${server.url}/api/reports`, {
      method: 'POST', headers: { apikey: server.anonKey, Authorization: `Bearer ${users.bob.token}` }, body: { campaign_id: c.id },
    });
    assert.equal(bob.status, 404, bob.text);
  });

  it('an export is audited as action export', async () => {
    const c = await campaign('alice', {});
    const h = { apikey: server.anonKey, Authorization: `Bearer ${users.alice.token}` };
    const r = await request(`${server.url}/api/reports`, { method: 'POST', headers: h, body: { campaign_id: c.id } });
    assert.equal(r.status, 201, r.text);
    const x = await request(`${server.url}/api/reports/${r.json.id}/export?format=json`, { headers: h });
    assert.equal(x.status, 200, x.text);
    const n = await sql(server, `select count(*) from public.audit_logs where action = 'export' and resource_id = ${lit(r.json.id)}
      and user_id = ${lit(users.alice.id)}`);
    assert.equal(n, '1');
  });
});

describe('§2 consent is evidence', () => {
  const phone = `+1555${String(Date.now()).slice(-7)}`;
  const email = `ann-${tag}@example.com`;
  before(async () => {
    noError((await users.alice.db.from('contacts').insert({ phone, email })).error, 'contact');
    noError((await users.alice.db.from('sms_consent').insert({ phone_number: phone, consent_given: true, consent_source: 'web_form' })).error, 'consent');
    noError((await users.alice.db.from('email_subscriptions').insert({ email })).error, 'subscription');
  });

  it('an opt-out cannot be reversed by an UPDATE, even by an admin', async () => {
    noError((await users.alice.db.from('sms_consent').update({ consent_given: false, opt_out_reason: 'STOP' }).eq('phone_number', phone)).error);
    let e = refused(await users.alice.db.from('sms_consent').update({ consent_given: true }).eq('phone_number', phone), '42501', 'reverse');
    assert.match(e.message, /opt-out cannot be reversed/);
    refused(await users.alice.db.from('sms_consent').update({ opt_out_at: null }).eq('phone_number', phone), '42501', 'clear opt_out_at');
    refused(await users.boss.db.from('sms_consent').update({ consent_given: true }).eq('phone_number', phone), '42501', 'admin update');
    noError((await users.alice.db.from('email_subscriptions').update({ subscribed: false }).eq('email', email)).error);
    e = refused(await users.alice.db.from('email_subscriptions').update({ subscribed: true }).eq('email', email), '42501', 're-subscribe');
    assert.match(e.hint, /record_email_consent/);
  });

  it('re-consent needs new evidence from an admin (or the recipient) and is audited', async () => {
    await sql(server, `update public.sms_consent set opt_out_at = now() - interval '1 minute' where phone_number = ${lit(phone)}`);
    const args = { p_phone: phone, p_source: 'manual', p_consented_at: new Date().toISOString(), p_evidence: `signed form ${tag}` };
    refused(await users.alice.db.rpc('record_sms_consent', args), '42501', 'user records consent');
    refused(await users.boss.db.rpc('record_sms_consent', { ...args, p_evidence: '' }), '22023', 'no evidence');
    refused(await users.boss.db.rpc('record_sms_consent', { ...args, p_consented_at: '2001-01-01T00:00:00Z' }), '22023', 'before the opt-out');
    const r = await users.boss.db.rpc('record_sms_consent', args);
    noError(r.error, 'record consent');
    assert.equal(r.data.consent_given, true);
    const audit = await sql(server, `select user_id || ' ' || (metadata->>'evidence') from public.audit_logs
      where action = 'consent' and resource_id = ${lit(r.data.id)}`);
    assert.equal(audit, `${users.boss.id} signed form ${tag}`);
  });

  it('users reach only their contacts\' consent; viewers no phone numbers or addresses', async () => {
    const bob = await users.bob.db.from('sms_consent').select('phone_number').eq('phone_number', phone);
    noError(bob.error);
    assert.deepEqual(bob.data, []);
    refused(await users.bob.db.from('sms_consent').insert({ phone_number: `+1666${String(Date.now()).slice(-7)}` }), '42501', 'bob inserts');
    for (const t of ['sms_consent', 'email_subscriptions', 'contacts']) {
      const v = await users.viewer.db.from(t).select('*');
      noError(v.error, `viewer ${t}`);
      assert.deepEqual(v.data, [], `viewer reads ${t}`);
    }
    const boss = await users.boss.db.from('sms_consent').select('phone_number').eq('phone_number', phone);
    assert.equal(boss.data.length, 1);
  });
});

describe('§2 soft delete of templates, contacts and data sources', () => {
  it('a hard DELETE by a user is refused with a clear error; deleted_at soft-deletes', async () => {
    const t = await users.alice.db.from('templates').insert({ name: 't', type: 'sms', content: 'hi' }).select().single();
    noError(t.error);
    const e = refused(await users.alice.db.from('templates').delete().eq('id', t.data.id), '42501', 'delete template');
    assert.match(e.message, /soft-deleted/);
    assert.match(e.hint, /deleted_at/);
    noError((await users.alice.db.from('templates').update({ deleted_at: new Date().toISOString() }).eq('id', t.data.id)).error);
    const c = await users.alice.db.from('contacts').insert({ email: `gone-${tag}@example.com` }).select().single();
    refused(await users.alice.db.from('contacts').delete().eq('id', c.data.id), '42501', 'delete contact');
    const s = await users.alice.db.from('data_sources').insert({ name: 's', type: 'csv_upload' }).select().single();
    noError(s.error);
    refused(await users.alice.db.from('data_sources').delete().eq('id', s.data.id), '42501', 'delete source');
    assert.equal(await sql(server, `select count(*) from public.templates where id = ${lit(t.data.id)}`), '1');
  });

  it('deleting a data source never drops its imported data silently', async () => {
    const s = await users.alice.db.from('data_sources').insert({ name: 's2', type: 'csv_upload' }).select().single();
    await sql(server, `insert into public.imported_data (data_source_id, metric_name, metric_value, event_date)
      values (${lit(s.data.id)}, 'visits', 1, current_date)`);
    refused(await users.boss.db.from('data_sources').delete().eq('id', s.data.id), '23503', 'admin delete with data');
    assert.equal(await sql(server, `select count(*) from public.imported_data where data_source_id = ${lit(s.data.id)}`), '1');
  });
});

describe('§2 settings, analytics, audit', () => {
  it('enable_audit_log = false stops the trail', async () => {
    noError((await users.boss.db.from('app_settings').update({ enable_audit_log: false }).neq('id', '00000000-0000-0000-0000-000000000000')).error);
    try {
      const t = await users.alice.db.from('templates').insert({ name: 'quiet', type: 'sms', content: 'x' }).select().single();
      noError(t.error);
      assert.equal(await sql(server, `select count(*) from public.audit_logs where resource_id = ${lit(t.data.id)}`), '0');
    } finally {
      await sql(server, 'update public.app_settings set enable_audit_log = true');
    }
  });

  it('analytics_data is one value per user, metric, day and dimensions, with upsert', async () => {
    const row = { metric_type: `m_${tag}`, value: 1, date: '2026-01-01', user_id: users.alice.id };
    noError((await users.alice.db.from('analytics_data').insert(row)).error);
    refused(await users.alice.db.from('analytics_data').insert({ ...row, value: 2 }), '23505', 'duplicate day');
    const up = await users.alice.db.from('analytics_data')
      .upsert({ ...row, value: 7, dimensions: {} }, { onConflict: 'user_id,metric_type,date,dimensions' }).select();
    noError(up.error, 'upsert');
    assert.equal(await sql(server, `select string_agg(value::text, ',') from public.analytics_data where metric_type = ${lit(row.metric_type)}`), '7');
  });

  it('sign-in, failed sign-in and sign-out are in public.audit_logs', async () => {
    const email = uniqueEmail('events');
    noError((await service.auth.admin.createUser({ email, password: PASSWORD, email_confirm: true })).error);
    const bad = await client(server).auth.signInWithPassword({ email, password: 'wrong password!' });
    assert.ok(bad.error);
    const s = await signIn(server, email);
    noError((await s.client.auth.signOut()).error, 'signOut');
    const rows = await sql(server, `select string_agg(action || ':' || status, ',' order by created_at, action)
      from public.audit_logs where metadata->>'email' = ${lit(email)}`);
    assert.equal(rows, 'login:failure,login:success,logout:success');
  });

  it('auth.audit_log_entries is purged by the retention function', async () => {
    await sql(server, `insert into auth.audit_log_entries (payload, created_at) values ('{"action":"old-${tag}"}', now() - interval '400 days')`);
    await sql(server, 'set role service_role; select public.purge_audit_logs(30)');
    assert.equal(await sql(server, `select count(*) from auth.audit_log_entries where payload->>'action' = 'old-${tag}'`), '0');
  });
});
