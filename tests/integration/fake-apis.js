// Local stand-ins for the HTTP APIs the connectors read (issue 11), speaking
// the documented request and answer shapes, so connectors-http.test.js runs
// without the internet:
//
//   /rest/*         a JSON API for rest_api: page, offset, cursor and Link
//                   pagination, NDJSON, an incremental filter, 429 + Retry-After
//   /google/token   the OAuth token endpoint of Google service accounts: the
//                   JWT-bearer grant (RFC 7523), the assertion's RS256 signature
//                   checked with the test's public key, iss/aud/scope/exp checked
//   /ga/v1beta/properties/{id}:runReport   GA4 Data API (limit/offset, rowCount)
//   /meta/{version}/{act_id}/insights       Marketing API insights (time_increment=1,
//                   paging.next, error code 190 for an expired token)
//   /bq/bigquery/v2/projects/{p}/queries    jobs.query (jobComplete false first)
//                   and getQueryResults (pageToken)
//   /sf/api/v2/statements                   Snowflake SQL API v2: key-pair JWT
//                   (iss ACCOUNT.USER.SHA256:<fingerprint>), 202 then polling,
//                   two result partitions, DATE as days since the epoch
//
// Every request is recorded in `calls` (method, path, query, headers, body).
import http from 'node:http';
import crypto from 'node:crypto';

function b64urlJson(part) {
  return JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
}

/** Verifies a compact RS256 JWT with publicKey; returns {header, claims} or null. */
export function verifyRs256(token, publicKey) {
  const parts = String(token || '').split('.');
  if (parts.length !== 3) return null;
  const ok = crypto.verify('RSA-SHA256', Buffer.from(`${parts[0]}.${parts[1]}`), publicKey, Buffer.from(parts[2], 'base64url'));
  if (!ok) return null;
  const header = b64urlJson(parts[0]);
  if (header.alg !== 'RS256') return null;
  return { header, claims: b64urlJson(parts[1]) };
}

/** Snowflake's public key fingerprint: SHA256:base64(sha256(DER SPKI)). */
export function snowflakeFingerprint(publicKey) {
  const der = crypto.createPublicKey(publicKey).export({ type: 'spki', format: 'der' });
  return 'SHA256:' + crypto.createHash('sha256').update(der).digest('base64');
}

function days(from, to) {
  const out = [];
  for (let d = new Date(`${from}T00:00:00Z`); d <= new Date(`${to}T00:00:00Z`); d = new Date(d.getTime() + 86400000)) {
    out.push(d.toISOString().slice(0, 10));
  }
  return out;
}

export async function startFakeApis() {
  const keys = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const privatePem = keys.privateKey.export({ type: 'pkcs8', format: 'pem' });
  const publicPem = keys.publicKey.export({ type: 'spki', format: 'pem' });
  const state = {
    calls: [],
    items: [], // rest_api records: {id, name, email, updated_at, owner: {city}}
    tokens: new Set(['tok-1']), // valid bearer tokens of /rest
    googleTokens: new Set(),
    metaToken: 'meta-ok',
    limited: new Map(), // path -> number of 429 answers still to give
    retryAfter: '1',
    ga4Values: { sessions: 10, conversions: 2 }, // per day and country, scaled below
    privatePem,
    publicPem,
  };
  let base = '';

  function send(res, status, body, headers = {}) {
    const text = typeof body === 'string' ? body : JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', ...headers });
    res.end(text);
  }

  function bearer(req) {
    const m = /^Bearer (.+)$/.exec(req.headers.authorization || '');
    return m ? m[1] : null;
  }

  // ------------------------------------------------------------ rest_api
  function rest(req, res, u) {
    const tok = bearer(req);
    if (!tok || !state.tokens.has(tok)) {
      send(res, 401, { message: 'invalid or revoked token' });
      return;
    }
    const left = state.limited.get(u.pathname) || 0;
    if (left > 0) {
      state.limited.set(u.pathname, left - 1);
      send(res, 429, { message: 'slow down' }, { 'retry-after': state.retryAfter });
      return;
    }
    let items = state.items;
    const since = u.searchParams.get('updated_since');
    if (since) items = items.filter((i) => i.updated_at > since);
    const q = (k, d) => (u.searchParams.has(k) ? Number(u.searchParams.get(k)) : d);
    switch (u.pathname) {
      case '/rest/page': {
        const page = q('page', 1);
        const per = q('per_page', 2);
        send(res, 200, { data: { items: items.slice((page - 1) * per, page * per), page } });
        return;
      }
      case '/rest/offset': {
        const off = q('offset', 0);
        const lim = q('limit', 2);
        send(res, 200, { results: items.slice(off, off + lim), total: items.length });
        return;
      }
      case '/rest/cursor': {
        const start = u.searchParams.get('cursor') ? Number(Buffer.from(u.searchParams.get('cursor'), 'base64url').toString()) : 0;
        const slice = items.slice(start, start + 2);
        const next = start + 2 < items.length ? Buffer.from(String(start + 2)).toString('base64url') : null;
        send(res, 200, { data: slice, meta: { next_cursor: next } });
        return;
      }
      case '/rest/link': {
        const page = q('p', 1);
        const headers = {};
        const links = [`<${base}/rest/link?p=1>; rel="first"`];
        if (page * 2 < items.length) links.push(`</rest/link?p=${page + 1}>; rel="next"`); // relative, as GitHub's are not
        headers.link = links.join(', ');
        send(res, 200, items.slice((page - 1) * 2, page * 2), headers);
        return;
      }
      case '/rest/link-away': {
        // the next page on another host (localhost is not 127.0.0.1): must not get the token
        const port = new URL(base).port;
        send(res, 200, items.slice(0, 2), { link: `<http://localhost:${port}/rest/link?p=2>; rel="next"` });
        return;
      }
      case '/rest/ndjson': {
        res.writeHead(200, { 'content-type': 'application/x-ndjson' });
        res.end(items.map((i) => JSON.stringify(i)).join('\n') + '\n');
        return;
      }
      default:
        send(res, 404, { message: 'no such endpoint' });
    }
  }

  // ------------------------------------------------------------ Google
  function googleToken(req, res, body) {
    const form = new URLSearchParams(body);
    if (req.headers['content-type'] !== 'application/x-www-form-urlencoded' ||
        form.get('grant_type') !== 'urn:ietf:params:oauth:grant-type:jwt-bearer') {
      send(res, 400, { error: 'unsupported_grant_type', error_description: 'Invalid grant_type' });
      return;
    }
    const v = verifyRs256(form.get('assertion'), state.publicPem);
    const now = Math.floor(Date.now() / 1000);
    if (!v) {
      send(res, 400, { error: 'invalid_grant', error_description: 'Invalid JWT Signature.' });
      return;
    }
    const c = v.claims;
    if (c.aud !== `${base}/google/token` || !c.iss || !c.scope || !(c.exp > now) || c.exp - c.iat > 3600) {
      send(res, 400, { error: 'invalid_grant', error_description: 'Invalid JWT: bad claims.' });
      return;
    }
    const token = `ya29.${crypto.randomBytes(12).toString('hex')}`;
    state.googleTokens.add(`${token}|${c.scope}`);
    send(res, 200, { access_token: token, expires_in: 3599, token_type: 'Bearer' });
  }

  function googleAuthorized(req, scope) {
    return state.googleTokens.has(`${bearer(req)}|${scope}`);
  }

  function runReport(req, res, body) {
    if (!googleAuthorized(req, 'https://www.googleapis.com/auth/analytics.readonly')) {
      send(res, 401, { error: { code: 401, message: 'Request had invalid authentication credentials.', status: 'UNAUTHENTICATED' } });
      return;
    }
    const r = JSON.parse(body);
    const dims = r.dimensions.map((d) => d.name);
    const mets = r.metrics.map((m) => m.name);
    if (dims[0] !== 'date') {
      send(res, 400, { error: { code: 400, message: 'date must be a dimension in this fake', status: 'INVALID_ARGUMENT' } });
      return;
    }
    const rows = [];
    for (const day of days(r.dateRanges[0].startDate, r.dateRanges[0].endDate)) {
      for (const country of ['US', 'FR']) {
        rows.push({
          dimensionValues: dims.map((d) => ({ value: d === 'date' ? day.replaceAll('-', '') : d === 'country' ? country : '(not set)' })),
          metricValues: mets.map((m) => ({ value: String((state.ga4Values[m] ?? 1) * (country === 'US' ? 2 : 1)) })),
        });
      }
    }
    const limit = Math.min(Number(r.limit || 10000), 3); // the API may answer fewer rows than asked
    const offset = Number(r.offset || 0);
    send(res, 200, {
      dimensionHeaders: dims.map((name) => ({ name })),
      metricHeaders: mets.map((name) => ({ name, type: 'TYPE_INTEGER' })),
      rows: rows.slice(offset, offset + limit),
      rowCount: rows.length,
      metadata: { currencyCode: 'USD', timeZone: 'UTC' },
      kind: 'analyticsData#runReport',
    });
  }

  // ------------------------------------------------------------ Meta
  function insights(req, res, u) {
    if (bearer(req) !== state.metaToken) {
      send(res, 400, { error: { message: 'Error validating access token: Session has expired.', type: 'OAuthException', code: 190, error_subcode: 463 } });
      return;
    }
    const range = JSON.parse(u.searchParams.get('time_range'));
    const fields = u.searchParams.get('fields').split(',');
    const rows = [];
    for (const day of days(range.since, range.until)) {
      const row = { date_start: day, date_stop: day };
      for (const f of fields) {
        if (f === 'actions') row.actions = [{ action_type: 'offsite_conversion.fb_pixel_purchase', value: '3' }, { action_type: 'link_click', value: '7' }];
        else row[f] = f === 'spend' ? '12.50' : '100';
      }
      rows.push(row);
    }
    const after = Number(u.searchParams.get('after') || 0);
    const page = rows.slice(after, after + 2);
    const paging = { cursors: { before: String(after), after: String(after + 2) } };
    if (after + 2 < rows.length) {
      const next = new URL(u.toString(), base);
      next.searchParams.set('after', String(after + 2));
      paging.next = `${base}${next.pathname}${next.search}`;
    }
    send(res, 200, { data: page, paging });
  }

  // ------------------------------------------------------------ BigQuery
  const bqRows = [
    ['2024-03-01', 'spring', '10', '1.5'],
    ['2024-03-01', 'brand', '4', '0.25'],
    ['2024-03-02', 'spring', '12', '2'],
    ['2024-03-02', 'brand', '5', null],
    ['2024-03-03', 'spring', '9', '1'],
  ];
  const bqSchema = { fields: [
    { name: 'date', type: 'DATE', mode: 'NULLABLE' },
    { name: 'campaign', type: 'STRING', mode: 'NULLABLE' },
    { name: 'clicks', type: 'INTEGER', mode: 'NULLABLE' },
    { name: 'cost', type: 'FLOAT', mode: 'NULLABLE' },
  ] };
  function bqPage(start) {
    const rows = bqRows.slice(start, start + 2).map((r) => ({ f: r.map((v) => ({ v })) }));
    const out = { kind: 'bigquery#getQueryResultsResponse', schema: bqSchema, totalRows: String(bqRows.length), rows, jobComplete: true,
      jobReference: { projectId: 'proj-1', jobId: 'job_abc', location: 'EU' } };
    if (start + 2 < bqRows.length) out.pageToken = `tok${start + 2}`;
    return out;
  }
  function bigquery(req, res, u, body) {
    if (!googleAuthorized(req, 'https://www.googleapis.com/auth/bigquery.readonly')) {
      send(res, 401, { error: { code: 401, message: 'Request had invalid authentication credentials.', status: 'UNAUTHENTICATED' } });
      return;
    }
    if (req.method === 'POST' && u.pathname === '/bq/bigquery/v2/projects/proj-1/queries') {
      const q = JSON.parse(body);
      if (q.useLegacySql !== false || !q.query) {
        send(res, 400, { error: { code: 400, message: 'query and useLegacySql=false expected' } });
        return;
      }
      send(res, 200, { kind: 'bigquery#queryResponse', jobReference: { projectId: 'proj-1', jobId: 'job_abc', location: 'EU' }, jobComplete: false });
      return;
    }
    if (req.method === 'GET' && u.pathname === '/bq/bigquery/v2/projects/proj-1/queries/job_abc') {
      const t = u.searchParams.get('pageToken');
      send(res, 200, bqPage(t ? Number(t.slice(3)) : 0));
      return;
    }
    send(res, 404, { error: { code: 404, message: 'Not found' } });
  }

  // ------------------------------------------------------------ Snowflake
  const sfPartitions = [
    [['19783', 'EMAIL', '30'], ['19783', 'SMS', '5']], // 2024-03-01
    [['19784', 'EMAIL', '31']],
  ];
  function snowflake(req, res, u, body) {
    const fp = snowflakeFingerprint(state.publicPem);
    const v = verifyRs256(bearer(req), state.publicPem);
    const now = Math.floor(Date.now() / 1000);
    if (req.headers['x-snowflake-authorization-token-type'] !== 'KEYPAIR_JWT' || !v ||
        v.claims.iss !== `ACME.LOADER.${fp}` || v.claims.sub !== 'ACME.LOADER' || !(v.claims.exp > now) || v.claims.exp - v.claims.iat > 3600) {
      send(res, 401, { code: '390144', message: 'JWT token is invalid.' });
      return;
    }
    if (req.method === 'POST' && u.pathname === '/sf/api/v2/statements') {
      const s = JSON.parse(body);
      if (!s.statement) {
        send(res, 422, { code: '002140', message: 'statement expected' });
        return;
      }
      send(res, 202, { code: '333334', message: 'Asynchronous execution in progress. Use provided query id to perform query monitoring and management.',
        statementHandle: '01b2c3d4-0000-0001-0000-000000000001', statementStatusUrl: '/api/v2/statements/01b2c3d4-0000-0001-0000-000000000001' });
      return;
    }
    if (req.method === 'GET' && u.pathname === '/sf/api/v2/statements/01b2c3d4-0000-0001-0000-000000000001') {
      const p = u.searchParams.get('partition');
      if (p) {
        send(res, 200, { data: sfPartitions[Number(p)] || [] });
        return;
      }
      send(res, 200, {
        resultSetMetaData: { numRows: 3, format: 'jsonv2',
          partitionInfo: sfPartitions.map((d) => ({ rowCount: d.length, uncompressedSize: 100 })),
          rowType: [{ name: 'DAY', type: 'date', nullable: false }, { name: 'CHANNEL', type: 'text', nullable: false }, { name: 'SENT', type: 'fixed', nullable: false }] },
        data: sfPartitions[0], code: '090001', statementStatusUrl: '/api/v2/statements/01b2c3d4-0000-0001-0000-000000000001',
        statementHandle: '01b2c3d4-0000-0001-0000-000000000001', message: 'Statement executed successfully.', createdOn: Date.now(),
      });
      return;
    }
    send(res, 404, { code: '000404', message: 'not found' });
  }

  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      const u = new URL(req.url, 'http://x');
      state.calls.push({ method: req.method, path: u.pathname, query: Object.fromEntries(u.searchParams), headers: req.headers, body });
      try {
        if (u.pathname.startsWith('/rest/')) rest(req, res, u);
        else if (u.pathname === '/google/token' && req.method === 'POST') googleToken(req, res, body);
        else if (/^\/ga\/v1beta\/properties\/\d+:runReport$/.test(u.pathname) && req.method === 'POST') runReport(req, res, body);
        else if (/^\/meta\/v[\d.]+\/act_\d+\/insights$/.test(u.pathname)) insights(req, res, u);
        else if (u.pathname.startsWith('/bq/')) bigquery(req, res, u, body);
        else if (u.pathname.startsWith('/sf/')) snowflake(req, res, u, body);
        else send(res, 404, { message: 'no such endpoint' });
      } catch (e) {
        send(res, 400, { message: String(e) });
      }
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${server.address().port}`;
  return {
    url: base,
    state,
    calls: (prefix) => state.calls.filter((c) => c.path.startsWith(prefix)),
    stop: () => new Promise((r) => { server.closeAllConnections?.(); server.close(r); }),
  };
}
