// CPU per password sign-in (POST /auth/v1/token?grant_type=password), the
// load-robust companion of bench/run.sh's "signin" part: that part's ratio is
// the server's rate against a raw bcrypt rate measured at another moment, and
// on a shared 2-CPU machine the two readings move apart by ±40 % run to run.
// This one starts a server on a throwaway data directory, signs one user in
// N times (default 300) over C concurrent connections (default 64), and
// prints the CPU time (user + system) of campaignd and of its PostgreSQL
// processes per sign-in, which the machine's other work hardly moves.
//
//   CAMPAIGND_BIN=build/campaignd node bench/auth/signin-cpu.mjs
//   N=600 C=8 CAMPAIGND_BIN=… node bench/auth/signin-cpu.mjs
//
// BCRYPT_COST is 10 (the tests' cost), so compare builds with the same one.
import os from 'node:os';
import { startServer, signUpUser, request, PASSWORD } from '../../tests/integration/helpers.js';
import { cpuSeconds } from '../send/cpu.mjs';

const N = Number(process.env.N || 300);
const C = Number(process.env.C || 64);

const server = await startServer({ BCRYPT_COST: '10' });
try {
  const { email } = await signUpUser(server);
  const url = `${server.url}/auth/v1/token?grant_type=password`;
  const signIn = () =>
    request(url, {
      method: 'POST',
      headers: { apikey: server.anonKey, 'content-type': 'application/json' },
      body: JSON.stringify({ email, password: PASSWORD }),
    });
  for (let i = 0; i < 10; i++) await signIn(); // warm: connections, caches
  const before = cpuSeconds(server.process.pid, server.dataDir);
  const t0 = Date.now();
  let next = 0;
  let failed = 0;
  await Promise.all(
    Array.from({ length: C }, async () => {
      while (next < N) {
        next++;
        const r = await signIn();
        if (r.status !== 200) failed++;
      }
    }),
  );
  const after = cpuSeconds(server.process.pid, server.dataDir);
  const seconds = (Date.now() - t0) / 1000;
  const us = (k) => Math.round(((after[k] - before[k]) * 1e6) / N);
  console.log(
    JSON.stringify({
      bin: process.env.CAMPAIGND_BIN || 'build/campaignd',
      sign_ins: N,
      connections: C,
      failed,
      per_second: +(N / seconds).toFixed(1),
      cpu_us_per_sign_in: { campaignd: us('campaignd'), postgres: us('postgres') },
      load: os.loadavg()[0].toFixed(1),
    }),
  );
  if (failed) process.exitCode = 1;
} finally {
  await server.stop();
}
