// The feed reads at most once per REALTIME_FEED_WINDOW_MS (issue 9): commits
// that wake it sooner after a read wait for the window's end and are read and
// checked together. Whatever the window, every subscriber gets each of its rows
// once, in commit order, and nothing of another user's; a commit that comes
// while the feed waits is not left behind. The longest window (1,000 ms) makes
// a burst of separate commits land in few reads; 0 reads on every wake-up; 10
// is the default. And an idle feed does not read in a loop: it reads on a
// wake-up or every 500 ms (counted as scans of realtime.changes over 5 s: a
// feed that read again at once after every read made thousands).
// No timing thresholds.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as h from './helpers.js';

const T = { timeout: 120000 };
const servers = [];

after(async () => {
  for (const s of servers) await s.stop();
});

async function waitFor(pred) {
  for (;;) {
    const v = pred();
    if (v) return v;
    await h.sleep(20);
  }
}

async function watch(server, token, name) {
  const c = h.client(server);
  await c.realtime.setAuth(token);
  const got = [];
  const ch = c.channel(name).on('postgres_changes', { event: 'INSERT', schema: 'public', table: 'campaigns' }, (p) => got.push(p.new.name));
  const [status, err] = await new Promise((resolve) => ch.subscribe((s, e) => s !== 'CLOSED' && resolve([s, e])));
  assert.equal(status, 'SUBSCRIBED', `subscribe failed: ${err && err.message}`);
  return { c, got };
}

const scans = async (server) =>
  Number(await h.sql(server, "select seq_scan + coalesce(idx_scan, 0) from pg_catalog.pg_stat_all_tables where relid = 'realtime.changes'::regclass"));

for (const windowMs of ['1000', '0', '10']) {
  test(`REALTIME_FEED_WINDOW_MS=${windowMs}: a burst of separate commits reaches each subscriber once, in commit order`, T, async () => {
    const server = await h.startServer({ REALTIME_FEED_WINDOW_MS: windowMs });
    servers.push(server);
    const alice = await h.signUpUser(server);
    const bob = await h.signUpUser(server);
    const a = await watch(server, alice.session.access_token, 'w-a');
    const b = await watch(server, bob.session.access_token, 'w-b');
    // one row first: after a quiet spell it is read at once, and the burst that
    // follows falls (with the long window) into the window that read opened
    await h.sql(server, `insert into public.campaigns (user_id, name, type) values (${h.lit(alice.user.id)}::uuid, 'first', 'email')`);
    await waitFor(() => a.got.includes('first'));
    // 30 transactions, one after another (one psql call; each begin ... commit is
    // its own transaction): 30 commits, 30 NOTIFYs
    const want = { a: ['first'], b: [] };
    const stmts = [];
    for (let i = 0; i < 30; i++) {
      const [u, key] = i % 3 === 2 ? [bob, 'b'] : [alice, 'a'];
      stmts.push(`begin; insert into public.campaigns (user_id, name, type) values (${h.lit(u.user.id)}::uuid, 'w${i}', 'email'); commit;`);
      want[key].push(`w${i}`);
    }
    await h.sql(server, stmts.join('\n'));
    await waitFor(() => a.got.length >= want.a.length && b.got.length >= want.b.length);
    // a commit after the burst still arrives (the feed does not stay asleep)
    await h.sql(server, `insert into public.campaigns (user_id, name, type) values (${h.lit(bob.user.id)}::uuid, 'last', 'email')`);
    await waitFor(() => b.got.includes('last'));
    assert.deepEqual(a.got, want.a, 'alice: every own row once, in commit order, none of bob');
    assert.deepEqual(b.got, want.b.concat('last'), 'bob: every own row once, in commit order, none of alice');
    // idle now: a backend that keeps working reports its counts every second
    await h.sleep(2000);
    const before = await scans(server);
    await h.sleep(5000);
    const idle = (await scans(server)) - before;
    assert.ok(idle < 50, `the idle feed read realtime.changes ${idle} times in 5 s (expected about 10)`);
    a.c.realtime.disconnect();
    b.c.realtime.disconnect();
  });
}
