// postgres_changes batching (issue 9): the visibility checks of every claims
// group of a batch go to the database in one pipeline per checking connection
// (REALTIME_CHECK_CONNECTIONS), and the batch's deliveries reach the realtime
// loop in one hand-off. What must hold whatever the batching: each group gets
// exactly the rows its RLS lets it see, a group whose check fails does not
// stop the others, and every subscriber gets its rows in commit order.
//
// The rows are written by the database owner in ONE transaction, so the feed
// reads them as one batch. "Did not receive" is asserted with a sentinel
// committed later, which reaches a socket only after everything before it.
// No timing thresholds.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as h from './helpers.js';

let server;
const users = {}; // name -> {client, user, session, email}
const T = { timeout: 60000 };

before(async () => {
  server = await h.startServer({ REALTIME_CHECK_CONNECTIONS: '2' });
  for (const n of ['alice', 'bob', 'carol']) users[n] = await h.signUpUser(server);
});

after(async () => {
  if (server) await server.stop();
});

async function waitFor(pred) {
  for (;;) {
    const v = pred();
    if (v) return v;
    await h.sleep(20);
  }
}

/** A new socket for a token, subscribed to campaign inserts; got receives the rows. */
async function watch(token, name) {
  const c = h.client(server);
  // awaited: the join must carry the token (else it joins with the anon key)
  if (token) await c.realtime.setAuth(token);
  const got = [];
  const ch = c.channel(name).on('postgres_changes', { event: 'INSERT', schema: 'public', table: 'campaigns' }, (p) => got.push(p.new));
  const [status, err] = await new Promise((resolve) => ch.subscribe((s, e) => s !== 'CLOSED' && resolve([s, e])));
  assert.equal(status, 'SUBSCRIBED', `subscribe failed: ${err && err.message}`);
  return { c, got };
}

/** Inserts, as the owner and in one transaction, one campaign per [user, name]. */
async function insertOneTransaction(rows) {
  const values = rows.map(([u, name]) => `(${h.lit(u.user.id)}::uuid, ${h.lit(name)}, 'email')`).join(', ');
  await h.sql(server, `insert into public.campaigns (user_id, name, type) values ${values}`);
}

const names = (got) => got.map((r) => r.name);

test('one batch, four claims groups: each subscriber gets exactly its own rows, in commit order', T, async () => {
  const { alice, bob, carol } = users;
  const email = h.uniqueEmail('rtbatch-admin');
  const add = await server.run(['user', 'add', '--email', email, '--password', h.PASSWORD, '--role', 'admin']);
  assert.equal(add.code, 0, add.stderr);
  const admin = await h.signIn(server, email);
  // two sockets for alice (one group, two members), one each for bob, carol, the admin
  const a1 = await watch(alice.session.access_token, 'b-a1');
  const a2 = await watch(alice.session.access_token, 'b-a2');
  const b = await watch(bob.session.access_token, 'b-b');
  const c = await watch(carol.session.access_token, 'b-c');
  const ad = await watch(admin.session.access_token, 'b-admin');

  const rows = [];
  for (let i = 0; i < 4; i++) rows.push([alice, `a${i}`], [bob, `b${i}`], [carol, `c${i}`]);
  await insertOneTransaction(rows);
  await insertOneTransaction([[alice, 'a-end'], [bob, 'b-end'], [carol, 'c-end']]);

  for (const [w, last] of [[a1, 'a-end'], [a2, 'a-end'], [b, 'b-end'], [c, 'c-end'], [ad, 'c-end']])
    await waitFor(() => w.got.some((r) => r.name === last));
  const own = (u, prefix) => [0, 1, 2, 3].map((i) => `${prefix}${i}`).concat(`${prefix}-end`);
  assert.deepEqual(names(a1.got), own(alice, 'a'));
  assert.deepEqual(names(a2.got), own(alice, 'a'));
  assert.deepEqual(names(b.got), own(bob, 'b'));
  assert.deepEqual(names(c.got), own(carol, 'c'));
  assert.ok(a1.got.every((r) => r.user_id === alice.user.id));
  // the admin's policy lets it read every row: all of them, in commit order
  assert.deepEqual(names(ad.got), rows.map(([, n]) => n).concat(['a-end', 'b-end', 'c-end']));
  for (const w of [a1, a2, b, c, ad]) w.c.realtime.disconnect();
});

test('a group whose visibility check fails gets nothing and does not stop the other groups', T, async () => {
  const { alice, bob } = users;
  // A token whose role may not read campaigns at all: its check fails in the
  // database (42501) inside the same pipeline as the others.
  const anonSee = await h.psql(server, "select has_table_privilege('anon', 'public.campaigns', 'SELECT')");
  assert.equal(anonSee.stdout.trim(), 'f', 'this test needs a role without SELECT on campaigns');
  const anon = await watch(null, 'f-anon');
  const a = await watch(alice.session.access_token, 'f-a');
  const b = await watch(bob.session.access_token, 'f-b');
  await insertOneTransaction([[alice, 'fa1'], [bob, 'fb1'], [alice, 'fa2'], [bob, 'fb2']]);
  await waitFor(() => a.got.some((r) => r.name === 'fa2'));
  await waitFor(() => b.got.some((r) => r.name === 'fb2'));
  assert.deepEqual(names(a.got), ['fa1', 'fa2']);
  assert.deepEqual(names(b.got), ['fb1', 'fb2']);
  // a later batch still reaches everyone who may see it, and anon never got a row
  await insertOneTransaction([[alice, 'fa3']]);
  await waitFor(() => a.got.some((r) => r.name === 'fa3'));
  assert.deepEqual(anon.got, []);
  for (const w of [anon, a, b]) w.c.realtime.disconnect();
});

test('many batches in a row: a subscriber gets every row once, in order within each transaction', T, async () => {
  const { alice, bob } = users;
  const a = await watch(alice.session.access_token, 'o-a');
  const b = await watch(bob.session.access_token, 'o-b');
  const want = { a: [], b: [] };
  const writes = [];
  for (let t = 0; t < 10; t++) {
    const rows = [];
    for (let i = 0; i < 5; i++) {
      rows.push([alice, `oa${t}.${i}`], [bob, `ob${t}.${i}`]);
      want.a.push(`oa${t}.${i}`);
      want.b.push(`ob${t}.${i}`);
    }
    writes.push(insertOneTransaction(rows));
  }
  await Promise.all(writes); // concurrent transactions: commit order is the feed's order
  await waitFor(() => a.got.length >= want.a.length && b.got.length >= want.b.length);
  const sorted = (xs) => [...xs].sort();
  assert.deepEqual(sorted(names(a.got)), sorted(want.a), 'every row once');
  assert.deepEqual(sorted(names(b.got)), sorted(want.b), 'every row once');
  // within each transaction, the rows arrive in insert order
  for (const got of [names(a.got), names(b.got)]) {
    const byTxn = new Map();
    for (const n of got) {
      const [t, i] = n.slice(2).split('.').map(Number);
      if (!byTxn.has(t)) byTxn.set(t, []);
      byTxn.get(t).push(i);
    }
    for (const is of byTxn.values()) assert.deepEqual(is, [0, 1, 2, 3, 4]);
  }
  for (const w of [a, b]) w.c.realtime.disconnect();
});

test('a long open transaction does not hold back the changes committed after it', T, async () => {
  const { alice } = users;
  const a = await watch(alice.session.access_token, 'l-a');
  await h.sql(server, 'create table if not exists public.test_release (k text)');
  // A transaction that takes an xid (its insert) and stays open until the test
  // releases it — like a big import's load.
  let longDone = false;
  const long = h
    .sql(
      server,
      `begin; insert into public.campaigns (user_id, name, type) values (${h.lit(alice.user.id)}::uuid, 'l-long', 'email');
       do $$ begin while not exists (select 1 from public.test_release where k = 'l') loop perform pg_sleep(0.05); end loop; end $$;
       commit;`,
    )
    .then(() => {
      longDone = true;
    });
  await h.eventually(
    async () => (await h.sql(server, "select count(*) from pg_stat_activity where backend_xid is not null and query like '%test_release where k%'")) !== '0',
    'the long transaction holds its xid',
  );
  await insertOneTransaction([[alice, 'l-after']]);
  await waitFor(() => a.got.some((r) => r.name === 'l-after'));
  assert.equal(longDone, false);
  assert.deepEqual(names(a.got), ['l-after'], 'the later commit arrives while the older transaction is open');
  await h.sql(server, "insert into public.test_release values ('l')");
  await long;
  await waitFor(() => a.got.some((r) => r.name === 'l-long'));
  // once the cursor passes both, neither arrives again
  await insertOneTransaction([[alice, 'l-end']]);
  await waitFor(() => a.got.some((r) => r.name === 'l-end'));
  assert.deepEqual(names(a.got), ['l-after', 'l-long', 'l-end']);
  a.c.realtime.disconnect();
});
