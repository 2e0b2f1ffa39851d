// The send benches (bench/send/*.mjs, bench/README.md) at a tiny size: they
// read the engine's internals (its functions, tables and settings) and no
// other test runs them, so a change of the schema that breaks one would
// otherwise show only when someone measures. Each must end with its JSON
// line, and what it reports must hold: no message twice, the ratio and the
// rates measured, the roll-up reading what its run is about.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

function bench(script, env) {
  return new Promise((resolve, reject) => {
    execFile('node', [path.join(root, 'bench', 'send', script)],
      { cwd: root, env: { ...process.env, ...env }, timeout: 170000, maxBuffer: 16 << 20 },
      (err, stdout, stderr) => {
        if (err) return reject(new Error(`${script}: ${err.message}\n${stderr.slice(-2000)}`));
        const line = stdout.trim().split('\n').pop();
        try {
          resolve(JSON.parse(line));
        } catch {
          reject(new Error(`${script} printed no JSON line: ${stdout.slice(-500)}\n${stderr.slice(-1000)}`));
        }
      });
  });
}

describe('send benches, tiny', () => {
  it('sms.mjs: every SMS once, both rates and the ratio', async () => {
    const r = await bench('sms.mjs', { N: '120' });
    assert.equal(r.n, 120);
    assert.equal(r.duplicates, 0);
    assert.ok(r.campaignd_sms_per_s > 0 && r.minimal_client_sms_per_s > 0, JSON.stringify(r));
    assert.ok(r.ratio > 0, JSON.stringify(r));
    assert.ok(r.cpu_us_per_msg.postgres > 0, JSON.stringify(r.cpu_us_per_msg));
  });

  it('run.mjs: every e-mail once, both rates and the ratio', async () => {
    const r = await bench('run.mjs', { BENCH_SEND_RECIPIENTS: '120' });
    assert.equal(r.duplicates, 0);
    assert.ok(r.campaignd_msg_per_s > 0 && r.minimal_client_msg_per_s > 0, JSON.stringify(r));
    assert.ok(r.ratio > 0, JSON.stringify(r));
  });

  it('floor.mjs: the bare row work of a send', async () => {
    const r = await bench('floor.mjs', { N: '400' });
    assert.equal(r.n, 400);
    for (const k of ['insert', 'settle', 'both'])
      assert.ok(Number.isFinite(r.postgres_cpu_us_per_msg[k]), `${k}: ${JSON.stringify(r)}`);
  });

  it('rollup.mjs: the old run reads every message, the new one the marked campaign only, an idle one none', async () => {
    // (20 campaigns: on a table of a few hundred rows the planner rightly
    // reads it whole whatever the query)
    const r = await bench('rollup.mjs', { C: '20', M: '200', R: '1' });
    assert.equal(r.messages, 4000);
    const m = r.median_ms_and_message_rows_read;
    assert.equal(Number(m.old.rows), 4000, JSON.stringify(m));
    assert.equal(Number(m.due.rows), 200, JSON.stringify(m));
    assert.equal(Number(m.idle.rows), 0, JSON.stringify(m));
  });
});
