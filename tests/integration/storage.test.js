// Storage (/storage/v1) with the real @supabase/supabase-js: every call
// storage-js offers, row-level security on storage.objects (user B cannot read
// or overwrite user A's folder), public and signed URLs fetched without
// headers, signed-URL expiry, traversal attempts refused, HTML served as an
// attachment, and a 100 MB streamed upload with flat server memory.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import {
  startServer, client, signUpUser, signIn, noError, request, sql, signJwt, jwtSecret, sleep,
  uniqueEmail, PASSWORD,
} from './helpers.js';

let server;
let service; // service_role client
let alice; // { client, user }
let bob;
let admin;
const text = async (blob) => Buffer.from(await blob.arrayBuffer()).toString('utf8');

/** Asserts a storage-js error with Storage's statusCode string. */
function storageError(res, statusCode, what) {
  assert.ok(res.error, `${what}: expected an error, got data ${JSON.stringify(res.data)?.slice(0, 200)}`);
  assert.equal(res.error.statusCode, statusCode, `${what}: ${res.error.message}`);
}

/** VmRSS of a process in kB. */
function rssKb(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m[1]);
}

before(async () => {
  const adminEmail = uniqueEmail('admin');
  server = await startServer({
    STORAGE_MAX_FILE_BYTES: String(200 * 1024 * 1024),
    CAMPAIGND_ADMIN_EMAIL: adminEmail,
    CAMPAIGND_ADMIN_PASSWORD: PASSWORD,
  });
  service = client(server, server.serviceKey);
  alice = await signUpUser(server);
  bob = await signUpUser(server);
  admin = await signIn(server, adminEmail);
  for (const [id, opts] of [
    ['docs', { public: false }],
    ['pub', { public: true }],
    ['imgs', { public: false, fileSizeLimit: '1KB', allowedMimeTypes: ['image/*'] }],
    ['big', { public: false }],
  ]) {
    const r = await service.storage.createBucket(id, opts);
    noError(r.error, `createBucket(${id})`);
    assert.deepEqual(r.data, { name: id });
  }
});

after(async () => {
  await server?.stop();
});

describe('buckets', () => {
  it('getBucket and listBuckets show the settings', async () => {
    const g = await service.storage.getBucket('imgs');
    noError(g.error, 'getBucket');
    assert.equal(g.data.id, 'imgs');
    assert.equal(g.data.name, 'imgs');
    assert.equal(g.data.public, false);
    assert.equal(g.data.file_size_limit, 1000);
    assert.deepEqual(g.data.allowed_mime_types, ['image/*']);
    assert.ok(g.data.created_at && g.data.updated_at);
    const l = await service.storage.listBuckets();
    noError(l.error, 'listBuckets');
    assert.deepEqual(l.data.map((b) => b.id).sort(), ['big', 'docs', 'exports', 'imgs', 'imports', 'pub']);
    const s = await service.storage.listBuckets({ search: 'pu', limit: 5, offset: 0, sortColumn: 'name', sortOrder: 'desc' });
    noError(s.error, 'listBuckets(search)');
    assert.deepEqual(s.data.map((b) => b.id), ['pub']);
    const page = await service.storage.listBuckets({ limit: 2, offset: 1, sortColumn: 'name', sortOrder: 'asc' });
    assert.deepEqual(page.data.map((b) => b.id), ['docs', 'exports']);
    storageError(await service.storage.getBucket('nope'), '404', 'missing bucket');
  });

  it('anon sees public buckets only; signed-in users see all', async () => {
    const anon = await client(server).storage.listBuckets();
    noError(anon.error, 'anon listBuckets');
    assert.deepEqual(anon.data.map((b) => b.id), ['pub']);
    const a = await alice.client.storage.listBuckets();
    assert.equal(a.data.length, 6); // with the private 'imports' bucket of migration 021
  });

  it('createBucket: duplicates are 409, non-admins are refused, names are checked', async () => {
    storageError(await service.storage.createBucket('docs'), '409', 'duplicate');
    storageError(await alice.client.storage.createBucket('mine'), '403', 'user creates a bucket');
    storageError(await service.storage.createBucket('../etc'), '400', 'bad name');
    storageError(await service.storage.createBucket('sign'), '400', 'reserved name');
    const r = await admin.client.storage.createBucket('admin-made', { public: false });
    noError(r.error, 'admin createBucket');
  });

  it('updateBucket, emptyBucket and deleteBucket', async () => {
    noError((await service.storage.createBucket('tmpb', { public: false })).error);
    const u = await service.storage.updateBucket('tmpb', { public: true, fileSizeLimit: 2048, allowedMimeTypes: ['text/plain'] });
    noError(u.error, 'updateBucket');
    assert.deepEqual(u.data, { message: 'Successfully updated' });
    const g = await service.storage.getBucket('tmpb');
    assert.equal(g.data.public, true);
    assert.equal(g.data.file_size_limit, 2048);
    storageError(await service.storage.updateBucket('nope', { public: true }), '404', 'update missing');
    storageError(await alice.client.storage.updateBucket('tmpb', { public: false }), '404', 'user updates');
    noError((await service.storage.from('tmpb').upload('a.txt', 'x', { contentType: 'text/plain' })).error);
    storageError(await service.storage.deleteBucket('tmpb'), '409', 'delete non-empty');
    const e = await service.storage.emptyBucket('tmpb');
    noError(e.error, 'emptyBucket');
    assert.deepEqual(e.data, { message: 'Successfully emptied' });
    const d = await service.storage.deleteBucket('tmpb');
    noError(d.error, 'deleteBucket');
    assert.deepEqual(d.data, { message: 'Successfully deleted' });
    storageError(await service.storage.getBucket('tmpb'), '404', 'deleted bucket');
  });
});

describe('objects', () => {
  const a = (p) => `${alice.user.id}/${p}`;

  it('upload a Blob (multipart) and download it', async () => {
    const r = await alice.client.storage.from('docs').upload(a('hello.txt'), new Blob(['hello world'], { type: 'text/plain' }));
    noError(r.error, 'upload');
    assert.equal(r.data.path, a('hello.txt'));
    assert.equal(r.data.fullPath, `docs/${a('hello.txt')}`);
    assert.match(r.data.id, /^[0-9a-f-]{36}$/);
    const d = await alice.client.storage.from('docs').download(a('hello.txt'));
    noError(d.error, 'download');
    assert.equal(await text(d.data), 'hello world');
    const row = await sql(server, `select metadata->>'mimetype', metadata->>'size', metadata->>'cacheControl', metadata->>'eTag', owner from storage.objects where name = '${a('hello.txt')}'`);
    const md5 = crypto.createHash('md5').update('hello world').digest('hex');
    assert.equal(row, `text/plain|11|max-age=3600|"${md5}"|${alice.user.id}`);
  });

  it('upload without upsert refuses an existing object; upsert and update replace it', async () => {
    storageError(await alice.client.storage.from('docs').upload(a('hello.txt'), Buffer.from('again')), '409', 'duplicate upload');
    const up = await alice.client.storage.from('docs').upload(a('hello.txt'), Buffer.from('second'), { upsert: true, contentType: 'text/plain' });
    noError(up.error, 'upsert');
    assert.equal(await text((await alice.client.storage.from('docs').download(a('hello.txt'))).data), 'second');
    const upd = await alice.client.storage.from('docs').update(a('hello.txt'), new Blob(['third']));
    noError(upd.error, 'update');
    assert.equal(await text((await alice.client.storage.from('docs').download(a('hello.txt'))).data), 'third');
    // the replaced versions' bytes are gone: one file per object on disk
    const versions = await sql(server, `select count(*) from storage.objects where name = '${a('hello.txt')}'`);
    assert.equal(versions, '1');
    const objDir = path.join(server.dataDir, 'storage', 'objects');
    const files = fs.readdirSync(objDir).flatMap((d) => fs.readdirSync(path.join(objDir, d)));
    const live = (await sql(server, 'select version from storage.objects')).split('\n').filter(Boolean);
    assert.deepEqual(files.sort(), live.sort());
  });

  it('raw uploads keep content type, cache-control and user metadata', async () => {
    const r = await alice.client.storage.from('docs').upload(a('data.json'), Buffer.from('{"a":1}'), {
      contentType: 'application/json', cacheControl: '60', metadata: { team: 'x' },
    });
    noError(r.error, 'raw upload');
    const res = await request(`${server.url}/storage/v1/object/authenticated/docs/${a('data.json')}`, {
      headers: { Authorization: `Bearer ${alice.session.access_token}` },
    });
    assert.equal(res.status, 200);
    assert.equal(res.text, '{"a":1}');
    assert.equal(res.headers['content-type'], 'application/json');
    assert.equal(res.headers['cache-control'], 'max-age=60');
    assert.ok(res.headers.etag);
    assert.equal(res.headers['x-content-type-options'], 'nosniff');
    const info = await alice.client.storage.from('docs').info(a('data.json'));
    noError(info.error, 'info');
    assert.equal(info.data.contentType, 'application/json');
    assert.equal(info.data.size, 7);
    assert.deepEqual(info.data.metadata, { team: 'x' });
    const ex = await alice.client.storage.from('docs').exists(a('data.json'));
    assert.equal(ex.data, true);
    const no = await alice.client.storage.from('docs').exists(a('nothing.json'));
    assert.equal(no.data, false);
  });

  it('range requests and If-None-Match', async () => {
    const url = `${server.url}/storage/v1/object/docs/${a('data.json')}`;
    const auth = { Authorization: `Bearer ${alice.session.access_token}` };
    const part = await request(url, { headers: { ...auth, Range: 'bytes=1-3' } });
    assert.equal(part.status, 206);
    assert.equal(part.text, '"a"');
    assert.equal(part.headers['content-range'], 'bytes 1-3/7');
    const bad = await request(url, { headers: { ...auth, Range: 'bytes=100-' } });
    assert.equal(bad.status, 416);
    const full = await request(url, { headers: auth });
    const cached = await request(url, { headers: { ...auth, 'If-None-Match': full.headers.etag } });
    assert.equal(cached.status, 304);
  });

  it('bucket limits: size (413) and MIME types (415)', async () => {
    const me = alice.user.id;
    storageError(await alice.client.storage.from('imgs').upload(`${me}/a.txt`, Buffer.from('x'), { contentType: 'text/plain' }), '415', 'mime');
    storageError(await alice.client.storage.from('imgs').upload(`${me}/b.png`, new Blob(['x'], { type: 'text/plain' })), '415', 'multipart mime');
    storageError(await alice.client.storage.from('imgs').upload(`${me}/big.png`, Buffer.alloc(1500), { contentType: 'image/png' }), '413', 'size');
    storageError(await alice.client.storage.from('imgs').upload(`${me}/big2.png`, new Blob([Buffer.alloc(1500)], { type: 'image/png' })), '413', 'multipart size');
    noError((await alice.client.storage.from('imgs').upload(`${me}/ok.png`, Buffer.alloc(900), { contentType: 'image/png' })).error);
    storageError(await alice.client.storage.from('nope').upload(`${me}/x`, 'x'), '404', 'missing bucket');
  });

  it('list with prefix, limit, offset, sortBy and search', async () => {
    const s = alice.client.storage.from('docs');
    for (const n of ['list/b.txt', 'list/a.txt', 'list/c.md', 'list/sub/d.txt', 'list/sub2/e.txt'])
      noError((await s.upload(a(n), Buffer.from(n), { contentType: 'text/plain' })).error, n);
    const all = await s.list(a('list'));
    noError(all.error, 'list');
    assert.deepEqual(all.data.map((o) => o.name), ['sub', 'sub2', 'a.txt', 'b.txt', 'c.md']);
    assert.equal(all.data[0].id, null);
    assert.equal(all.data[0].metadata, null);
    assert.match(all.data[2].id, /^[0-9a-f-]{36}$/);
    assert.equal(all.data[2].metadata.size, 'list/a.txt'.length);
    const desc = await s.list(a('list'), { sortBy: { column: 'name', order: 'desc' } });
    assert.deepEqual(desc.data.map((o) => o.name), ['sub2', 'sub', 'c.md', 'b.txt', 'a.txt']);
    const page = await s.list(a('list'), { limit: 2, offset: 2 });
    assert.deepEqual(page.data.map((o) => o.name), ['a.txt', 'b.txt']);
    const search = await s.list(a('list'), { search: 'b' });
    assert.deepEqual(search.data.map((o) => o.name), ['b.txt']);
    const top = await s.list('');
    assert.deepEqual(top.data.map((o) => o.name), [alice.user.id]);
    const wild = await s.list(a('list'), { search: '%' });
    assert.deepEqual(wild.data, []);
  });

  it('move, copy and remove', async () => {
    const s = alice.client.storage.from('docs');
    noError((await s.upload(a('m/src.txt'), Buffer.from('moving'), { contentType: 'text/plain' })).error);
    const mv = await s.move(a('m/src.txt'), a('m/dst.txt'));
    noError(mv.error, 'move');
    assert.equal(mv.data.message, 'Successfully moved');
    storageError(await s.download(a('m/src.txt')), '404', 'moved source');
    assert.equal(await text((await s.download(a('m/dst.txt'))).data), 'moving');
    const cp = await s.copy(a('m/dst.txt'), a('m/copy.txt'));
    noError(cp.error, 'copy');
    assert.equal(cp.data.path, `docs/${a('m/copy.txt')}`);
    assert.equal(await text((await s.download(a('m/copy.txt'))).data), 'moving');
    storageError(await s.copy(a('m/dst.txt'), a('m/copy.txt')), '409', 'copy onto existing');
    storageError(await s.move(a('m/none.txt'), a('m/x.txt')), '404', 'move missing');
    const rm = await s.remove([a('m/dst.txt'), a('m/copy.txt'), a('m/never.txt')]);
    noError(rm.error, 'remove');
    assert.deepEqual(rm.data.map((o) => o.name).sort(), [a('m/copy.txt'), a('m/dst.txt')]);
    storageError(await s.download(a('m/copy.txt')), '404', 'removed');
  });

  it('getPublicUrl works without headers on public buckets only', async () => {
    noError((await service.storage.from('pub').upload('img/logo.txt', Buffer.from('public bytes'), { contentType: 'text/plain' })).error);
    const { data } = service.storage.from('pub').getPublicUrl('img/logo.txt');
    const res = await fetch(data.publicUrl);
    assert.equal(res.status, 200);
    assert.equal(await res.text(), 'public bytes');
    const dl = service.storage.from('pub').getPublicUrl('img/logo.txt', { download: 'name.txt' });
    const res2 = await fetch(dl.data.publicUrl);
    assert.match(res2.headers.get('content-disposition'), /^attachment; filename="name\.txt"/);
    const priv = service.storage.from('docs').getPublicUrl(`${alice.user.id}/data.json`);
    const res3 = await fetch(priv.data.publicUrl);
    assert.equal(res3.status, 400);
    assert.equal((await res3.json()).statusCode, '404');
    // anon can also download from a public bucket through the API
    const anon = await client(server).storage.from('pub').download('img/logo.txt');
    noError(anon.error, 'anon download from a public bucket');
  });

  it('uploaded HTML and SVG are served as attachments with nosniff', async () => {
    noError((await service.storage.from('pub').upload('x.html', Buffer.from('<script>alert(1)</script>'), { contentType: 'text/html' })).error);
    noError((await service.storage.from('pub').upload('x.svg', new Blob(['<svg/>'], { type: 'image/svg+xml' }))).error);
    for (const n of ['x.html', 'x.svg']) {
      const res = await fetch(service.storage.from('pub').getPublicUrl(n).data.publicUrl);
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-disposition'), /^attachment/, n);
      assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
    }
  });
});

describe('signed URLs', () => {
  const a = (p) => `${alice.user.id}/${p}`;
  before(async () => {
    noError((await alice.client.storage.from('docs').upload(a('signed.txt'), Buffer.from('signed bytes'), { contentType: 'text/plain' })).error);
  });

  it('createSignedUrl gives a URL that works without headers', async () => {
    const r = await alice.client.storage.from('docs').createSignedUrl(a('signed.txt'), 60);
    noError(r.error, 'createSignedUrl');
    assert.ok(r.data.signedUrl.startsWith(`${server.url}/storage/v1/object/sign/docs/`));
    const res = await fetch(r.data.signedUrl);
    assert.equal(res.status, 200);
    assert.equal(await res.text(), 'signed bytes');
    const dl = await alice.client.storage.from('docs').createSignedUrl(a('signed.txt'), 60, { download: true });
    const res2 = await fetch(dl.data.signedUrl);
    assert.match(res2.headers.get('content-disposition'), /^attachment; filename="signed\.txt"/);
    // a token for one object does not open another
    const other = r.data.signedUrl.replace('signed.txt', 'data.json');
    const res3 = await fetch(other);
    assert.equal(res3.status, 400);
    // a tampered token fails
    const res4 = await fetch(r.data.signedUrl.slice(0, -2) + (r.data.signedUrl.endsWith('A') ? 'BB' : 'AA'));
    assert.equal(res4.status, 400);
    // cannot sign what one cannot read
    storageError(await bob.client.storage.from('docs').createSignedUrl(a('signed.txt'), 60), '404', 'bob signs alice');
  });

  it('signed URLs expire', async () => {
    const r = await alice.client.storage.from('docs').createSignedUrl(a('signed.txt'), 1);
    noError(r.error);
    await sleep(2100);
    const res = await fetch(r.data.signedUrl);
    assert.equal(res.status, 400);
    assert.match((await res.json()).message, /expired/);
    // the same URL with a token forged past its expiry (our secret, exp in the past)
    const token = signJwt({ url: `docs/${a('signed.txt')}`, exp: Math.floor(Date.now() / 1000) - 5 }, jwtSecret(server));
    const res2 = await fetch(`${server.url}/storage/v1/object/sign/docs/${a('signed.txt')}?token=${token}`);
    assert.equal(res2.status, 400);
    // URL tokens use a key derived from the JWT secret, and must say scope "download":
    // one signed with the JWT secret itself (an access token's key) is refused ...
    const exp = Math.floor(Date.now() / 1000) + 60;
    const raw = signJwt({ url: `docs/${a('signed.txt')}`, scope: 'download', exp }, jwtSecret(server));
    assert.equal((await fetch(`${server.url}/storage/v1/object/sign/docs/${a('signed.txt')}?token=${raw}`)).status, 400);
    // ... one with the derived key works, and without the scope it does not
    const urlKey = crypto.createHmac('sha256', jwtSecret(server)).update('campaignd storage url token v1').digest();
    const good = signJwt({ url: `docs/${a('signed.txt')}`, scope: 'download', exp }, urlKey);
    assert.equal((await fetch(`${server.url}/storage/v1/object/sign/docs/${a('signed.txt')}?token=${good}`)).status, 200);
    const noScope = signJwt({ url: `docs/${a('signed.txt')}`, exp }, urlKey);
    assert.equal((await fetch(`${server.url}/storage/v1/object/sign/docs/${a('signed.txt')}?token=${noScope}`)).status, 400);
    const wrong = signJwt({ url: `docs/${a('signed.txt')}`, exp: Math.floor(Date.now() / 1000) + 60 }, 'x'.repeat(40));
    assert.equal((await fetch(`${server.url}/storage/v1/object/sign/docs/${a('signed.txt')}?token=${wrong}`)).status, 400);
  });

  it('createSignedUrls reports missing objects per path', async () => {
    const r = await alice.client.storage.from('docs').createSignedUrls([a('signed.txt'), a('missing.txt')], 60);
    noError(r.error, 'createSignedUrls');
    assert.equal(r.data.length, 2);
    assert.equal(r.data[0].error, null);
    assert.equal(r.data[0].path, a('signed.txt'));
    assert.equal(await (await fetch(r.data[0].signedUrl)).text(), 'signed bytes');
    assert.equal(r.data[1].signedUrl, null);
    assert.match(r.data[1].error, /does not exist/);
  });

  it('createSignedUploadUrl + uploadToSignedUrl', async () => {
    const s = alice.client.storage.from('docs');
    const u = await s.createSignedUploadUrl(a('via-token.txt'));
    noError(u.error, 'createSignedUploadUrl');
    assert.ok(u.data.token);
    const put = await client(server).storage.from('docs').uploadToSignedUrl(a('via-token.txt'), u.data.token, Buffer.from('token upload'), { contentType: 'text/plain' });
    noError(put.error, 'uploadToSignedUrl');
    assert.equal(put.data.fullPath, `docs/${a('via-token.txt')}`);
    assert.equal(await text((await s.download(a('via-token.txt'))).data), 'token upload');
    assert.equal(await sql(server, `select owner from storage.objects where name = '${a('via-token.txt')}'`), alice.user.id);
    // the token names one object; it does not open another, and not twice without upsert
    storageError(await client(server).storage.from('docs').uploadToSignedUrl(a('other.txt'), u.data.token, Buffer.from('x')), '400', 'other path');
    storageError(await client(server).storage.from('docs').uploadToSignedUrl(a('via-token.txt'), u.data.token, Buffer.from('x')), '409', 'no upsert');
    // a signed download token is not an upload token
    const dl = await s.createSignedUrl(a('signed.txt'), 60);
    const dlToken = new URL(dl.data.signedUrl).searchParams.get('token');
    storageError(await client(server).storage.from('docs').uploadToSignedUrl(a('signed.txt'), dlToken, Buffer.from('x')), '400', 'download token');
    // bob cannot even get an upload URL for alice's folder
    storageError(await bob.client.storage.from('docs').createSignedUploadUrl(a('bob.txt')), '403', 'bob upload url');
  });
});

describe('row-level security on objects', () => {
  const a = (p) => `${alice.user.id}/${p}`;
  before(async () => {
    noError((await alice.client.storage.from('docs').upload(a('private.txt'), Buffer.from('alice only'), { contentType: 'text/plain' })).error);
  });

  it('user B cannot read, list, overwrite, move or delete A\'s folder', async () => {
    const s = bob.client.storage.from('docs');
    storageError(await s.download(a('private.txt')), '404', 'download');
    assert.deepEqual((await s.list(alice.user.id)).data, []);
    storageError(await s.upload(a('private.txt'), Buffer.from('bob'), { upsert: true }), '403', 'upsert');
    storageError(await s.upload(a('new.txt'), Buffer.from('bob')), '403', 'insert');
    storageError(await s.update(a('private.txt'), Buffer.from('bob')), '403', 'update');
    storageError(await s.move(a('private.txt'), `${bob.user.id}/stolen.txt`), '404', 'move');
    storageError(await s.copy(a('private.txt'), `${bob.user.id}/stolen.txt`), '404', 'copy');
    const rm = await s.remove([a('private.txt')]);
    noError(rm.error);
    assert.deepEqual(rm.data, []);
    storageError(await client(server).storage.from('docs').download(a('private.txt')), '404', 'anon');
    // nothing changed
    assert.equal(await text((await alice.client.storage.from('docs').download(a('private.txt'))).data), 'alice only');
    // and alice cannot move her file into bob's folder
    storageError(await alice.client.storage.from('docs').move(a('private.txt'), `${bob.user.id}/gift.txt`), '403', 'move into bob');
    // a top-level file belongs to nobody's folder
    storageError(await alice.client.storage.from('docs').upload('top.txt', Buffer.from('x')), '403', 'top level');
  });

  it('B works in its own folder; admins reach everything', async () => {
    noError((await bob.client.storage.from('docs').upload(`${bob.user.id}/mine.txt`, Buffer.from('bob'))).error);
    const d = await admin.client.storage.from('docs').download(a('private.txt'));
    noError(d.error, 'admin download');
    assert.equal(await text(d.data), 'alice only');
    noError((await admin.client.storage.from('docs').upload('admin/any.txt', Buffer.from('a'))).error, 'admin anywhere');
  });

  it('a bad token is refused, not downgraded to anon', async () => {
    const bad = client(server, server.anonKey, { global: { headers: { Authorization: 'Bearer not.a.jwt' } } });
    storageError(await bad.storage.from('pub').download('img/logo.txt'), '403', 'bad jwt');
  });
});

describe('hostile paths', () => {
  const hostile = [
    '/storage/v1/object/docs/..%2F..%2Fetc%2Fpasswd',
    '/storage/v1/object/docs/%2e%2e/%2e%2e/etc/passwd',
    '/storage/v1/object/docs/a/%2E%2E/b',
    '/storage/v1/object/docs/a/../b',
    '/storage/v1/object/docs//etc/passwd',
    '/storage/v1/object/docs/%2Fetc%2Fpasswd',
    '/storage/v1/object/docs/a%00b',
    '/storage/v1/object/docs/a%0Ab',
    '/storage/v1/object/docs/a%5C..%5Cb',
    '/storage/v1/object/docs/a/./b',
    '/storage/v1/object/%2e%2e/x',
    '/storage/v1/object/docs/%C0%AF',
  ];

  it('traversal, NUL, control characters and bad encodings are refused on upload and download', async () => {
    const auth = { Authorization: `Bearer ${alice.session.access_token}` };
    for (const p of hostile) {
      // 400 from storage, or 404 when the path no longer reaches /storage at all
      const up = await request(`${server.url}${p}`, { method: 'POST', headers: { ...auth, 'Content-Type': 'text/plain' }, body: 'evil' });
      assert.ok([400, 404].includes(up.status), `POST ${p}: ${up.status} ${up.text}`);
      const down = await request(`${server.url}${p}`, { headers: auth });
      assert.ok([400, 404].includes(down.status), `GET ${p}: ${down.status}`);
      const pub = await request(`${server.url}${p.replace('/object/', '/object/public/')}`);
      assert.ok([400, 404].includes(pub.status), `GET public ${p}: ${pub.status}`);
    }
    // nothing was written anywhere
    assert.equal(await sql(server, "select count(*) from storage.objects where name like '%etc%' or name like '%evil%' or name like '%..%'"), '0');
    const root = path.join(server.dataDir, 'storage');
    assert.deepEqual(fs.readdirSync(root).sort(), ['objects', 'tmp']);
  });

  it('JSON endpoints check names too', async () => {
    const s = alice.client.storage.from('docs');
    storageError(await s.move(`${alice.user.id}/private.txt`, `${alice.user.id}/../../x`), '400', 'move to ..');
    storageError(await s.remove(['../x']), '400', 'remove ..');
    storageError(await s.createSignedUrls(['a/../b'], 60), '400', 'sign ..');
  });
});

describe('large uploads', () => {
  it('a 2 MB Buffer upload (Content-Length above MAX_BODY_BYTES) is accepted', async () => {
    const buf = crypto.randomBytes(2 * 1024 * 1024);
    const r = await alice.client.storage.from('big').upload(`${alice.user.id}/two.bin`, buf, { contentType: 'application/octet-stream' });
    noError(r.error, '2 MB upload');
    const d = await alice.client.storage.from('big').download(`${alice.user.id}/two.bin`);
    assert.ok(Buffer.from(await d.data.arrayBuffer()).equals(buf));
  });

  it('a 100 MB streamed upload keeps the server memory flat', async () => {
    const total = 100 * 1024 * 1024;
    const chunk = crypto.randomBytes(1024 * 1024);
    const hash = crypto.createHash('md5');
    let sent = 0;
    const body = new Readable({
      read() {
        if (sent >= total) return this.push(null);
        sent += chunk.length;
        hash.update(chunk);
        this.push(chunk);
      },
    });
    const pid = server.process.pid;
    const before = rssKb(pid);
    const r = await alice.client.storage.from('big').upload(`${alice.user.id}/huge.bin`, body, { contentType: 'application/octet-stream' });
    noError(r.error, '100 MB upload');
    const afterKb = rssKb(pid);
    const grewMb = (afterKb - before) / 1024;
    assert.ok(grewMb < 40, `server RSS grew by ${grewMb.toFixed(1)} MB for a 100 MB upload`);
    const md5 = hash.digest('hex');
    assert.equal(await sql(server, `select (metadata->>'size') || ' ' || (metadata->>'eTag') from storage.objects where name = '${alice.user.id}/huge.bin'`), `${total} "${md5}"`);
    // streamed back: same bytes
    const res = await fetch(`${server.url}/storage/v1/object/big/${alice.user.id}/huge.bin`, { headers: { Authorization: `Bearer ${alice.session.access_token}` } });
    assert.equal(res.status, 200);
    const h2 = crypto.createHash('md5');
    let got = 0;
    for await (const c of res.body) {
      h2.update(c);
      got += c.length;
    }
    assert.equal(got, total);
    assert.equal(h2.digest('hex'), md5);
  });

  it('over the limit is refused with 413 and leaves no temporary file', async () => {
    const r = await alice.client.storage.from('imgs').upload(`${alice.user.id}/x.png`, Readable.from([Buffer.alloc(800), Buffer.alloc(800)]), { contentType: 'image/png' });
    storageError(r, '413', 'streamed too large');
    const tmp = path.join(server.dataDir, 'storage', 'tmp');
    const leftovers = fs.readdirSync(tmp).flatMap((d) => fs.readdirSync(path.join(tmp, d)).filter((f) => f !== '.lock'));
    assert.deepEqual(leftovers, []);
  });
});

describe('crash safety', () => {
  it('temporary files of a killed server are removed at the next start', async () => {
    const dataDir = server.dataDir;
    const tmp = path.join(dataDir, 'storage', 'tmp');
    // simulate an upload interrupted by a crash: a dead instance with a half file
    const dead = path.join(tmp, '1-deadbeef');
    fs.mkdirSync(dead);
    fs.writeFileSync(path.join(dead, '.lock'), '');
    fs.writeFileSync(path.join(dead, '00000000-0000-4000-8000-000000000000.part'), 'half');
    await server.stop({ removeData: false });
    server = await startServer({ CAMPAIGND_DATA_DIR: dataDir, STORAGE_MAX_FILE_BYTES: String(200 * 1024 * 1024) });
    // the first storage request (or start-up) cleans up
    const res = await request(`${server.url}/storage/v1/object/public/pub/img/logo.txt`);
    assert.equal(res.status, 200);
    assert.equal(fs.existsSync(dead), false);
  });
});
