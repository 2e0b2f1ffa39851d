// Segments through /rest/v1 with the real @supabase/supabase-js
// (migrations/030_visual_builders.sql, docs/segments.md): rules validated on
// write with a 400 naming the bad path, preview_segment and
// calculate_segment_size as rpc on the caller's own contacts and segments only,
// segment_contact_ids for the service key only, hostile values and attribute
// keys that stay data, and a campaign that may target only its owner's segment.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, client, signIn, uniqueEmail, sql, noError, PASSWORD } from './helpers.js';

let server;
let service;
const users = {}; // name -> { id, db }

before(async () => {
  server = await startServer();
  service = client(server, server.serviceKey);
  for (const [name, role] of [['alice', 'user'], ['bob', 'user'], ['viewer', 'viewer']]) {
    const email = uniqueEmail(`seg-${name}`);
    const { error } = await service.auth.admin.createUser({ email, password: PASSWORD, email_confirm: true, app_metadata: { role } });
    noError(error, `createUser(${name})`);
    const s = await signIn(server, email);
    users[name] = { id: s.user.id, db: s.client };
  }
  const shape = (r) => ({ email: null, phone: null, attributes: {}, ...r });
  noError((await users.alice.db.from('contacts').insert([
    { email: 'ann@shop.example', first_name: 'Ann', attributes: { plan: 'pro', "it's": 'x' } },
    { email: 'dee@shop.example', first_name: 'Dee', attributes: { plan: 'free' } },
    { phone: '+15550100001', first_name: 'Cy' },
  ].map(shape))).error, 'alice contacts');
  noError((await users.bob.db.from('contacts').insert([
    { email: 'fay@shop.example', first_name: 'Fay', attributes: { plan: 'pro' } },
  ].map(shape))).error, 'bob contacts');
});
after(async () => {
  await server?.stop();
});

const SHOP = { all: [{ field: 'email', op: 'contains', value: 'SHOP' }] };

describe('segments through /rest/v1', () => {
  it('invalid rules are refused on write with 400 and the bad path', async () => {
    const bad = { all: [SHOP.all[0], { any: [{ field: 'attributes.plan', op: 'like', value: 'p%' }] }] };
    const r = await users.alice.db.from('audience_segments').insert({ name: 'bad', rules: bad }).select();
    assert.equal(r.status, 400);
    assert.equal(r.error.code, '22023');
    assert.equal(r.error.message, 'rules.all[1].any[0].op: unknown operator "like"');
    const r2 = await users.alice.db.from('audience_segments').insert({ name: 'old default', rules: [] }).select();
    assert.equal(r2.error?.message, 'rules: must be a group {"all": [...]} or {"any": [...]}');
  });

  it('preview_segment counts the caller\'s own live contacts and samples them', async () => {
    const { data, error } = await users.alice.db.rpc('preview_segment', { p_rules: SHOP });
    noError(error, 'preview');
    assert.equal(data.count, 2); // Ann, Dee; not Bob's Fay
    assert.deepEqual(data.sample.map((c) => c.first_name).sort(), ['Ann', 'Dee']);
    const all = await users.alice.db.rpc('preview_segment', { p_rules: { all: [] } });
    assert.equal(all.data.count, 3);
    const bob = await users.bob.db.rpc('preview_segment', { p_rules: SHOP });
    assert.equal(bob.data.count, 1);
    const bad = await users.alice.db.rpc('preview_segment', { p_rules: { all: [{ field: 'created_at', op: 'gt', value: 'yesterday' }] } });
    assert.equal(bad.status, 400);
    assert.match(bad.error.message, /^rules\.all\[0\]\.value: must be a date/);
    const viewer = await users.viewer.db.rpc('preview_segment', { p_rules: { all: [] } });
    assert.ok(viewer.error, 'a viewer cannot preview');
    assert.equal(viewer.status, 403);
  });

  it('hostile values and attribute keys are data', async () => {
    for (const rules of [
      { all: [{ field: 'email', op: 'eq', value: "x'); delete from public.contacts; --" }] },
      { all: [{ field: "attributes.x'); delete from public.contacts; --", op: 'not_null' }] },
      { all: [{ field: 'first_name', op: 'contains', value: '%' }] },
    ]) {
      const { data, error } = await users.alice.db.rpc('preview_segment', { p_rules: rules });
      noError(error, JSON.stringify(rules));
      assert.equal(data.count, 0, JSON.stringify(rules));
    }
    const odd = await users.alice.db.rpc('preview_segment', { p_rules: { all: [{ field: "attributes.it's", op: 'eq', value: 'X' }] } });
    assert.equal(odd.data.count, 1, 'an attribute key with a quote');
    const { data } = await users.alice.db.rpc('preview_segment', { p_rules: { all: [] } });
    assert.equal(data.count, 3, 'nothing was deleted');
  });

  it('calculate_segment_size: the owner only; the size is not writable through the API', async () => {
    const { data: seg, error } = await users.alice.db.from('audience_segments').insert({ name: 'Shop', rules: SHOP }).select().single();
    noError(error, 'insert segment');
    assert.equal(seg.estimated_size, null);
    const n = await users.alice.db.rpc('calculate_segment_size', { p_segment_id: seg.id });
    noError(n.error, 'calculate');
    assert.equal(n.data, 2);
    const row = await users.alice.db.from('audience_segments').select('estimated_size,last_calculated_at').eq('id', seg.id).single();
    assert.equal(row.data.estimated_size, 2);
    assert.ok(row.data.last_calculated_at);

    const other = await users.bob.db.rpc('calculate_segment_size', { p_segment_id: seg.id });
    assert.equal(other.status, 404, 'Bob cannot count Alice\'s segment');
    const forged = await users.alice.db.from('audience_segments').update({ estimated_size: 999999 }).eq('id', seg.id).select();
    assert.ok(forged.error, 'estimated_size is not writable');

    // a campaign targets only its owner's segment
    const mine = await users.alice.db.from('campaigns').insert({ name: 'C1', type: 'email', segment_id: seg.id }).select('id,segment_id').single();
    noError(mine.error, 'campaign with own segment');
    const theirs = await users.bob.db.from('campaigns').insert({ name: 'C2', type: 'email', segment_id: seg.id }).select();
    assert.ok(theirs.error, 'a campaign cannot name another user\'s segment');
  });

  it('segment_contact_ids: the service key only', async () => {
    const as = await users.alice.db.rpc('segment_contact_ids', { p_user: users.alice.id, p_rules: SHOP });
    assert.ok(as.error, 'a user cannot call it');
    const { data, error } = await service.rpc('segment_contact_ids', { p_user: users.alice.id, p_rules: SHOP });
    noError(error, 'service');
    assert.equal(data.length, 2);
    const ids = (await sql(server, `select string_agg(id::text, ',' order by id) from public.contacts where email like '%shop%' and user_id = '${users.alice.id}'`)).trim();
    assert.equal([...data].sort().join(','), ids);
  });
});
