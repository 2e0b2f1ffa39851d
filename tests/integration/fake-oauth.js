// A local OAuth 2 / OpenID Connect provider for the integration tests,
// speaking the real authorization-code flow with GitHub's and Google's
// shapes, so campaignd's EXTERNAL_*_URL can point at it:
//
//   GitHub (EXTERNAL_GITHUB_URL=<url>):  GET /login/oauth/authorize,
//     POST /login/oauth/access_token, GET /api/v3/user, GET /api/v3/user/emails
//   Google (EXTERNAL_GOOGLE_URL=<url>):  GET /o/oauth2/v2/auth, POST /token,
//     GET /v1/userinfo
//
// The authorize page "logs in" as the profile the test queued with
// login(provider, profile) and redirects back with code and state; the token
// endpoint checks client_id, client_secret, the code (single use, bound to
// its redirect_uri and client); the user endpoints check the access token.
import http from 'node:http';
import crypto from 'node:crypto';

export const CLIENT_ID = 'campaignd-test-client';
export const CLIENT_SECRET = 'campaignd-test-secret';

const rand = () => crypto.randomBytes(18).toString('base64url');

export async function startFakeOAuth() {
  const queued = { github: [], google: [] }; // profiles to log in as, in order
  const codes = new Map(); // code -> {provider, profile, redirect_uri, client_id}
  const tokens = new Map(); // access token -> {provider, profile}
  const seen = []; // every request: {method, path, query, form}

  const json = (res, status, body) => {
    res.writeHead(status, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify(body));
  };

  function authorize(provider, q, res) {
    if (q.get('client_id') !== CLIENT_ID) return json(res, 400, { error: 'invalid_client' });
    if (q.get('response_type') !== 'code') return json(res, 400, { error: 'unsupported_response_type' });
    const redirect = q.get('redirect_uri');
    if (!redirect || !q.get('state')) return json(res, 400, { error: 'invalid_request' });
    const profile = queued[provider].shift();
    const back = new URL(redirect);
    if (!profile) {
      back.searchParams.set('error', 'access_denied');
      back.searchParams.set('error_description', 'The user denied the request');
    } else {
      const code = rand();
      codes.set(code, { provider, profile, redirect_uri: redirect, client_id: CLIENT_ID });
      back.searchParams.set('code', code);
    }
    back.searchParams.set('state', q.get('state'));
    res.writeHead(302, { Location: back.toString() });
    res.end();
  }

  function token(provider, form, res) {
    const c = codes.get(form.get('code'));
    const ok =
      form.get('grant_type') === 'authorization_code' &&
      form.get('client_id') === CLIENT_ID &&
      form.get('client_secret') === CLIENT_SECRET &&
      c &&
      c.provider === provider &&
      c.redirect_uri === form.get('redirect_uri');
    if (c) codes.delete(form.get('code')); // single use, even when the rest is wrong
    if (!ok) {
      // GitHub answers 200 with an error member; Google 400
      return json(res, provider === 'github' ? 200 : 400, { error: 'bad_verification_code' });
    }
    const access = `${provider}_at_${rand()}`;
    tokens.set(access, { provider, profile: c.profile });
    const body = { access_token: access, token_type: 'bearer', scope: 'x' };
    if (provider === 'google') body.refresh_token = `google_rt_${rand()}`;
    json(res, 200, body);
  }

  function user(provider, kind, req, res) {
    const auth = req.headers.authorization || '';
    const t = tokens.get(auth.replace(/^Bearer /, ''));
    if (!t || t.provider !== provider) return json(res, 401, { message: 'Bad credentials' });
    const p = t.profile;
    if (kind === 'github-user')
      // a hostile provider may claim anything: role, app_metadata
      return json(res, 200, { id: p.id, login: p.login, name: p.name, avatar_url: p.avatar_url, email: p.email, role: p.role, app_metadata: { role: p.role } });
    if (kind === 'github-emails')
      return json(res, 200, [
        { email: `noreply-${p.id}@users.noreply.test`, primary: false, verified: true, visibility: null },
        { email: p.email, primary: true, verified: p.email_verified, visibility: 'public' },
      ]);
    return json(res, 200, { sub: String(p.id), email: p.email, email_verified: p.email_verified, name: p.name, picture: p.avatar_url, role: p.role });
  }

  const routes = {
    'GET /login/oauth/authorize': (q, req, res) => authorize('github', q, res),
    'POST /login/oauth/access_token': (q, req, res, form) => token('github', form, res),
    'GET /api/v3/user': (q, req, res) => user('github', 'github-user', req, res),
    'GET /api/v3/user/emails': (q, req, res) => user('github', 'github-emails', req, res),
    'GET /o/oauth2/v2/auth': (q, req, res) => authorize('google', q, res),
    'POST /token': (q, req, res, form) => token('google', form, res),
    'GET /v1/userinfo': (q, req, res) => user('google', 'userinfo', req, res),
  };

  const server = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      const u = new URL(req.url, 'http://x');
      const form = new URLSearchParams(body);
      seen.push({ method: req.method, path: u.pathname, query: Object.fromEntries(u.searchParams), form: Object.fromEntries(form) });
      const fn = routes[`${req.method} ${u.pathname}`];
      if (!fn) return json(res, 404, { error: 'not_found' });
      fn(u.searchParams, req, res, form);
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${server.address().port}`;
  return {
    url,
    seen,
    /** Queues the profile the next authorization at provider logs in as. */
    login(provider, profile) {
      queued[provider].push({ avatar_url: 'https://avatars.test/a.png', name: 'Test User', email_verified: true, ...profile });
    },
    stop: () => new Promise((resolve) => server.close(resolve)),
  };
}
