// The admin API (/auth/v1/admin/users) through supabase-js auth.admin.*:
// with the service key, and (a campaignd extension) with the token of a user
// whose authoritative role is admin; roles set by the CLI (`campaignd user
// add/set-role/list`) and the bootstrap admin from CAMPAIGND_ADMIN_EMAIL.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import {
  startServer, client, clientWithToken, signUpUser, signIn, request, decodeJwt, uniqueEmail, sql, lit, noError,
  PASSWORD,
} from './helpers.js';

const ADMIN_EMAIL = uniqueEmail('boot-admin');
const ADMIN_PASSWORD = 'bootstrap admin password';

let server;
let admin; // supabase-js client with the service key
before(async () => {
  server = await startServer({ CAMPAIGND_ADMIN_EMAIL: ADMIN_EMAIL, CAMPAIGND_ADMIN_PASSWORD: ADMIN_PASSWORD });
  admin = client(server, server.serviceKey);
});
after(async () => {
  await server?.stop();
});

const adminHeaders = () => ({ apikey: server.serviceKey, Authorization: `Bearer ${server.serviceKey}` });

describe('bootstrap admin', () => {
  it('CAMPAIGND_ADMIN_EMAIL/PASSWORD created an admin at start', async () => {
    const s = await signIn(server, ADMIN_EMAIL, ADMIN_PASSWORD);
    const claims = decodeJwt(s.session.access_token).payload;
    assert.equal(claims.app_metadata.role, 'admin');
    assert.equal(claims.user_metadata.role, 'admin');
    assert.equal(s.user.app_metadata.role, 'admin');
    const list = await server.run(['user', 'list']);
    assert.equal(list.code, 0, list.stderr);
    const line = list.stdout.split('\n').find((l) => l.includes(ADMIN_EMAIL));
    assert.match(line ?? '', /\badmin\b/);
  });
});

describe('auth.admin with the service key', () => {
  it('listUsers pages with X-Total-Count and Link, as supabase-js parses them', async () => {
    for (let i = 0; i < 4; i++) await signUpUser(server);
    const all = await admin.auth.admin.listUsers({ page: 1, perPage: 1000 });
    noError(all.error, 'listUsers');
    const total = all.data.users.length;
    assert.ok(total >= 5 && total < 18, `total ${total}`);
    assert.equal(all.data.total, total);
    const per = 2;
    const last = Math.ceil(total / per);
    const p1 = await admin.auth.admin.listUsers({ page: 1, perPage: per });
    noError(p1.error);
    assert.equal(p1.data.users.length, per);
    assert.equal(p1.data.total, total);
    assert.equal(p1.data.nextPage, 2);
    assert.equal(p1.data.lastPage, last);
    assert.equal(p1.data.aud, 'authenticated');
    const seen = [];
    for (let page = 1; page <= last; page++) {
      const r = await request(`${server.url}/auth/v1/admin/users?page=${page}&per_page=${per}`, { headers: adminHeaders() });
      assert.equal(r.status, 200);
      assert.equal(r.headers['x-total-count'], String(total));
      const next = page < last ? `</admin/users?page=${page + 1}&per_page=${per}>; rel="next", ` : '';
      assert.equal(r.headers.link, `${next}</admin/users?page=${last}&per_page=${per}>; rel="last"`);
      seen.push(...r.json.users.map((u) => u.id));
    }
    assert.deepEqual([...seen].sort(), all.data.users.map((u) => u.id).sort(), 'pages cover every user once');
    const lastPage = await admin.auth.admin.listUsers({ page: last, perPage: per });
    assert.equal(lastPage.data.nextPage, null);
    const beyond = await admin.auth.admin.listUsers({ page: last + 1, perPage: per });
    noError(beyond.error);
    assert.equal(beyond.data.users.length, 0);
  });

  it('createUser makes a confirmed user with metadata and the role from app_metadata only', async () => {
    const email = uniqueEmail('created');
    const { data, error } = await admin.auth.admin.createUser({
      email, password: PASSWORD, email_confirm: true,
      user_metadata: { name: 'Grace', role: 'admin' }, app_metadata: { role: 'viewer', provider: 'github' },
    });
    noError(error, 'createUser');
    assert.equal(data.user.email, email);
    assert.ok(data.user.email_confirmed_at);
    assert.equal(data.user.user_metadata.name, 'Grace');
    assert.equal(data.user.app_metadata.role, 'viewer');
    assert.equal(data.user.user_metadata.role, 'viewer', 'user_metadata.role mirrors the real role');
    assert.equal(data.user.app_metadata.provider, 'email', 'provider is the server’s to say');
    const s = await signIn(server, email);
    assert.equal(decodeJwt(s.session.access_token).payload.app_metadata.role, 'viewer');

    const dup = await admin.auth.admin.createUser({ email, password: PASSWORD });
    assert.equal(dup.error?.status, 422);
    assert.equal(dup.error?.code, 'email_exists');
    const bad = await admin.auth.admin.createUser({ email: uniqueEmail(), password: PASSWORD, app_metadata: { role: 'owner' } });
    assert.equal(bad.error?.status, 422);
    const id = crypto.randomUUID();
    const withId = await admin.auth.admin.createUser({ id, email: uniqueEmail(), password: PASSWORD });
    noError(withId.error);
    assert.equal(withId.data.user.id, id);
    assert.equal(withId.data.user.app_metadata.role, 'user');
  });

  it('a user created without a password cannot sign in with any password', async () => {
    const email = uniqueEmail('nopass');
    const { error } = await admin.auth.admin.createUser({ email, email_confirm: true });
    noError(error, 'createUser without password');
    for (const password of [PASSWORD, '', 'x'.repeat(10)]) {
      const r = await client(server).auth.signInWithPassword({ email, password });
      assert.ok(r.error, `password ${JSON.stringify(password)} must fail`);
      assert.equal(r.data.session, null);
    }
    const upd = await admin.auth.admin.updateUserById((await admin.auth.admin.listUsers({ perPage: 1000 })).data.users.find((x) => x.email === email).id, { email: ADMIN_EMAIL });
    assert.equal(upd.error?.status, 422, 'changing to a taken address');
    assert.equal(upd.error?.code, 'email_exists');
  });

  it('getUserById finds a user; an unknown id is 404 user_not_found', async () => {
    const u = await signUpUser(server);
    const { data, error } = await admin.auth.admin.getUserById(u.user.id);
    noError(error);
    assert.equal(data.user.email, u.email);
    const missing = await admin.auth.admin.getUserById(crypto.randomUUID());
    assert.equal(missing.error?.status, 404);
    assert.equal(missing.error?.code, 'user_not_found');
    const r = await request(`${server.url}/auth/v1/admin/users/not-a-uuid`, { headers: adminHeaders() });
    assert.equal(r.status, 404);
  });

  it('updateUserById changes metadata, the role, the password', async () => {
    const u = await signUpUser(server, { data: { a: 1, b: 2 } });
    const { data, error } = await admin.auth.admin.updateUserById(u.user.id, {
      user_metadata: { b: null, c: 3, role: 'admin' }, app_metadata: { role: 'admin', plan: 'pro' },
    });
    noError(error, 'updateUserById');
    assert.equal(data.user.user_metadata.a, 1);
    assert.equal('b' in data.user.user_metadata, false);
    assert.equal(data.user.user_metadata.c, 3);
    assert.equal(data.user.app_metadata.role, 'admin');
    assert.equal(data.user.app_metadata.plan, 'pro');
    const refreshed = await u.client.auth.refreshSession();
    noError(refreshed.error);
    assert.equal(decodeJwt(refreshed.data.session.access_token).payload.app_metadata.role, 'admin', 'existing sessions get it at refresh');

    // A password set by an admin ends every session of the user (GoTrue does the same).
    const pw = await admin.auth.admin.updateUserById(u.user.id, { password: 'new password 42' });
    noError(pw.error, 'updateUserById password');
    const after = await u.client.auth.refreshSession();
    assert.equal(after.error?.code, 'refresh_token_not_found');
    const s = await signIn(server, u.email, 'new password 42');
    const claims = decodeJwt(s.session.access_token).payload;
    assert.equal(claims.app_metadata.role, 'admin');
    assert.equal(claims.user_metadata.role, 'admin');
  });

  it('ban_duration bans (sign-in, refresh and /user refused) and "none" lifts the ban', async () => {
    const u = await signUpUser(server);
    const ban = await admin.auth.admin.updateUserById(u.user.id, { ban_duration: '24h' });
    noError(ban.error, 'ban');
    assert.ok(ban.data.user.banned_until);
    const s = await client(server).auth.signInWithPassword({ email: u.email, password: PASSWORD });
    assert.equal(s.error?.status, 400);
    assert.equal(s.error?.code, 'user_banned');
    const r = await request(`${server.url}/auth/v1/user`, { headers: { apikey: server.anonKey, Authorization: `Bearer ${u.session.access_token}` } });
    assert.equal(r.status, 403);
    assert.equal(r.json.code, 'user_banned');
    const ref = await u.client.auth.refreshSession();
    assert.equal(ref.error?.code, 'user_banned');
    const unban = await admin.auth.admin.updateUserById(u.user.id, { ban_duration: 'none' });
    noError(unban.error, 'unban');
    await signIn(server, u.email);
  });

  it('deleteUser removes the user: no sign-in, no refresh, the token is dead', async () => {
    const u = await signUpUser(server);
    const { error } = await admin.auth.admin.deleteUser(u.user.id);
    noError(error, 'deleteUser');
    const got = await admin.auth.admin.getUserById(u.user.id);
    assert.equal(got.error?.status, 404);
    const s = await client(server).auth.signInWithPassword({ email: u.email, password: PASSWORD });
    assert.equal(s.error?.code, 'invalid_credentials');
    const r = await request(`${server.url}/auth/v1/user`, { headers: { apikey: server.anonKey, Authorization: `Bearer ${u.session.access_token}` } });
    assert.equal(r.status, 403);
    assert.equal(r.json.code, 'user_not_found');
    const ref = await u.client.auth.refreshSession();
    assert.equal(ref.error?.status, 400);
    const again = await admin.auth.admin.deleteUser(u.user.id);
    assert.equal(again.error?.status, 404);
    assert.equal(await sql(server, `select count(*) from auth.identities where user_id = ${lit(u.user.id)}`), '0');
  });

  it('deleteUser(id, true) soft-deletes: hidden from the list, cannot sign in, the address is free again', async () => {
    const u = await signUpUser(server);
    const { error } = await admin.auth.admin.deleteUser(u.user.id, true);
    noError(error, 'soft delete');
    const list = await admin.auth.admin.listUsers({ perPage: 1000 });
    assert.ok(!list.data.users.some((x) => x.id === u.user.id));
    const s = await client(server).auth.signInWithPassword({ email: u.email, password: PASSWORD });
    assert.equal(s.error?.code, 'invalid_credentials');
    const ref = await u.client.auth.refreshSession();
    assert.equal(ref.error?.status, 400);
    assert.equal(await sql(server, `select deleted_at is not null from auth.users where id = ${lit(u.user.id)}`), 't');
    await signUpUser(server, { email: u.email });
  });
});

describe('who may use the admin API', () => {
  it("an admin user's own token can call auth.admin.* (campaignd extension)", async () => {
    const s = await signIn(server, ADMIN_EMAIL, ADMIN_PASSWORD);
    const asAdmin = clientWithToken(server, s.session.access_token).auth.admin;
    const list = await asAdmin.listUsers();
    noError(list.error, 'listUsers as admin');
    assert.ok(list.data.users.some((x) => x.email === ADMIN_EMAIL));
    const u = await signUpUser(server);
    const got = await asAdmin.getUserById(u.user.id);
    noError(got.error, 'getUserById as admin');
    const upd = await asAdmin.updateUserById(u.user.id, { app_metadata: { role: 'viewer' } });
    noError(upd.error, 'updateUserById as admin');
    assert.equal(upd.data.user.app_metadata.role, 'viewer');
    const created = await asAdmin.createUser({ email: uniqueEmail('by-admin'), password: PASSWORD, email_confirm: true });
    noError(created.error, 'createUser as admin');
    const del = await asAdmin.deleteUser(created.data.user.id);
    noError(del.error, 'deleteUser as admin');
  });

  it("an admin's token stops working for the admin API once banned or signed out", async () => {
    const email = uniqueEmail('admin2');
    const made = await admin.auth.admin.createUser({ email, password: PASSWORD, email_confirm: true, app_metadata: { role: 'admin' } });
    noError(made.error, 'createUser admin2');
    const s1 = await signIn(server, email, PASSWORD);
    const asAdmin = clientWithToken(server, s1.session.access_token).auth.admin;
    noError((await asAdmin.listUsers()).error, 'listUsers before the ban');
    noError((await admin.auth.admin.updateUserById(made.data.user.id, { ban_duration: '24h' })).error, 'ban');
    const banned = await asAdmin.updateUserById(made.data.user.id, { ban_duration: 'none' });
    assert.equal(banned.error?.status, 403, 'a banned admin cannot unban themselves');
    noError((await admin.auth.admin.updateUserById(made.data.user.id, { ban_duration: 'none' })).error, 'unban');
    const s2 = await signIn(server, email, PASSWORD);
    const c2 = clientWithToken(server, s2.session.access_token);
    noError((await c2.auth.admin.listUsers()).error, 'listUsers with a fresh session');
    const out = await request(`${server.url}/auth/v1/logout?scope=local`, {
      method: 'POST', headers: { apikey: server.anonKey, Authorization: `Bearer ${s2.session.access_token}` } });
    assert.equal(out.status, 204);
    const after = await c2.auth.admin.listUsers();
    assert.equal(after.error?.status, 403, 'the signed-out token is no longer an admin');
  });

  it('a plain user, a viewer and the anon key get 403 not_admin', async () => {
    const plain = await signUpUser(server);
    const viewer = await signUpUser(server);
    const r = await server.run(['user', 'set-role', '--email', viewer.email, '--role', 'viewer']);
    assert.equal(r.code, 0, r.stderr);
    const { data: vs } = await viewer.client.auth.refreshSession();
    for (const [who, c] of [
      ['user', clientWithToken(server, plain.session.access_token)],
      ['viewer', clientWithToken(server, vs.session.access_token)],
      ['anon', client(server)],
    ]) {
      const calls = {
        listUsers: () => c.auth.admin.listUsers(),
        getUserById: () => c.auth.admin.getUserById(plain.user.id),
        createUser: () => c.auth.admin.createUser({ email: uniqueEmail(), password: PASSWORD }),
        updateUserById: () => c.auth.admin.updateUserById(plain.user.id, { app_metadata: { role: 'admin' } }),
        deleteUser: () => c.auth.admin.deleteUser(plain.user.id),
      };
      for (const [name, call] of Object.entries(calls)) {
        const { error } = await call();
        assert.equal(error?.status, 403, `${who} ${name}`);
        assert.equal(error?.code, 'not_admin', `${who} ${name}`);
      }
    }
    const still = await admin.auth.admin.getUserById(plain.user.id);
    assert.equal(still.data.user.app_metadata.role, 'user', 'nothing changed');
  });

  it('an admin demoted with the CLI loses the admin API at once, even with an unexpired token', async () => {
    const email = uniqueEmail('demoted');
    const add = await server.run(['user', 'add', '--email', email, '--password', PASSWORD, '--role', 'admin']);
    assert.equal(add.code, 0, add.stderr);
    const s = await signIn(server, email);
    const c = clientWithToken(server, s.session.access_token);
    noError((await c.auth.admin.listUsers()).error, 'listUsers before demotion');
    const r = await server.run(['user', 'set-role', '--email', email, '--role', 'user']);
    assert.equal(r.code, 0, r.stderr);
    const { error } = await c.auth.admin.listUsers();
    assert.equal(error?.status, 403);
  });
});

describe('campaignd user (CLI)', () => {
  it('user add creates a user with the role; duplicates and bad input are refused', async () => {
    const email = uniqueEmail('cli');
    const r = await server.run(['user', 'add', '--email', email, '--password', PASSWORD, '--role', 'admin']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`created admin user ${email.replace(/[.]/g, '\\.')} \\(id [0-9a-f-]{36}\\)`));
    const s = await signIn(server, email);
    assert.equal(decodeJwt(s.session.access_token).payload.app_metadata.role, 'admin');
    assert.match(await sql(server, `select encrypted_password from auth.users where email = ${lit(email)}`), /^\$2b\$10\$/);

    const dup = await server.run(['user', 'add', '--email', email.toUpperCase(), '--password', PASSWORD]);
    assert.equal(dup.code, 1);
    assert.match(dup.stderr, /already exists/);
    const badRole = await server.run(['user', 'add', '--email', uniqueEmail(), '--password', PASSWORD, '--role', 'root']);
    assert.equal(badRole.code, 1);
    assert.match(badRole.stderr, /admin, user or viewer/);
    const short = await server.run(['user', 'add', '--email', uniqueEmail(), '--password', 'short']);
    assert.equal(short.code, 1);
    assert.match(short.stderr, /at least 8/);
    const long = await server.run(['user', 'add', '--email', uniqueEmail(), '--password', 'x'.repeat(73)]);
    assert.equal(long.code, 1);
    const missing = await server.run(['user', 'add', '--email', uniqueEmail()]);
    assert.equal(missing.code, 2);
    const badMail = await server.run(['user', 'add', '--email', 'nope', '--password', PASSWORD]);
    assert.equal(badMail.code, 1);
  });

  it('user add --password-stdin reads the password from stdin', async () => {
    const email = uniqueEmail('stdin');
    const r = await server.run(['user', 'add', '--email', email, '--password-stdin'], { input: 'from stdin 123\n' });
    assert.equal(r.code, 0, r.stderr);
    await signIn(server, email, 'from stdin 123');
  });

  it('user set-role changes the role at the next token; unknown e-mail and role are refused', async () => {
    const u = await signUpUser(server);
    const r = await server.run(['user', 'set-role', '--email', u.email, '--role', 'admin']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /role user -> admin/);
    assert.equal(decodeJwt(u.session.access_token).payload.app_metadata.role, 'user', 'old token unchanged');
    const { data, error } = await u.client.auth.refreshSession();
    noError(error);
    assert.equal(decodeJwt(data.session.access_token).payload.app_metadata.role, 'admin');
    const none = await server.run(['user', 'set-role', '--email', uniqueEmail(), '--role', 'admin']);
    assert.equal(none.code, 1);
    assert.match(none.stderr, /no user/);
    const bad = await server.run(['user', 'set-role', '--email', u.email, '--role', 'superadmin']);
    assert.equal(bad.code, 1);
    const sub = await server.run(['user', 'frobnicate']);
    assert.equal(sub.code, 2);
  });

  it('user list shows every user with the role', async () => {
    const u = await signUpUser(server);
    const r = await server.run(['user', 'list']);
    assert.equal(r.code, 0, r.stderr);
    const line = r.stdout.split('\n').find((l) => l.includes(u.email));
    assert.ok(line, 'the new user is listed');
    assert.match(line, new RegExp(`^${u.user.id}\\s+user\\s`));
    const total = Number(await sql(server, 'select count(*) from auth.users where deleted_at is null'));
    assert.match(r.stdout, new RegExp(`${total} user\\(s\\)`));
  });
});

describe('restart', () => {
  it('the bootstrap admin is only created when no admin exists', async () => {
    await server.stop({ removeData: false });
    const other = uniqueEmail('second-admin');
    server = await startServer({
      CAMPAIGND_DATA_DIR: server.dataDir, CAMPAIGND_ADMIN_EMAIL: other, CAMPAIGND_ADMIN_PASSWORD: ADMIN_PASSWORD,
    });
    assert.equal(await sql(server, `select count(*) from auth.users where email = ${lit(other)}`), '0');
    await signIn(server, ADMIN_EMAIL, ADMIN_PASSWORD);
  });
});
