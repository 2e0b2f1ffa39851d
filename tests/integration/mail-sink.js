// A real SMTP server for the mail tests: smtp-sink.py (Debian's
// python3-aiosmtpd) on a free port, recording every message to files that
// these helpers read and decode (RFC 2047 headers, base64 MIME parts).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeDataDir } from './helpers.js';

const here = path.dirname(fileURLToPath(import.meta.url));

/** Decodes RFC 2047 encoded words (=?UTF-8?B?...?=), unfolding first. */
export function decodeHeader(v) {
  return v
    .replace(/\r?\n[ \t]/g, ' ')
    .replace(/\?=\s+=\?/g, '?==?')
    .replace(/=\?UTF-8\?B\?([^?]*)\?=/gi, (_, b) => Buffer.from(b, 'base64').toString('utf8'));
}

/** Parses one message as campaignd writes it: headers, text and html parts. */
export function parseMessage(raw) {
  const split = raw.indexOf('\r\n\r\n');
  const head = raw.slice(0, split);
  const body = raw.slice(split + 4);
  const headers = {};
  for (const line of head.replace(/\r\n[ \t]/g, ' ').split('\r\n')) {
    const i = line.indexOf(':');
    headers[line.slice(0, i).toLowerCase()] = line.slice(i + 1).trim();
  }
  const parts = {};
  const m = /boundary="([^"]+)"/.exec(headers['content-type'] || '');
  const decodePart = (p) => {
    const s = p.indexOf('\r\n\r\n');
    const ph = p.slice(0, s);
    const type = /Content-Type: ([^;\r\n]+)/i.exec(ph)?.[1];
    parts[type] = Buffer.from(p.slice(s + 4).replace(/\s+/g, ''), 'base64').toString('utf8');
  };
  if (m) {
    for (const p of body.split(`--${m[1]}`).slice(1)) if (!p.startsWith('--')) decodePart(p);
  } else {
    decodePart(`Content-Type: ${headers['content-type']}\r\n\r\n${body}`);
  }
  return {
    raw,
    headers,
    subject: decodeHeader(headers.subject || ''),
    from: decodeHeader(headers.from || ''),
    text: parts['text/plain'] || '',
    html: parts['text/html'] || '',
  };
}

/** Starts the sink: { port, url, dir, all(), waitFor(to, { after }), count(to), stop() }.
 * With `port`, listens there (a sink restarted where campaignd expects it);
 * `pipelining: false` leaves RFC 2920 PIPELINING out of its EHLO reply. */
export async function startSmtpSink({ port: fixedPort, pipelining = true } = {}) {
  const dir = makeDataDir('cd-smtp-');
  const args = [path.join(here, 'smtp-sink.py'), dir, ...(fixedPort ? [String(fixedPort)] : [])];
  const env = { ...process.env, SMTP_SINK_PIPELINING: pipelining ? '1' : '0' };
  const child = spawn('/usr/bin/python3', args, { stdio: ['pipe', 'pipe', 'inherit'], env });
  const port = await new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      const m = /PORT (\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    child.on('exit', (code) => reject(new Error(`smtp-sink.py exited with ${code}`)));
  });
  const all = () =>
    fs
      .readdirSync(dir)
      .filter((f) => f.endsWith('.json'))
      .sort()
      .map((f) => {
        const env = JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8'));
        const raw = fs.readFileSync(path.join(dir, f.replace(/\.json$/, '.eml')), 'utf8');
        return { ...env, ...parseMessage(raw) };
      });
  const forAddress = (to) => all().filter((m) => m.to.some((t) => t.toLowerCase() === to.toLowerCase()));
  return {
    port,
    pid: child.pid,
    dir,
    url: `smtp://127.0.0.1:${port}`,
    all,
    count: (to) => forAddress(to).length,
    /** The (after+1)-th mail to `to`, waiting up to 20 s for it. */
    async waitFor(to, { after = 0 } = {}) {
      for (let i = 0; i < 200; i++) {
        const got = forAddress(to);
        if (got.length > after) return got[after];
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error(`no mail for ${to} within 20 s (${forAddress(to).length} so far)`);
    },
    async stop() {
      child.stdin.end();
      child.kill('SIGTERM');
      await new Promise((r) => (child.exitCode !== null ? r() : child.on('exit', r)));
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The link and the 6-digit code of a mail. */
export function linkAndCode(mail) {
  const link = /(http:\/\/\S+\/auth\/v1\/verify\?\S+)/.exec(mail.text)?.[1];
  const code = /\b(\d{6})\b/.exec(mail.text)?.[1];
  return { link, code, token: link ? new URL(link).searchParams.get('token') : undefined };
}
