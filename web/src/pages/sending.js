// Sending a campaign from its page: the send engine's buttons (POST
// /api/campaigns/:id/send|pause|resume|cancel, docs/sending.md), a test send,
// the live progress of the campaign's messages and the pause reason; and the
// sender fields of the campaign editor (template, subject, from, SMS sender),
// which /api/campaigns does not take: they are written through /rest/v1,
// where column privileges and the same-owner trigger (migration 026) decide.
import { useState, useEffect, useRef } from 'preact/hooks';
import { html, api, supabase, q, allPages, useRealtime, ErrorBox, Field, fmtNum, ApiError } from '../lib.js';

/** The engine's buttons from each status: [action, label]. "schedule" moves
 * the campaign through PUT /api/campaigns/:id with a date (the scheduler
 * starts it); the others are the engine's POST routes. */
export const ENGINE_ACTIONS = {
  draft: [['schedule', 'Schedule'], ['send', 'Send now'], ['cancel', 'Cancel campaign']],
  scheduled: [['send', 'Send now'], ['pause', 'Pause'], ['cancel', 'Cancel campaign']],
  sending: [['pause', 'Pause'], ['cancel', 'Cancel campaign']],
  paused: [['resume', 'Resume'], ['schedule', 'Reschedule'], ['cancel', 'Cancel campaign']],
};

export const isSent = (c) => c.type === 'email' || c.type === 'sms';

// What the dashboard tells a user to do about the engine's 409s; the
// server's own message is shown first, as it is.
const TODO = {
  provider_not_configured: 'An administrator sets the provider in the server configuration (SMTP_URL for e-mail, TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN for SMS); see docs/sending.md.',
  postal_address_missing: 'An administrator enters the organisation\'s postal address in the app settings (Admin → Settings, or app_settings.postal_address): every marketing e-mail carries it.',
  external_url_missing: 'An administrator sets API_EXTERNAL_URL, the public address of this server, in its configuration.',
  no_content: 'Pick a template or write the content in Edit campaign, then try again.',
  no_subject: 'Give the campaign (or its template) a subject in Edit campaign, then try again.',
};

/** An /api error with what to do about it, for ErrorBox. */
export function withAdvice(err) {
  if (!(err instanceof ApiError) || !TODO[err.code]) return err;
  const e = new ApiError(err.status, err.code, err.message, err.details, TODO[err.code]);
  return e;
}

/** Calls one of the engine's routes for campaign id (only /test takes a body). */
export function engine(id, action, body) {
  return api(`/api/campaigns/${encodeURIComponent(id)}/${action}`, { method: 'POST', body });
}

// The campaign statuses in which its counts only move forward on their own.
const MOVING = ['draft', 'scheduled', 'sending'];
const COUNTERS = ['sent_count', 'failed_count', 'dropped_count', 'delivered_count'];
const CAMPAIGN_LIVE = ['status', 'recipients_count', 'unknown_count', 'skipped_count', 'pause_reason'];

/** The engine's counts of the campaign, live through realtime alone: its
 * campaign_progress row (sent, failed, dropped; migration 055), written in
 * the transactions that settle the messages, and its campaign row
 * (recipients, unknown); the provider's later reports (delivered) are
 * counted on the progress row as the webhooks write them. Both are read when
 * the page opens, when the campaign settles and when the channel joins again
 * after a lost connection; in between each change's record is taken as it
 * comes, with no request. The counts only grow (delivered: but for a rare
 * delivered -> bounced), so a record older than what the page shows changes
 * nothing. */
function useCounts(c) {
  const [prog, setProg] = useState(null);
  const [row, setRow] = useState({});
  const [error, setError] = useState(null);
  const alive = useRef(true);
  const grow = (o, n) => {
    const m = { ...(o || {}) };
    for (const k of COUNTERS) m[k] = Math.max(m[k] || 0, n?.[k] || 0);
    return m;
  };
  const exact = () => q(supabase.from('campaign_progress').select(COUNTERS.join(',')).eq('id', c.id).maybeSingle())
    .then((p) => { if (alive.current) { setProg((o) => grow(o, p)); setError(null); } },
      (e) => { if (alive.current) setError(e); });
  // Not when it starts moving (draft/scheduled -> sending): the counts only
  // grow, and the changes bring them.
  const settled = MOVING.includes(c.status) ? 'moving' : c.status;
  useEffect(() => {
    alive.current = true;
    exact();
    return () => { alive.current = false; };
  }, [c.id, settled]);
  // one channel, both tables: the progress row's key is the campaign's id
  useRealtime(`progress-${c.id}`, ['campaign_progress', 'campaigns'], (p) => {
    const n = p.new;
    if (!n || n.id !== c.id) return;
    if (p.table === 'campaign_progress') setProg((o) => grow(o, n));
    else setRow((o) => {
      const m = { ...o };
      for (const k of CAMPAIGN_LIVE) m[k] = n[k];
      return m;
    });
  }, `id=eq.${c.id}`, exact);
  // the page's own campaign (refetched) and the latest change: the larger count
  const recipients = Math.max(c.recipients_count || 0, row.recipients_count || 0);
  const unknown = Math.max(c.unknown_count || 0, row.unknown_count || 0);
  const counts = prog ? {
    total: recipients, unknown, delivered: prog.delivered_count,
    handed: prog.sent_count, failed: prog.failed_count, dropped: prog.dropped_count,
  } : null;
  if (counts) counts.pending = Math.max(0, recipients - counts.handed - counts.failed - counts.dropped - unknown);
  return { counts, error, live: row };
}

/** The progress of a campaign that has recipients (or is sending). */
export function SendProgress({ c }) {
  const { counts, error, live } = useCounts(c);
  // (the changes first: the page may learn of the send from them before its
  // refetch of the campaign lands)
  const status = c.status === 'sending' || !live.status ? c.status : live.status;
  const started = (counts && counts.total > 0) || status === 'sending' || live.status === 'sending' || c.send_started_at;
  if (!started) return null;
  const total = counts ? counts.total : c.recipients_count || 0;
  const done = counts && total ? Math.min(total, total - counts.pending) : null;
  const pct = total && done !== null ? Math.round((100 * done) / total) : null;
  const pauseReason = c.pause_reason || live.pause_reason;
  return html`<div class="card sendprog" aria-labelledby="sp-title">
    <h2 id="sp-title">Delivery</h2>
    ${c.status === 'paused' && pauseReason ? html`<p class="flash warn" role="status" data-testid="pause-reason">Paused: ${pauseReason}</p>` : null}
    ${status === 'sending' && total === 0 ? html`<div class="progress" role="progressbar" aria-label="Sending" aria-valuetext="Preparing the recipients"><span class="indeterminate"></span></div>`
      : pct !== null ? html`<div class="progress" role="progressbar" aria-label="Sending progress" aria-valuemin="0" aria-valuemax=${total} aria-valuenow=${done}
          aria-valuetext=${`${done} of ${total} messages processed`} data-done=${done} data-total=${total}>
          <span class=${status === 'sending' ? 'bar striped' : 'bar'} style=${{ width: `${pct}%` }}></span></div>` : null}
    <p class="muted" data-testid="send-counts">
      ${fmtNum(total)} recipient${total === 1 ? '' : 's'}${c.skipped_count ? ` (${fmtNum(c.skipped_count)} skipped: no address, no consent or suppressed)` : ''}
      ${counts && counts.total ? html` · <span>${fmtNum(counts.handed)} sent</span> · <span>${fmtNum(counts.delivered)} delivered</span> · <span>${fmtNum(counts.pending)} waiting</span> · <span>${fmtNum(counts.failed)} failed</span> · <span>${fmtNum(counts.dropped)} dropped</span>${counts.unknown ? ` · ${fmtNum(counts.unknown)} unknown (never resent, see docs/sending.md)` : ''}` : null}
    </p>
    <${ErrorBox} error=${error} />
  </div>`;
}

/** "Send a test" to one address (e-mail, or a phone number for SMS). */
export function TestSend({ c }) {
  const [to, setTo] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const [done, setDone] = useState(null);
  const sms = c.type === 'sms';
  const send = async (e) => {
    e.preventDefault();
    setBusy(true); setError(null); setDone(null);
    try { await engine(c.id, 'test', { to: to.trim() }); setDone(`A test was queued for ${to.trim()}.`); } catch (err) { setError(withAdvice(err)); }
    setBusy(false);
  };
  return html`<form class="card inline" onSubmit=${send} aria-label="Send a test">
    <${Field} label="Send a test to" id="test-to" hint=${sms ? 'A phone number in international format, e.g. +15551234567.' : 'The message is rendered with sample values and "[Test]" in its subject.'}>
      <input id="test-to" type=${sms ? 'tel' : 'email'} required maxlength="255" value=${to} onInput=${(e) => setTo(e.target.value)} /></${Field}>
    <button type="submit" class="secondary" disabled=${busy}>Send test</button>
    ${done ? html`<p class="flash ok" role="status">${done}</p>` : null}
    <${ErrorBox} error=${error} />
  </form>`;
}

/** The sender fields of the editor, as state: [values, view]. */
export function useSenderFields(c, type, owner) {
  const [v, setV] = useState({
    template_id: c.template_id || '', subject: c.subject || '', from_name: c.from_name || '',
    from_email: c.from_email || '', sms_sender: c.sms_sender || '',
  });
  const [templates, setTemplates] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    if (type !== 'email' && type !== 'sms') return;
    allPages((from, to) => supabase.from('templates').select('id,name,type,subject').eq('user_id', owner).eq('type', type)
      .is('deleted_at', null).eq('is_active', true).order('name').order('id').range(from, to))
      .then(setTemplates, setError);
  }, [owner, type]);
  const prevType = useRef(type);
  useEffect(() => { // a template of the other channel cannot stay
    if (prevType.current !== type) setV((o) => ({ ...o, template_id: '' }));
    prevType.current = type;
  }, [type]);
  const set = (k) => (e) => setV({ ...v, [k]: e.target.value });
  if (type !== 'email' && type !== 'sms') return [null, null];
  const chosen = (templates || []).find((t) => t.id === v.template_id);
  const view = html`<fieldset class="sender"><legend>Message</legend>
    <${Field} label="Template" id="c-template" hint=${v.template_id ? "The template's content is sent; the Content below is not used." : 'None: the Content below is sent.'}>
      <select id="c-template" value=${v.template_id} onChange=${set('template_id')}>
        <option value="">None (use the Content below)</option>
        ${(templates || []).map((t) => html`<option value=${t.id}>${t.name}</option>`)}
        ${v.template_id && templates && !chosen ? html`<option value=${v.template_id}>(a template that is no longer active)</option>` : null}
      </select></${Field}>
    <${ErrorBox} error=${error} />
    ${type === 'email' ? html`
      <${Field} label="Subject" id="c-subject" hint=${chosen?.subject ? `Empty: the template's subject ("${chosen.subject}").` : 'Placeholders such as {{first_name}} are filled per recipient.'}>
        <input id="c-subject" maxlength="998" value=${v.subject} onInput=${set('subject')} /></${Field}>
      <div class="row">
        <${Field} label="Sender" id="c-from-name" hint="The name recipients see, e.g. Acme News."><input id="c-from-name" maxlength="255" value=${v.from_name} onInput=${set('from_name')} /></${Field}>
        <${Field} label="Sender address" id="c-from-email" hint="Empty: the server's EMAIL_FROM."><input id="c-from-email" type="email" maxlength="255" value=${v.from_email} onInput=${set('from_email')} /></${Field}>
      </div>`
    : html`<${Field} label="SMS sender ID" id="c-sms-sender" hint="A phone number (+15551234567) or up to 11 letters and digits; empty: the provider's default.">
        <input id="c-sms-sender" maxlength="20" pattern="\\+[1-9][0-9]{1,14}|[A-Za-z0-9 ]{1,11}" value=${v.sms_sender} onInput=${set('sms_sender')} /></${Field}>`}
  </fieldset>`;
  return [v, view];
}

/** Writes the sender fields of campaign id (only those of its type). */
export async function saveSender(id, type, v) {
  if (!v) return;
  const row = { template_id: v.template_id || null };
  if (type === 'email') Object.assign(row, { subject: v.subject.trim() || null, from_name: v.from_name.trim() || null, from_email: v.from_email.trim() || null });
  else row.sms_sender = v.sms_sender.trim() || null;
  await q(supabase.from('campaigns').update(row).eq('id', id).select('id').single());
}
