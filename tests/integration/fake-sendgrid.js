// A local server that speaks SendGrid v3 Mail Send's request and response
// shapes, and a signer of Event Webhook posts:
//
//   POST /v3/mail/send
//     Authorization: Bearer <API key> checked exactly (401 with SendGrid's
//     {"errors":[...]} otherwise); a JSON body with 1..1000 personalizations
//     each with to[].email, from.email, a subject, content[] with text/plain
//     first; 400 with {"errors":[{message, field, help}]} otherwise; 202 with
//     an empty body and X-Message-Id.
//   Event Webhook: events are posted with X-Twilio-Email-Event-Webhook-
//     Signature = base64(DER ECDSA P-256 signature over SHA-256 of timestamp +
//     body) and -Timestamp, as SendGrid's "Getting started with the Event
//     Webhook security features" describes, with a key pair made here by
//     node:crypto; publicKey is what SendGrid's console shows (base64 DER).
import crypto from 'node:crypto';
import http from 'node:http';

/** A P-256 key pair; publicKey as SendGrid shows it (base64 DER SPKI). */
export function makeEventKey() {
  const { publicKey, privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  return { privateKey, publicKey: publicKey.export({ type: 'spki', format: 'der' }).toString('base64') };
}

/** The two signature headers for body (a string) at timestamp. */
export function signEvents(privateKey, body, timestamp = String(Math.floor(Date.now() / 1000))) {
  const sig = crypto.sign('sha256', Buffer.from(timestamp + body, 'utf8'), privateKey).toString('base64');
  return {
    'X-Twilio-Email-Event-Webhook-Signature': sig,
    'X-Twilio-Email-Event-Webhook-Timestamp': timestamp,
  };
}

/** Posts an event batch (array, or a raw string) to url signed with
 * privateKey; headers overrides any header. Resolves {status, text, json}. */
export function postEvents(url, privateKey, events, { headers = {}, timestamp } = {}) {
  const body = typeof events === 'string' ? events : JSON.stringify(events);
  const h = {
    'Content-Type': 'application/json',
    'User-Agent': 'SendGrid Event API',
    ...signEvents(privateKey, body, timestamp),
    ...headers,
  };
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: u.hostname, port: u.port, path: u.pathname, method: 'POST', agent: false,
        headers: { ...h, 'Content-Length': Buffer.byteLength(body) } },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (text += d));
        res.on('end', () => {
          let json;
          try { json = JSON.parse(text); } catch { json = undefined; }
          resolve({ status: res.statusCode, text, json });
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

function sgErrors(res, status, errors) {
  res.writeHead(status, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify({ errors }));
}

/** Checks a Mail Send body; returns SendGrid-shaped errors ([] when fine). */
export function mailSendErrors(b) {
  const e = [];
  const ps = b?.personalizations;
  if (!Array.isArray(ps) || ps.length < 1 || ps.length > 1000)
    e.push({ message: 'The personalizations field is required and must have at least one personalization.', field: 'personalizations', help: null });
  else
    ps.forEach((p, i) => {
      if (!Array.isArray(p.to) || !p.to.length || p.to.some((t) => !/^[^@\s]+@[^@\s]+$/.test(t?.email ?? '')))
        e.push({ message: 'Does not contain a valid address.', field: `personalizations.${i}.to`, help: null });
    });
  if (!/^[^@\s]+@[^@\s]+$/.test(b?.from?.email ?? ''))
    e.push({ message: 'The from object must be provided for every email send.', field: 'from', help: null });
  if (typeof b?.subject !== 'string' || !b.subject)
    e.push({ message: 'The subject is required.', field: 'subject', help: null });
  if (!Array.isArray(b?.content) || !b.content.length || b.content[0].type !== 'text/plain' || b.content.some((c) => typeof c.value !== 'string'))
    e.push({ message: 'If present, text/plain must be first, followed by any other content.', field: 'content', help: null });
  return e;
}

/** Starts the Mail Send server. Resolves { url, requests, stop() }. */
export async function startFakeSendGrid({ apiKey } = {}) {
  const requests = [];
  // pause(): Mail Send requests are recorded but answered only at resume(),
  // so a test can look at what the sender holds in flight meanwhile
  let paused = false;
  const held = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      if (req.method !== 'POST' || req.url !== '/v3/mail/send')
        return sgErrors(res, 404, [{ message: 'resource not found', field: null, help: null }]);
      if (req.headers.authorization !== `Bearer ${apiKey}`)
        return sgErrors(res, 401, [{ message: 'The provided authorization grant is invalid, expired, or revoked', field: null, help: null }]);
      let b;
      try { b = JSON.parse(body); } catch { return sgErrors(res, 400, [{ message: 'Bad Request', field: null, help: null }]); }
      const errors = mailSendErrors(b);
      if (errors.length) return sgErrors(res, 400, errors);
      const id = crypto.randomBytes(11).toString('base64url');
      requests.push({ body: b, messageId: id });
      const answer = () => {
        res.writeHead(202, { 'X-Message-Id': id, 'Content-Length': '0' });
        res.end();
      };
      if (paused) held.push(answer);
      else answer();
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    requests,
    pause: () => { paused = true; },
    resume: () => { paused = false; held.splice(0).forEach((answer) => answer()); },
    stop: () => new Promise((r) => { held.splice(0).forEach((answer) => answer()); server.close(r); }),
  };
}
