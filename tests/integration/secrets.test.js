// Encrypted application secrets through the real API (issue: settings with
// encrypted secrets): an admin stores a secret with rpc('set_app_secret'); the
// database keeps only ciphertext; reads through the API show a mask; only the
// service role can read it back in clear; a plain user cannot set it.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, client, signUpUser, signIn, noError, sql, PASSWORD } from './helpers.js';

let server;
let service;

before(async () => {
  server = await startServer();
  service = client(server, server.serviceKey);
});
after(async () => { await server?.stop(); });

describe('encrypted application secrets', () => {
  it('an admin sets a secret; it is stored encrypted and read back masked', async () => {
    const secret = 'SG.super-secret-key-1234567890-abcd';
    const adminUser = await signUpUser(server);
    const promote = await service.auth.admin.updateUserById(adminUser.user.id, { app_metadata: { role: 'admin' } });
    noError(promote.error, 'promote');
    const admin = await signIn(server, adminUser.email, PASSWORD);
    const set = await admin.client.rpc('set_app_secret', { name: 'sendgrid_api_key', value: secret });
    noError(set.error, 'set_app_secret');

    // no table or column holds the plain text
    const leak = await sql(server, `select count(*) from (
        select to_jsonb(s)::text t from public.app_settings s
        union all select to_jsonb(x)::text from public.app_secrets x) q
      where t like '%super-secret-key%'`);
    assert.equal(String(leak).trim(), '0');

    // the admin sees a mask with at most the last 4 characters
    const row = await admin.client.from('app_settings').select('sendgrid_api_key').single();
    noError(row.error, 'read settings');
    assert.ok(row.data.sendgrid_api_key.endsWith('abcd'));
    assert.ok(!row.data.sendgrid_api_key.includes('super-secret'));

    // only the service role reads it in clear (for the server's providers)
    const clear = await service.rpc('get_app_secret', { name: 'sendgrid_api_key' });
    noError(clear.error, 'get_app_secret');
    assert.equal(clear.data, secret);
    const denied = await admin.client.rpc('get_app_secret', { name: 'sendgrid_api_key' });
    assert.ok(denied.error, 'an admin cannot read the clear text through the API');
  });

  it('a plain user cannot set a secret', async () => {
    const u = await signUpUser(server);
    const r = await u.client.rpc('set_app_secret', { name: 'sendgrid_api_key', value: 'nope-nope-nope-1234' });
    assert.ok(r.error);
    assert.equal(r.error.code, '42501');
  });
});
