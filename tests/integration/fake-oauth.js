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
//
// As an OpenID provider (Google's endpoints) it also publishes a discovery
// document (GET /.well-known/openid-configuration, issuer = its URL) and a
// JWKS (GET /jwks) with a real RSA and a real P-256 key, and its token
// endpoint returns an id_token signed with them (RS256 by default) carrying
// the nonce of the authorization request. nextIdToken({...}) bends the next
// id_token for the attack tests: alg, kid, aud, iss, exp, wrongKey (signed
// with a key not in the JWKS under a published kid), omit (no id_token);
// rotateKey() publishes a new RSA key and signs with it from then on.
import http from 'node:http';
import crypto from 'node:crypto';

export const CLIENT_ID = 'campaignd-test-client';
export const CLIENT_SECRET = 'campaignd-test-secret';

const rand = () => crypto.randomBytes(18).toString('base64url');
const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');

function newKey(type, kid) {
  const { privateKey, publicKey } =
    type === 'EC'
      ? crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' })
      : crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = { ...publicKey.export({ format: 'jwk' }), kid, use: 'sig', alg: type === 'EC' ? 'ES256' : 'RS256' };
  return { privateKey, jwk, kid };
}

/** A compact JWS of claims, signed with key (RS256 or ES256 by alg). */
function signJws(alg, kid, claims, key) {
  const input = `${b64({ alg, typ: 'JWT', kid })}.${b64(claims)}`;
  const sig =
    alg === 'ES256'
      ? crypto.sign('sha256', Buffer.from(input), { key: key.privateKey, dsaEncoding: 'ieee-p1363' })
      : crypto.sign('sha256', Buffer.from(input), key.privateKey);
  return `${input}.${sig.toString('base64url')}`;
}

export async function startFakeOAuth() {
  const queued = { github: [], google: [] }; // profiles to log in as, in order
  const codes = new Map(); // code -> {provider, profile, redirect_uri, client_id}
  const tokens = new Map(); // access token -> {provider, profile}
  const seen = []; // every request: {method, path, query, form}
  const keys = { rsa: newKey('RSA', 'rsa-1'), ec: newKey('EC', 'ec-1') };
  const published = [keys.rsa, keys.ec]; // the JWKS
  const stranger = newKey('RSA', 'rsa-1'); // same kid, key not published
  let idTokenOnce = null; // overrides of the next id_token
  let url; // set once listening: the issuer

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
      codes.set(code, { provider, profile, redirect_uri: redirect, client_id: CLIENT_ID, nonce: q.get('nonce') });
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
    if (provider === 'google') {
      body.refresh_token = `google_rt_${rand()}`;
      const idt = idToken(c);
      if (idt) body.id_token = idt;
    }
    json(res, 200, body);
  }

  /** The id_token of a code's sign-in (null: none), bent by nextIdToken(). */
  function idToken(c) {
    const o = idTokenOnce || {};
    idTokenOnce = null;
    if (o.omit) return null;
    const p = c.profile;
    const now = Math.floor(Date.now() / 1000);
    const claims = {
      iss: o.iss ?? url,
      aud: o.aud ?? CLIENT_ID,
      sub: String(p.id),
      iat: now,
      exp: o.exp ?? now + 3600,
      email: p.email,
      email_verified: p.email_verified,
      name: p.name,
      picture: p.avatar_url,
      role: p.role, // a hostile claim: must never reach the user
    };
    if (c.nonce) claims.nonce = o.nonce ?? c.nonce;
    const alg = o.alg ?? 'RS256';
    const key = o.wrongKey ? stranger : alg === 'ES256' ? keys.ec : keys.rsa;
    return signJws(alg, o.kid ?? key.kid, claims, key);
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
    'GET /.well-known/openid-configuration': (q, req, res) =>
      json(res, 200, {
        issuer: url,
        authorization_endpoint: `${url}/o/oauth2/v2/auth`,
        token_endpoint: `${url}/token`,
        userinfo_endpoint: `${url}/v1/userinfo`,
        jwks_uri: `${url}/jwks`,
        id_token_signing_alg_values_supported: ['RS256', 'ES256'],
      }),
    'GET /jwks': (q, req, res) => json(res, 200, { keys: published.map((k) => k.jwk) }),
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
  url = `http://127.0.0.1:${server.address().port}`;
  return {
    url,
    seen,
    /** Bends the next id_token (see the header). */
    nextIdToken(o) {
      idTokenOnce = o;
    },
    /** Publishes a new RSA key (kid rsa-N) and signs with it from now on. */
    rotateKey() {
      keys.rsa = newKey('RSA', `rsa-${published.length + 1}`);
      published.push(keys.rsa);
      return keys.rsa.kid;
    },
    /** Queues the profile the next authorization at provider logs in as. */
    login(provider, profile) {
      queued[provider].push({ avatar_url: 'https://avatars.test/a.png', name: 'Test User', email_verified: true, ...profile });
    },
    stop: () => new Promise((resolve) => server.close(resolve)),
  };
}
