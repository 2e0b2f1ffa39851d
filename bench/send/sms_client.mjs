// The minimal client of bench/send/sms.mjs, in a process of its own: posts
// one create-Message request per parameter object of LIST (a JSON array: the
// parameters campaignd sends) to the Twilio-shaped server at URL, form-encoded
// with HTTP basic auth as campaignd does, over CONNECTIONS keep-alive
// connections (node:http, one request at a time on each), and prints
// "SECONDS <wall time>".
//
// Its own process, as campaignd is: run inside the bench's process it would
// share one event loop (one CPU) with the fake server it measures, and the
// ceiling would be that of client and server taking turns on one thread.
//
// Usage: node sms_client.mjs URL ACCOUNT_SID AUTH_TOKEN LIST CONNECTIONS
import fs from 'node:fs';
import http from 'node:http';

const [url, sid, token, listArg, connArg] = process.argv.slice(2);
// encoded before the clock starts, as campaignd's messages are rendered before they leave
const bodies = JSON.parse(fs.readFileSync(listArg, 'utf8')).map((p) => new URLSearchParams(p).toString());
const N = bodies.length;
const CONNECTIONS = Number(connArg);
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
const t0 = process.hrtime.bigint();
await Promise.all(Array.from({ length: CONNECTIONS }, async () => { while (next < N) await one(next++); }));
agent.destroy();
console.log(`SECONDS ${(Number(process.hrtime.bigint() - t0) / 1e9).toFixed(3)}`);
