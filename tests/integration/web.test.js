// The dashboard's static files (src/web/web.c): index.html with the CSP and
// no-cache, /config.js with the anon key at run time, hashed assets cached for
// a year and sent gzipped when accepted, and every way out of WEB_DIR refused
// (dot segments raw and encoded, hidden files, symbolic links).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { startServer, request, rawHttp, statusLines, makeDataDir } from './helpers.js';

const SECRET = 'TOP-SECRET-OUTSIDE-WEB-DIR';
let server, noWeb, webDir;

before(async () => {
  const top = makeDataDir('cd-web-');
  webDir = path.join(top, 'web');
  fs.mkdirSync(path.join(webDir, 'assets'), { recursive: true });
  fs.writeFileSync(path.join(top, 'secret.txt'), SECRET);
  fs.writeFileSync(path.join(webDir, 'secret.txt'), SECRET); // not under assets/: never served either
  fs.writeFileSync(path.join(webDir, 'index.html'), '<!doctype html><title>dash</title><script type="module" src="/assets/app-ABCD2345.js"></script>');
  const js = 'console.log("dashboard");\n'.repeat(50);
  fs.writeFileSync(path.join(webDir, 'assets', 'app-ABCD2345.js'), js);
  fs.writeFileSync(path.join(webDir, 'assets', 'app-ABCD2345.js.gz'), zlib.gzipSync(js));
  fs.writeFileSync(path.join(webDir, 'assets', 'plain.css'), 'body{}');
  fs.writeFileSync(path.join(webDir, 'assets', '.hidden'), SECRET);
  fs.symlinkSync(path.join(top, 'secret.txt'), path.join(webDir, 'assets', 'link.js'));
  fs.mkdirSync(path.join(webDir, 'assets', 'dir.js'));
  [server, noWeb] = await Promise.all([startServer({ WEB_DIR: webDir }), startServer({ WEB_DIR: path.join(top, 'missing') })]);
});
after(async () => { await Promise.all([server?.stop(), noWeb?.stop()]); });

describe('the dashboard files', () => {
  it('serves index.html at / with a strict CSP, no-cache and no framing', async () => {
    const r = await request(`${server.url}/`);
    assert.equal(r.status, 200);
    assert.match(r.headers['content-type'], /^text\/html/);
    assert.match(r.text, /<title>dash<\/title>/);
    assert.equal(r.headers['cache-control'], 'no-cache');
    const csp = r.headers['content-security-policy'];
    assert.match(csp, /default-src 'self'/);
    assert.match(csp, /script-src 'self';/, 'no unsafe-inline, no other host');
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval|\*/);
    assert.match(csp, new RegExp(`connect-src 'self' ws://127\\.0\\.0\\.1:${server.port} wss://127\\.0\\.0\\.1:${server.port}`));
    assert.match(csp, /frame-ancestors 'none'/);
    assert.equal(r.headers['x-content-type-options'], 'nosniff');
    assert.equal(r.headers['x-frame-options'], 'DENY');
    assert.equal(r.headers['referrer-policy'], 'no-referrer');
    assert.equal(r.headers['cross-origin-opener-policy'], 'same-origin');
  });

  it('keeps a hostile Host header out of the CSP', async () => {
    const r = await request(`${server.url}/`, { headers: { Host: "evil.example; script-src 'unsafe-inline'" } });
    assert.equal(r.status, 200);
    assert.doesNotMatch(r.headers['content-security-policy'], /evil|unsafe-inline/);
    assert.match(r.headers['content-security-policy'], /connect-src 'self'$/);
  });

  it('delivers the anon key at run time in /config.js, never the service key', async () => {
    const r = await request(`${server.url}/config.js`);
    assert.equal(r.status, 200);
    assert.match(r.headers['content-type'], /^text\/javascript/);
    assert.equal(r.headers['cache-control'], 'no-cache');
    const m = /^window\.CAMPAIGND = (\{.*\});\n$/.exec(r.text);
    assert.ok(m, r.text);
    assert.deepEqual(JSON.parse(m[1]), { anonKey: server.anonKey });
    assert.ok(!r.text.includes(server.serviceKey));
  });

  it('caches hashed assets for a year and sends the gzipped copy to clients that take it', async () => {
    const plain = await request(`${server.url}/assets/app-ABCD2345.js`);
    assert.equal(plain.status, 200);
    assert.match(plain.headers['content-type'], /^text\/javascript/);
    assert.equal(plain.headers['cache-control'], 'public, max-age=31536000, immutable');
    assert.equal(plain.headers['content-encoding'], undefined);
    assert.match(plain.text, /dashboard/);
    const gz = await request(`${server.url}/assets/app-ABCD2345.js`, { headers: { 'Accept-Encoding': 'br, gzip' } });
    assert.equal(gz.headers['content-encoding'], 'gzip');
    assert.equal(Number(gz.headers['content-length']), fs.statSync(path.join(webDir, 'assets', 'app-ABCD2345.js.gz')).size);
    assert.match(gz.headers.vary, /Accept-Encoding/);
    const refused = await request(`${server.url}/assets/app-ABCD2345.js`, { headers: { 'Accept-Encoding': 'gzip;q=0' } });
    assert.equal(refused.headers['content-encoding'], undefined);
    const unhashed = await request(`${server.url}/assets/plain.css`);
    assert.equal(unhashed.status, 200);
    assert.equal(unhashed.headers['cache-control'], 'no-cache');
  });

  it('refuses every way out of WEB_DIR/assets', async () => {
    const paths = [
      '/assets/../secret.txt', '/assets/../../secret.txt', '/assets/..%2fsecret.txt', '/assets/..%2f..%2fsecret.txt',
      '/assets/%2e%2e/secret.txt', '/assets/%2e%2e%2fsecret.txt', '/assets/.hidden', '/assets/link.js', '/assets/dir.js',
      '/assets/..', '/assets/%2e%2e', '/assets/', '/secret.txt', '/index.html/../secret.txt',
      '/assets/..\\secret.txt', '/assets/%5c..%5csecret.txt',
    ];
    for (const p of paths) {
      const { text } = await rawHttp(server.port, `GET ${p} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
      const [status] = statusLines(text);
      assert.ok(status >= 400 && status < 500, `${p}: ${text.slice(0, 200)}`);
      assert.ok(!text.includes(SECRET), `${p} leaked the file`);
    }
    // A NUL ends the path where the HTTP library decodes it: it can shorten a
    // name to another asset, never reach past the checks.
    for (const p of ['/assets/link.js%00', '/assets/%2e%2e%00/secret.txt', '/assets/.hidden%00.js']) {
      const { text } = await rawHttp(server.port, `GET ${p} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
      assert.ok(!text.includes(SECRET), `${p} leaked the file`);
    }
  });

  it('takes only GET and HEAD, and leaves the API paths alone', async () => {
    const post = await request(`${server.url}/assets/app-ABCD2345.js`, { method: 'POST', body: {} });
    assert.equal(post.status, 405);
    const head = await request(`${server.url}/`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.text, '');
    const health = await request(`${server.url}/health`);
    assert.equal(health.json.status, 'ok');
    const unknown = await request(`${server.url}/nope`);
    assert.equal(unknown.status, 404);
    assert.equal(unknown.json.code, 'not_found');
  });

  it('says how to build the dashboard when WEB_DIR has none', async () => {
    const r = await request(`${noWeb.url}/`);
    assert.equal(r.status, 404);
    assert.equal(r.json.code, 'web_not_built');
    assert.match(r.json.hint, /make build/);
    assert.equal((await request(`${noWeb.url}/assets/app-ABCD2345.js`)).status, 404);
  });
});
