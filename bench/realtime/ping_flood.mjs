// Realtime loop CPU under a ping flood: one raw WebSocket client sends pings
// (3x the 8 MiB output bound in pongs) and never reads. The server must stop
// reading it and, with its reads shut down and bytes left unread, must not
// spin on level-triggered EPOLLIN. Measures the CPU time of the server's
// realtime loop thread (cd-realtime) over SECONDS of wall time once the
// server has stopped reading, and prints the share of one core.
//
//   node bench/realtime/ping_flood.mjs           (SECONDS=5 by default)
// CAMPAIGND_BIN picks the binary (default build/campaignd). Goal: well under
// 25% of one core (an idle loop measures about 0%); a spinning loop takes
// ~100%. This was a timed assertion in tests/integration/realtime.test.js; a
// speed goal is a benchmark, so it lives here (the test keeps what can be
// asserted without a clock: the server stops reading and frees the socket).
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import * as h from '../../tests/integration/helpers.js';

const SECONDS = Number(process.env.SECONDS || 5);

function rawWs(server) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(server.port, '127.0.0.1');
    let buf = Buffer.alloc(0);
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = buf.subarray(0, end).toString('latin1');
      if (!/^HTTP\/1\.1 101 /.test(head)) reject(new Error(head));
      else resolve(sock);
    });
    sock.on('error', reject);
    const key = crypto.randomBytes(16).toString('base64');
    sock.write(`GET /realtime/v1/websocket?apikey=${server.anonKey}&vsn=1.0.0 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
  });
}

function pingFrame() {
  const payload = Buffer.alloc(125, 0x70);
  const key = crypto.randomBytes(4);
  const body = Buffer.from(payload.map((b, i) => b ^ key[i % 4]));
  return Buffer.concat([Buffer.from([0x89, 0x80 | 125]), key, body]);
}

/** CPU time (utime + stime, clock ticks) of the server's realtime loop thread. */
function loopTicks(pid) {
  const dir = `/proc/${pid}/task`;
  for (const tid of fs.readdirSync(dir)) {
    let comm = '';
    try {
      comm = fs.readFileSync(`${dir}/${tid}/comm`, 'utf8').trim();
    } catch {
      continue;
    }
    if (comm !== 'cd-realtime') continue;
    const stat = fs.readFileSync(`${dir}/${tid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(f[11]) + Number(f[12]); // fields 14 and 15
  }
  throw new Error('no cd-realtime thread');
}

const server = await h.startServer({ LOG_LEVEL: 'error' });
try {
  const sock = await rawWs(server);
  sock.pause(); // never read again, never close
  const chunk = Buffer.concat(Array(512).fill(pingFrame()));
  for (let sent = 0; sent < 3 * 8 * 1048576; sent += chunk.length) sock.write(chunk);
  // wait until what node still has to write stops shrinking: the server stopped reading
  let last = -1;
  for (;;) {
    await h.sleep(200);
    const w = sock.writableLength;
    if (w > 0 && w === last) break;
    last = w;
  }
  const t0 = loopTicks(server.process.pid);
  const w0 = Date.now();
  await h.sleep(SECONDS * 1000);
  const ticks = loopTicks(server.process.pid) - t0;
  const wallTicks = ((Date.now() - w0) / 1000) * 100; // USER_HZ = 100 on Linux
  const share = (100 * ticks) / wallTicks;
  console.log(`realtime loop CPU during a stalled ping flood: ${ticks} ticks in ${wallTicks.toFixed(0)} (${share.toFixed(1)}% of one core; goal < 25%)`);
  sock.destroy();
} finally {
  await server.stop();
}
