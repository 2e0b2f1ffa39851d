// campaignd serve supervises the embedded PostgreSQL it started (issue 9 §4):
// kill -9 of the postmaster under a write load. Meanwhile requests get 503 with
// Retry-After; the supervisor restarts the cluster (crash recovery replays the
// WAL) and requests succeed again without anyone's help; every row whose insert
// was answered 201 is still there; the server then stops cleanly.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { startServer, client, request, sql, sleep } from './helpers.js';

let server;

before(async () => {
  server = await startServer({ LOG_LEVEL: 'info' });
  await sql(server, 'create table public.sup_rows (id int primary key); grant all on public.sup_rows to service_role;');
  const service = client(server, server.serviceKey);
  for (let i = 0; i < 200; i++) {
    if (!(await service.from('sup_rows').select('id').limit(1)).error) break;
    await sleep(50);
  }
});

after(async () => {
  await server?.stop();
});

const postmasterPid = () =>
  Number(fs.readFileSync(path.join(server.dataDir, 'pg', 'postmaster.pid'), 'utf8').split('\n')[0]);

describe('supervised PostgreSQL', () => {
  it('kill -9 of the postmaster under load: 503 + Retry-After, back within seconds, no committed row lost', { timeout: 180000 }, async () => {
    const headers = {
      apikey: server.serviceKey, authorization: `Bearer ${server.serviceKey}`, prefer: 'return=minimal',
    };
    const url = `${server.url}/rest/v1/sup_rows`;
    let next = 0;
    let stop = false;
    let killed = false;
    let unavailableAfterKill = 0;
    let okAfterOutage = 0;
    const committed = [];
    const statuses = new Map();
    const retryAfter = [];
    const writer = async () => {
      while (!stop) {
        const id = next++;
        let r;
        try {
          r = await request(url, { method: 'POST', headers, body: { id } });
        } catch (e) {
          statuses.set(`error ${e.code}`, (statuses.get(`error ${e.code}`) || 0) + 1);
          continue;
        }
        statuses.set(r.status, (statuses.get(r.status) || 0) + 1);
        if (r.status === 201) {
          committed.push(id);
          if (unavailableAfterKill > 0) okAfterOutage++;
        } else if (r.status === 503) {
          if (killed) unavailableAfterKill++;
          retryAfter.push(r.headers['retry-after']);
          await sleep(50);
        }
      }
    };
    const writers = Array.from({ length: 4 }, writer);
    while (committed.length < 100) await sleep(20);

    const before = postmasterPid();
    process.kill(before, 'SIGKILL');
    killed = true;
    const t0 = Date.now();
    while (okAfterOutage < 20 && Date.now() - t0 < 120000) await sleep(50);
    const downMs = Date.now() - t0;
    stop = true;
    await Promise.all(writers);

    assert.ok(unavailableAfterKill > 0, 'requests saw the outage');
    assert.ok(okAfterOutage >= 20, `writes did not succeed again within 120 s (statuses ${JSON.stringify([...statuses])})`);
    for (const v of retryAfter) assert.ok(Number.isInteger(Number(v)) && Number(v) >= 1, `503 with Retry-After ${v}`);
    for (const k of statuses.keys()) assert.ok(k === 201 || k === 503, `unexpected answer ${k} (${JSON.stringify([...statuses])})`);

    const after = postmasterPid();
    assert.notEqual(after, before, 'a new postmaster runs');
    const log = server.log();
    assert.match(log, new RegExp(`embedded PostgreSQL \\(pid ${before}\\) is gone \\(killed by signal 9\\); restarting it`));
    assert.match(log, new RegExp(`embedded PostgreSQL restarted \\(pid ${after}, attempt \\d+\\)`));

    const stored = new Set((await sql(server, 'select id from public.sup_rows')).split('\n').map(Number));
    const lost = committed.filter((id) => !stored.has(id));
    assert.deepEqual(lost, [], `${lost.length} of ${committed.length} committed rows are lost`);
    // (a worker that has not served since the outage answers 503 once, then reconnects)
    let ready;
    for (let i = 0; i < 100; i++) {
      ready = await request(`${server.url}/ready`);
      if (ready.status === 200) break;
      await sleep(100);
    }
    assert.equal(ready.status, 200);
    console.log(`# back after ${downMs} ms; ${committed.length} rows committed; answers ${JSON.stringify([...statuses])}`);
  });
});

describe('two serve processes on one data directory', () => {
  const pidOf = (dir) => {
    try {
      return Number(fs.readFileSync(path.join(dir, 'pg', 'postmaster.pid'), 'utf8').split('\n')[0]);
    } catch {
      return 0;
    }
  };
  it('the first to stop leaves the cluster to the other, which takes over supervision; the last one stops it', { timeout: 240000 }, async () => {
    const a = await startServer({ LOG_LEVEL: 'info' });
    const dir = a.dataDir;
    let b;
    try {
      b = await startServer({ CAMPAIGND_DATA_DIR: dir, LOG_LEVEL: 'info' });
      const first = pidOf(dir);
      assert.ok(first > 0);
      await a.stop({ removeData: false });
      assert.equal(pidOf(dir), first, 'the cluster still runs for the other process');
      process.kill(first, 0); // throws if the postmaster is gone
      assert.equal((await request(`${b.url}/ready`)).status, 200, 'the other process still serves');

      // the remaining process supervises now: a crash is repaired
      process.kill(first, 'SIGKILL');
      const t0 = Date.now();
      let back = false;
      while (!back && Date.now() - t0 < 120000) {
        await sleep(200);
        const now = pidOf(dir);
        back = now > 0 && now !== first && (await request(`${b.url}/ready`).catch(() => ({ status: 0 }))).status === 200;
      }
      assert.ok(back, 'the remaining process restarted the cluster');
      const second = pidOf(dir);
      await b.stop({ removeData: false });
      b = null;
      assert.equal(fs.existsSync(path.join(dir, 'pg', 'postmaster.pid')), false, 'the last process stopped the cluster');
      assert.throws(() => process.kill(second, 0), 'the postmaster is gone');
    } finally {
      if (b) await b.stop({ removeData: false });
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
