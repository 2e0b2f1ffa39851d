// Shared pieces of the dashboard: the supabase-js client (the anon key comes
// from /config.js at run time, never from the build), the /api helper with
// errors that say what to do, the app's time zone, and small UI hooks.
import { h } from 'preact';
import { useEffect, useState, useCallback, useRef } from 'preact/hooks';
import htm from 'htm';
import { createClient } from '@supabase/supabase-js';

export const html = htm.bind(h);

const runtime = window.CAMPAIGND || {};
export const anonKey = runtime.anonKey || '';
// Whether this browser held a session before the client started: if the client
// then has none, it could not be refreshed (revoked or expired). supabase-js
// may say SIGNED_OUT during its start-up, before the shell listens.
export const hadStoredSession = (() => {
  try { return !!window.localStorage.getItem('campaignd-auth'); } catch { return false; }
})();

export const supabase = createClient(window.location.origin, anonKey, {
  auth: { persistSession: true, autoRefreshToken: true, detectSessionInUrl: false, storageKey: 'campaignd-auth' },
  realtime: { params: { eventsPerSecond: 10 } },
});

// What a status means for the person in front of the screen.
const ADVICE = {
  0: 'Cannot reach the server. Check your connection and try again.',
  401: 'Your session has ended. Sign in again.',
  403: 'Your role does not allow this. Ask an admin if you need it.',
  404: 'It does not exist, or you cannot see it.',
  409: 'This conflicts with the current state; reload and try again.',
  413: 'That is too large.',
  429: 'Too many attempts. Wait a minute and try again.',
  503: 'The database is unavailable. Try again in a moment.',
};

export class ApiError extends Error {
  constructor(status, code, message, details, hint) {
    super(message || ADVICE[status] || `Request failed (${status}).`);
    this.status = status;
    this.code = code;
    this.details = details;
    this.hint = hint;
  }
  get advice() {
    if (this.status === 400 || this.status === 422 || this.status === 409) return this.hint || '';
    return ADVICE[this.status] || (this.status >= 500 ? 'Something went wrong on the server. Try again.' : '');
  }
}

/** Turns a supabase-js error (PostgREST or auth) into an ApiError. */
export function fromSupabase(error, status) {
  if (error instanceof ApiError) return error;
  const st = error.status || status || (error.code === '42501' ? 403 : 400);
  return new ApiError(st, error.code, error.message, error.details, error.hint);
}

/** supabase-js's { data, error, count } → data, throwing an ApiError. */
export async function q(promise) {
  const { data, error, count, status } = await promise;
  if (error) throw fromSupabase(error, status);
  return count === undefined || count === null ? data : { data, count };
}

/** Every row of a query that may exceed one response: /rest/v1 answers at most
 * DB_MAX_ROWS rows per request (1,000 by default, maybe fewer), so pickers read
 * page by page until an empty page. build(from, to) returns the query for rows
 * from..to. */
export async function allPages(build, page = 1000) {
  const all = [];
  for (;;) {
    const rows = await q(build(all.length, all.length + page - 1));
    if (!rows.length) return all;
    all.push(...rows);
  }
}

/** The rows of one page of a list, with the total for the Pager. */
export const PER_PAGE = 25;
export function pageRange(builder, page, perPage = PER_PAGE) {
  return builder.range((page - 1) * perPage, page * perPage - 1);
}

/** Keeps a paged list on a page that exists when rows go away under it
 * (deleted here, or by someone else through realtime): past the last page it
 * moves to the last one; a range past the end (416) goes back to page 1. */
export function usePageClamp(state, page, setPage, perPage = PER_PAGE) {
  useEffect(() => {
    if (page <= 1) return;
    const count = state.data?.count;
    if (typeof count === 'number' && (page - 1) * perPage >= count) setPage(Math.max(1, Math.ceil(count / perPage)));
    else if (state.error?.status === 416) setPage(1);
  }, [state.data, state.error, page]);
}

export async function accessToken() {
  const { data } = await supabase.auth.getSession();
  return data.session ? data.session.access_token : null;
}

/** Calls the domain API (/api/...) as the signed-in user. */
export async function api(path, { method = 'GET', body, raw = false } = {}) {
  const headers = { apikey: anonKey };
  const tok = await accessToken();
  if (tok) headers.Authorization = `Bearer ${tok}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    throw new ApiError(0, 'network', ADVICE[0]);
  }
  if (!res.ok) {
    let j = {};
    try { j = await res.json(); } catch { /* not JSON */ }
    throw new ApiError(res.status, j.code, j.message || ADVICE[res.status], j.details, j.hint);
  }
  if (raw) return res;
  const total = res.headers.get('X-Total-Count');
  const data = res.status === 204 ? null : await res.json();
  return { data, total: total === null ? null : Number(total) };
}

/** Downloads an /api file (the export endpoints need the auth headers, so a plain link cannot). */
export async function download(path, fallbackName) {
  const res = await api(path, { raw: true });
  const cd = res.headers.get('Content-Disposition') || '';
  const m = /filename="([^"]+)"/.exec(cd);
  const blob = await res.blob();
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = m ? m[1] : fallbackName;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

// ---- the signed-in user and the app settings --------------------------------

export function roleOf(session) {
  return session?.user?.app_metadata?.role || 'user';
}
export const canWrite = (role) => role === 'admin' || role === 'user';

let appTimeZone = 'America/New_York';
export function setTimeZone(tz) {
  try { new Intl.DateTimeFormat('en-US', { timeZone: tz }); appTimeZone = tz; } catch { /* keep the default */ }
}
export const timeZone = () => appTimeZone;

let appDateFormat = 'MM/DD/YYYY'; // app_settings.date_format
export function setDateFormat(f) {
  if (['MM/DD/YYYY', 'DD/MM/YYYY', 'YYYY-MM-DD', 'DD.MM.YYYY'].includes(f)) appDateFormat = f;
}

/** A timestamp shown in the app's time zone and date format, e.g. 12/05/2026 09:30. */
export function fmtTime(ts) {
  if (!ts) return '—';
  const d = new Date(ts);
  if (Number.isNaN(d.getTime())) return String(ts);
  const p = {};
  for (const x of new Intl.DateTimeFormat('en-US', {
    timeZone: appTimeZone, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit',
  }).formatToParts(d)) p[x.type] = x.value;
  const date = appDateFormat.replace('YYYY', p.year).replace('MM', p.month).replace('DD', p.day);
  return `${date} ${p.hour}:${p.minute}`;
}

export function fmtNum(n, digits = 0) {
  if (n === null || n === undefined || n === '') return '—';
  return Number(n).toLocaleString(undefined, { maximumFractionDigits: digits });
}

/** Offset of tz from UTC in minutes at the instant ms. */
function tzOffset(ms, tz) {
  const p = {};
  for (const x of new Intl.DateTimeFormat('en-US', {
    timeZone: tz, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit',
    hour: '2-digit', minute: '2-digit', second: '2-digit',
  }).formatToParts(new Date(ms))) p[x.type] = x.value;
  const asUtc = Date.UTC(+p.year, +p.month - 1, +p.day, +p.hour, +p.minute, +p.second);
  return Math.round((asUtc - ms) / 60000);
}

/** "2030-01-31T09:00" read as a wall-clock time in the app's zone → ISO 8601 UTC. */
export function zonedToIso(local) {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})$/.exec(local || '');
  if (!m) return null;
  const guess = Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5]);
  let ms = guess - tzOffset(guess, appTimeZone) * 60000;
  ms = guess - tzOffset(ms, appTimeZone) * 60000;
  return new Date(ms).toISOString();
}

/** ISO timestamp → "YYYY-MM-DDTHH:MM" wall clock in the app's zone (for datetime-local inputs). */
export function isoToZoned(iso) {
  if (!iso) return '';
  const ms = new Date(iso).getTime();
  if (Number.isNaN(ms)) return '';
  const d = new Date(ms + tzOffset(ms, appTimeZone) * 60000);
  return d.toISOString().slice(0, 16);
}

/** Today as YYYY-MM-DD in the app's zone, optionally shifted by days. */
export function today(shiftDays = 0) {
  const ms = Date.now() + tzOffset(Date.now(), appTimeZone) * 60000 + shiftDays * 86400000;
  return new Date(ms).toISOString().slice(0, 10);
}

// ---- hooks ---------------------------------------------------------------

/** Runs fn() when deps change; { loading, error, data, reload }. */
export function useAsync(fn, deps) {
  const [state, setState] = useState({ loading: true, error: null, data: null });
  const gen = useRef(0);
  const run = useCallback(() => {
    const my = ++gen.current;
    setState((s) => ({ ...s, loading: true, error: null }));
    Promise.resolve().then(fn).then(
      (data) => { if (my === gen.current) setState({ loading: false, error: null, data }); },
      (error) => { if (my === gen.current) setState({ loading: false, error, data: null }); },
    );
  }, deps);
  useEffect(run, [run]);
  return { ...state, reload: run };
}

/** Subscribes to postgres_changes of tables while mounted; calls onChange(payload).
 * filter (e.g. "campaign_id=eq.<uuid>") is applied by the server. onResubscribe
 * runs when the channel joins again after the connection was lost (not on the
 * first join): changes made meanwhile were not delivered, so a page that
 * follows a row through realtime alone refetches it then, and only then.
 * Returns a ref to a promise that resolves once the channel has joined. */
export function useRealtime(name, tables, onChange, filter, onResubscribe) {
  const cb = useRef(onChange);
  cb.current = onChange;
  const again = useRef(onResubscribe);
  again.current = onResubscribe;
  const joined = useRef(Promise.resolve());
  useEffect(() => {
    let ch = supabase.channel(`${name}-${Math.random().toString(36).slice(2)}`);
    for (const table of tables)
      ch = ch.on('postgres_changes', { event: '*', schema: 'public', table, ...(filter ? { filter } : {}) }, (p) => cb.current(p));
    let resolve;
    joined.current = new Promise((r) => { resolve = r; });
    let first = true;
    ch.subscribe((status) => {
      if (status !== 'SUBSCRIBED') return;
      resolve();
      if (!first && again.current) again.current();
      first = false;
    });
    return () => { resolve(); supabase.removeChannel(ch); };
  }, [name, tables.join(','), filter]);
  return joined;
}

// ---- small components ------------------------------------------------------

/** Loading / error / empty states of a list or a page. */
export function Status({ state, empty, emptyText, children }) {
  if (state.loading && !state.data) return html`<p class="state" role="status" aria-live="polite"><span class="spinner" aria-hidden="true"></span> Loading…</p>`;
  if (state.error) return html`<${ErrorBox} error=${state.error} retry=${state.reload} />`;
  if (empty) return html`<p class="state empty">${emptyText || 'Nothing here yet.'}</p>`;
  return children;
}

export function ErrorBox({ error, retry }) {
  if (!error) return null;
  const advice = error.advice !== undefined ? error.advice : '';
  return html`<div class="error" role="alert">
    <strong>${error.message}</strong>${advice && advice !== error.message ? html` <span>${advice}</span>` : null}
    ${retry ? html` <button type="button" class="link" onClick=${retry}>Try again</button>` : null}
  </div>`;
}

export function Field({ label, id, hint, children }) {
  return html`<div class="field"><label for=${id}>${label}</label>${children}${hint ? html`<small id=${`${id}-hint`}>${hint}</small>` : null}</div>`;
}

export function Pager({ page, perPage, total, onPage }) {
  const last = Math.max(1, Math.ceil((total || 0) / perPage));
  return html`<nav class="pager" aria-label="Pages">
    <button type="button" disabled=${page <= 1} onClick=${() => onPage(page - 1)}>Previous</button>
    <span aria-live="polite">Page ${page} of ${last} · ${fmtNum(total)} total</span>
    <button type="button" disabled=${page >= last} onClick=${() => onPage(page + 1)}>Next</button>
  </nav>`;
}

export function Badge({ value }) {
  return html`<span class=${`badge b-${String(value).replace(/[^a-z_]/g, '')}`}>${value}</span>`;
}

/** A toast line for the result of an action. */
export function useFlash() {
  const [msg, setMsg] = useState(null);
  const show = useCallback((text, kind = 'ok') => setMsg({ text, kind, at: Date.now() }), []);
  const view = msg ? html`<p class=${`flash ${msg.kind}`} role=${msg.kind === 'ok' ? 'status' : 'alert'}>${msg.text}</p>` : null;
  return [view, show];
}
