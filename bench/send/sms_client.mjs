// The minimal client of bench/send/sms.mjs, in a process of its own: posts
// one create-Message request per parameter object of LIST (a JSON array: the
// parameters campaignd sends) to the Twilio-shaped server at URL, form-encoded
// with HTTP basic auth as campaignd does, over CONNECTIONS keep-alive
// connections (node:http, one request at a time on each), after an untimed
// warm-up, and prints "SECONDS <wall time> CPU_US <its own CPU time>" (user +
// system of this process over the timed requests: the client's side of the
// budget that campaignd + PostgreSQL are held against).
//
// Its own process, as campaignd is: run inside the bench's process it shared
// one event loop with the fake server it measures, which handled each answer
// and the next request in the same turn, with no wake-up of another process
// on either side: a ceiling no separate client (campaignd included) can
// reach (bench/RESULTS.md, send-c2).
//
// Usage: node sms_client.mjs URL ACCOUNT_SID AUTH_TOKEN LIST CONNECTIONS
import fs from 'node:fs';
import http from 'node:http';

const [url, sid, token, listArg, connArg] = process.argv.slice(2);
// encoded before the clock starts, as campaignd's messages are rendered before they leave
const bodies = JSON.parse(fs.readFileSync(listArg, 'utf8')).map((p) => new URLSearchParams(p).toString());
const N = bodies.length;
const CONNECTIONS = Number(connArg);
const WARMUP = 1000;
const agent = new http.Agent({ keepAlive: true, maxSockets: CONNECTIONS });
const auth = 'Basic ' + Buffer.from(`${sid}:${token}`).toString('base64');
const u = new URL(`${url}/2010-04-01/Accounts/${sid}/Messages.json`);
let next = 0;
const one = (i) => new Promise((resolve, reject) => {
  const body = bodies[i];
  const req = http.request({ host: u.hostname, port: u.port, path: u.pathname, method: 'POST', agent,
    headers: { Authorization: auth, 'Content-Type': 'application/x-www-form-urlencoded', 'Content-Length': Buffer.byteLength(body) } },
  (res) => { res.resume(); res.on('end', () => (res.statusCode === 201 ? resolve() : reject(new Error(`HTTP ${res.statusCode}`)))); });
  req.on('error', reject);
  req.end(body);
});
const pass = async (n) => {
  next = 0;
  await Promise.all(Array.from({ length: CONNECTIONS }, async () => { while (next < n) await one(next++); }));
};
// Warm-up, untimed: the first WARMUP requests once (the server counts them
// too; the bench only looks at campaignd's). A fresh node process runs its
// first requests interpreted, not yet compiled: its first half of 5,000 took
// 1.7-3.5x the second half's time. Unwarmed, the reference would measure
// this client's start, not the server's ceiling. The connections stay open
// (keep-alive), as campaignd's workers keep theirs.
await pass(Math.min(N, WARMUP));
const c0 = process.cpuUsage();
const t0 = process.hrtime.bigint();
await pass(N);
const c1 = process.cpuUsage(c0);
agent.destroy();
console.log(`SECONDS ${(Number(process.hrtime.bigint() - t0) / 1e9).toFixed(3)} CPU_US ${c1.user + c1.system}`);
