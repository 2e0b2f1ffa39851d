// A local server that speaks Twilio Programmable Messaging's request and
// response shapes, for the provider tests and the SMS benchmark:
//
//   POST /2010-04-01/Accounts/{AccountSid}/Messages.json
//     HTTP basic auth (AccountSid:AuthToken) checked exactly: 401 with
//     Twilio's error 20003 otherwise; form-encoded To (E.164), From or
//     MessagingServiceSid, Body (1..1600 characters), optional StatusCallback;
//     400 with Twilio's error codes (21211 bad To, 21602 no Body, 21604 no
//     From) otherwise; 201 with a Message resource (sid SM + 32 hex, status
//     "queued", price null as at creation).
//   GET /2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json
//     the Message resource as it is now (same auth; 404 with error 20404 for
//     a sid it never issued): its latest status and, like Twilio, `price`
//     null until a while (priceDelayMs) after the final status was
//     reported, then the price (default "-0.00790", `price_unit` "USD").
//   Then, like Twilio, it posts the status callbacks (`sent`, then
//   `delivered`, or whatever statuses the test asks for) to StatusCallback,
//   form-encoded and signed with X-Twilio-Signature exactly as Twilio's
//   "Webhooks security" page describes: base64(HMAC-SHA1(AuthToken,
//   url + every POST parameter name and value, sorted by name)).
//
// No campaignd code is shared: the signature is computed here from the
// documentation, so the C verifier is checked against an independent one.
import crypto from 'node:crypto';
import http from 'node:http';

/** An Etc/GMT zone where it is now about `hour` o'clock (Etc/GMT-5 is
 * UTC+5): SMS go out only in their recipients' waking hours (08:00-21:00). */
export function zoneAt(hour) {
  let off = hour - new Date().getUTCHours();
  if (off > 14) off -= 24;
  if (off < -12) off += 24;
  return off === 0 ? 'UTC' : `Etc/GMT${off > 0 ? '-' : '+'}${Math.abs(off)}`;
}

/** X-Twilio-Signature for a POST of params (an object) to url. */
export function twilioSignature(authToken, url, params) {
  const data = Object.keys(params)
    .sort()
    .reduce((acc, k) => acc + k + params[k], url);
  return crypto.createHmac('sha1', authToken).update(Buffer.from(data, 'utf8')).digest('base64');
}

/** Posts a signed webhook to url as Twilio would; signature overrides the
 * computed one (for forgery tests). Resolves {status, headers, text}. */
export function postTwilioWebhook(url, authToken, params, { signature } = {}) {
  const body = new URLSearchParams(params).toString();
  const sig = signature ?? twilioSignature(authToken, url, params);
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: u.hostname,
        port: u.port,
        path: u.pathname + u.search,
        method: 'POST',
        agent: false,
        headers: {
          'Content-Type': 'application/x-www-form-urlencoded',
          'Content-Length': Buffer.byteLength(body),
          'X-Twilio-Signature': sig,
          'User-Agent': 'TwilioProxy/1.1',
        },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, text }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

function twilioError(res, status, code, message) {
  res.writeHead(status, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify({ code, message, more_info: `https://www.twilio.com/docs/errors/${code}`, status }));
}

/**
 * Starts the server. opts: accountSid, authToken, callbacks (statuses to post
 * after each message, default ['sent', 'delivered']; [] for none), failWith
 * (a function (params) -> {status, code, message} | null to make a send fail),
 * price / priceUnit / priceDelayMs (the price the resource shows once
 * priceDelayMs have passed after the final status callback; default
 * "-0.00790", "USD", 1000). Resolves { url, messages, fetches, callbacksDone(),
 * stop(), live }; each message is {sid, params, at, status, finalAt}, fetches
 * lists the sids GET asked for, with the price answered ({sid, price}); live
 * holds what a test may change while the server runs: priceAtCreation (the
 * create answer already has the price, as Twilio's seldom has; default false).
 * hold (an async function (params, early)): a create request is answered only
 * once the promise it returns settles (a slow provider); early(url) posts the
 * message's status callbacks right away, to url (default StatusCallback; the
 * sid is not known to campaignd yet: a test adds ?m=<message id>), awaited,
 * before the create is answered (a callback that overtakes the answer), and
 * then not again after it.
 */
const FINAL = new Set(['delivered', 'undelivered', 'failed', 'read']);

export async function startFakeTwilio({
  accountSid, authToken, callbacks = ['sent', 'delivered'], failWith,
  price = '-0.00790', priceUnit = 'USD', priceDelayMs = 1000, hold,
} = {}) {
  const messages = [];
  const bySid = new Map();
  const fetches = [];
  const pending = new Set();
  const live = { priceAtCreation: false };
  const resource = (msg, creating = false) => {
    const priced = (creating && live.priceAtCreation) || (msg.finalAt !== null && Date.now() - msg.finalAt >= priceDelayMs);
    const now = new Date().toUTCString();
    return {
      account_sid: accountSid,
      api_version: '2010-04-01',
      body: msg.params.Body,
      date_created: new Date(msg.at).toUTCString(),
      date_sent: msg.status === 'queued' ? null : now,
      date_updated: now,
      direction: 'outbound-api',
      error_code: null,
      error_message: null,
      from: msg.params.From ?? null,
      messaging_service_sid: msg.params.MessagingServiceSid ?? null,
      num_media: '0',
      num_segments: '1',
      price: priced ? price : null,
      price_unit: priceUnit,
      sid: msg.sid,
      status: msg.status,
      subresource_uris: { media: `/2010-04-01/Accounts/${accountSid}/Messages/${msg.sid}/Media.json` },
      to: msg.params.To,
      uri: `/2010-04-01/Accounts/${accountSid}/Messages/${msg.sid}.json`,
    };
  };
  const expectedAuth = 'Basic ' + Buffer.from(`${accountSid}:${authToken}`).toString('base64');
  const server = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (d) => (body += d));
    req.on('end', async () => {
      const g = /^\/2010-04-01\/Accounts\/([^/]+)\/Messages\/([A-Za-z0-9]+)\.json$/.exec(req.url);
      if (req.method === 'GET' && g) {
        if (req.headers.authorization !== expectedAuth || g[1] !== accountSid)
          return twilioError(res, 401, 20003, 'Authenticate');
        const msg = bySid.get(g[2]);
        if (!msg) return twilioError(res, 404, 20404, 'The requested resource was not found');
        const r = resource(msg);
        fetches.push({ sid: msg.sid, price: r.price });
        res.writeHead(200, { 'Content-Type': 'application/json' });
        return res.end(JSON.stringify(r));
      }
      const m = /^\/2010-04-01\/Accounts\/([^/]+)\/Messages\.json$/.exec(req.url);
      if (req.method !== 'POST' || !m) return twilioError(res, 404, 20404, 'The requested resource was not found');
      if (req.headers.authorization !== expectedAuth || m[1] !== accountSid)
        return twilioError(res, 401, 20003, 'Authenticate');
      if (!String(req.headers['content-type'] || '').startsWith('application/x-www-form-urlencoded'))
        return twilioError(res, 400, 20001, 'Content-Type must be application/x-www-form-urlencoded');
      const params = Object.fromEntries(new URLSearchParams(body));
      if (!/^\+[1-9][0-9]{1,14}$/.test(params.To || ''))
        return twilioError(res, 400, 21211, `The 'To' number ${params.To} is not a valid phone number.`);
      if (!params.From && !params.MessagingServiceSid)
        return twilioError(res, 400, 21604, "A 'From' phone number is required.");
      if (!params.Body || [...params.Body].length > 1600)
        return twilioError(res, 400, 21602, 'Message body is required.');
      const fail = failWith?.(params);
      if (fail) return twilioError(res, fail.status, fail.code, fail.message);
      const sid = 'SM' + crypto.randomBytes(16).toString('hex');
      const msg = { sid, params, at: Date.now(), status: 'queued', finalAt: null };
      let posted = false;
      const post = async (url = params.StatusCallback) => {
        posted = true;
        for (const status of callbacks) {
          msg.status = status;
          if (FINAL.has(status)) msg.finalAt = Date.now();
          await postTwilioWebhook(url, authToken, {
            AccountSid: accountSid,
            ApiVersion: '2010-04-01',
            From: params.From ?? '',
            MessageSid: sid,
            MessageStatus: status,
            SmsSid: sid,
            SmsStatus: status,
            To: params.To,
          }).catch(() => {});
        }
      };
      if (hold) {
        await hold(params, async (url) => {
          if (params.StatusCallback && callbacks.length) await post(url);
        });
      }
      messages.push(msg);
      bySid.set(sid, msg);
      res.writeHead(201, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify(resource(msg, true)));
      if (params.StatusCallback && callbacks.length && !posted) {
        const p = post();
        pending.add(p);
        p.finally(() => pending.delete(p));
      }
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${server.address().port}`;
  return {
    url,
    messages,
    fetches,
    callbacksDone: () => Promise.all([...pending]),
    stop: () => new Promise((r) => server.close(r)),
    live,
  };
}
