// Campaigns: the list with filters, the editor of the campaign's columns, the
// state machine's buttons (only those docs/api.md allows from the current
// status, and only for callers who may write), and the performance report
// with CSV/JSON/PDF export.
import { useState } from 'preact/hooks';
import { html, api, download, useAsync, useRealtime, Status, ErrorBox, Field, Pager, Badge, fmtTime, fmtNum, zonedToIso, isoToZoned, timeZone, canWrite, useFlash, ApiError } from '../lib.js';
import { TimeChart } from '../chart.js';
import { SmsCounter } from '../sms.js';
import { SegmentPicker, saveSegment, AudienceLine } from './segment-picker.js';
import { ENGINE_ACTIONS, isSent, engine, withAdvice, SendProgress, TestSend, useSenderFields, saveSender } from './sending.js';

export const STATUSES = ['draft', 'scheduled', 'sending', 'paused', 'sent', 'cancelled', 'active', 'completed', 'failed'];
const TYPES = ['email', 'sms', 'social'];
const COUNTED = ['draft', 'scheduled', 'sending', 'paused', 'sent', 'cancelled'];

/** The buttons of the state machine (docs/api.md, "Status transitions") for
 * campaigns the send engine does not send (social); e-mail and SMS campaigns
 * use ENGINE_ACTIONS (pages/sending.js). */
export const ACTIONS = {
  draft: [['scheduled', 'Schedule'], ['cancelled', 'Cancel campaign']],
  scheduled: [['sending', 'Send now'], ['paused', 'Pause'], ['cancelled', 'Cancel campaign']],
  sending: [['paused', 'Pause'], ['cancelled', 'Cancel campaign']],
  paused: [['sending', 'Resume'], ['scheduled', 'Reschedule'], ['cancelled', 'Cancel campaign']],
};
const FINAL = ['sent', 'cancelled', 'active', 'completed', 'failed'];

export function mayEdit(role, session, c) {
  return role === 'admin' || (role === 'user' && (!c || c.user_id === session.user.id));
}

export function Campaigns({ role }) {
  const [status, setStatus] = useState('');
  const [type, setType] = useState('');
  const [page, setPage] = useState(1);
  const [live, setLive] = useState(0);
  const perPage = 20;
  const qs = new URLSearchParams({ page, per_page: perPage });
  if (status) qs.set('status', status);
  if (type) qs.set('type', type);
  const state = useAsync(() => api(`/api/campaigns?${qs}`), [qs.toString(), live]);
  // Counts per status (X-Total-Count of one-row pages), for the status chips.
  const counts = useAsync(() => Promise.all(COUNTED.map((st) => {
    const cq = new URLSearchParams({ per_page: 1, status: st });
    if (type) cq.set('type', type);
    return api(`/api/campaigns?${cq}`).then((r) => [st, r.total]);
  })).then(Object.fromEntries), [type, live]);
  useRealtime('campaigns', ['campaigns'], () => setLive((n) => n + 1));
  const rows = state.data?.data || [];

  return html`<section aria-labelledby="c-title">
    <div class="page-head">
      <h1 id="c-title">Campaigns</h1>
      ${canWrite(role) ? html`<a class="button" href="#/campaigns/new">New campaign</a>` : null}
    </div>
    ${counts.data ? html`<div class="chips" role="group" aria-label="Campaigns by status">
      ${COUNTED.map((st) => html`<button type="button" class=${`chip${status === st ? ' on' : ''}`} aria-pressed=${status === st}
        onClick=${() => { setStatus(status === st ? '' : st); setPage(1); }}><span class="chip-n">${counts.data[st] ?? 0}</span> ${st}</button>`)}
    </div>` : null}
    <div class="filters" role="group" aria-label="Filters">
      <${Field} label="Status" id="f-status"><select id="f-status" value=${status} onChange=${(e) => { setStatus(e.target.value); setPage(1); }}>
        <option value="">Any</option>${STATUSES.map((s) => html`<option value=${s}>${s}</option>`)}</select></${Field}>
      <${Field} label="Type" id="f-type"><select id="f-type" value=${type} onChange=${(e) => { setType(e.target.value); setPage(1); }}>
        <option value="">Any</option>${TYPES.map((s) => html`<option value=${s}>${s}</option>`)}</select></${Field}>
    </div>
    <${Status} state=${state} empty=${rows.length === 0} emptyText=${status || type ? 'No campaign matches these filters.' : 'No campaigns yet.'}>
      <div class="table-wrap"><table class="list">
        <thead><tr><th scope="col">Name</th><th scope="col">Type</th><th scope="col">Status</th><th scope="col">Scheduled</th><th scope="col">Updated</th></tr></thead>
        <tbody>${rows.map((c) => html`<tr>
          <td><a href=${`#/campaigns/${c.id}`}>${c.name}</a></td><td>${c.type}</td><td><${Badge} value=${c.status} /></td>
          <td>${fmtTime(c.scheduled_date)}</td><td>${fmtTime(c.updated_at)}</td></tr>`)}
        </tbody></table></div>
      <${Pager} page=${page} perPage=${perPage} total=${state.data?.total} onPage=${setPage} />
    </${Status}>
  </section>`;
}

export function CampaignPage({ role, session, params }) {
  const isNew = params.id === 'new';
  const [live, setLive] = useState(0);
  const state = useAsync(() => (isNew ? Promise.resolve(null) : api(`/api/campaigns/${encodeURIComponent(params.id)}`).then((r) => r.data)), [params.id, live]);
  useRealtime(`campaign-${params.id}`, ['campaigns'], (p) => { if (p.new?.id === params.id || p.old?.id === params.id) setLive((n) => n + 1); });
  if (isNew && !canWrite(role)) return html`<h1>New campaign</h1><${ErrorBox} error=${new ApiError(403)} />`;
  return html`<section aria-labelledby="cp-title">
    <p><a href="#/campaigns">← Campaigns</a></p>
    <${Status} state=${state}>
      ${isNew ? html`<h1 id="cp-title">New campaign</h1><${Editor} role=${role} session=${session} campaign=${null} />`
              : state.data ? html`<${CampaignView} role=${role} session=${session} c=${state.data} reload=${state.reload} />` : null}
    </${Status}>
  </section>`;
}

function CampaignView({ role, session, c, reload }) {
  const writable = mayEdit(role, session, c);
  const [flash, show] = useFlash();
  const [busy, setBusy] = useState(false);
  const [schedFor, setSchedFor] = useState(null); // target status needing a date
  const [when, setWhen] = useState(isoToZoned(c.scheduled_date));
  const [error, setError] = useState(null);

  const move = async (to, extra = {}) => {
    setBusy(true); setError(null);
    try {
      await api(`/api/campaigns/${c.id}`, { method: 'PUT', body: { status: to, ...extra } });
      show(`Campaign is now ${to}.`);
      setSchedFor(null);
      reload();
    } catch (e) { setError(e); }
    setBusy(false);
  };
  const act = (to) => {
    if (to === 'scheduled') { setSchedFor(to); return; }
    if (to === 'cancelled' && !window.confirm('Cancel this campaign? This cannot be undone.')) return;
    move(to);
  };
  const DONE = { send: 'Sending started.', pause: 'Campaign paused.', resume: 'Campaign resumed.', cancel: 'Campaign cancelled.' };
  const run = async (action) => {
    if (action === 'schedule') { setSchedFor('scheduled'); return; }
    if (action === 'cancel' && !window.confirm('Cancel this campaign? Messages not yet sent are dropped. This cannot be undone.')) return;
    if (action === 'send' && !window.confirm('Send this campaign to its audience now?')) return;
    setBusy(true); setError(null);
    try { await engine(c.id, action); show(DONE[action]); reload(); } catch (e) { setError(withAdvice(e)); }
    setBusy(false);
  };
  const sent = isSent(c);
  const buttons = sent ? ENGINE_ACTIONS[c.status] : ACTIONS[c.status];
  const press = sent ? run : act;
  const danger = (a) => a === 'cancelled' || a === 'cancel';
  const remove = async () => {
    if (!window.confirm('Delete this campaign? Its history stays in reports and the audit log.')) return;
    try { await api(`/api/campaigns/${c.id}`, { method: 'DELETE' }); window.location.hash = '#/campaigns'; } catch (e) { setError(e); }
  };

  return html`
    <div class="page-head title"><h1 id="cp-title">${c.name}</h1><${Badge} value=${c.status} /></div>
    <p class="muted">${c.type} · created ${fmtTime(c.created_at)} · ${c.scheduled_date ? `scheduled for ${fmtTime(c.scheduled_date)} (${timeZone()})` : 'not scheduled'}</p>
    <${AudienceLine} segmentId=${c.segment_id} />
    ${!sent && c.status === 'sending' ? html`<div class="progress" role="progressbar" aria-label="Sending" aria-valuetext="Sending"><span class="indeterminate"></span></div>` : null}
    ${flash}<${ErrorBox} error=${error} />
    ${writable && buttons ? html`<div class="actions" role="group" aria-label="Status">
      ${buttons.map(([to, label]) => html`<button type="button" class=${danger(to) ? 'danger' : ''} disabled=${busy} onClick=${() => press(to)}>${label}</button>`)}
    </div>` : null}
    ${schedFor ? html`<form class="card inline" onSubmit=${(e) => { e.preventDefault(); const iso = zonedToIso(when); if (!iso) { setError(new ApiError(400, 'invalid', 'Pick a date and time.')); return; } move('scheduled', { scheduled_date: iso }); }}>
      <${Field} label=${`Send at (${timeZone()})`} id="sched-at"><input id="sched-at" type="datetime-local" required value=${when} onInput=${(e) => setWhen(e.target.value)} /></${Field}>
      <button type="submit" disabled=${busy}>Confirm schedule</button> <button type="button" class="secondary" onClick=${() => setSchedFor(null)}>Back</button>
    </form>` : null}
    ${sent ? html`<${SendProgress} c=${c} />` : null}
    ${sent && writable && !FINAL.includes(c.status) ? html`<${TestSend} c=${c} />` : null}
    ${sent ? html`<p class="muted" data-testid="sender">${c.template_id ? 'Template set' : 'No template'}${c.subject ? ` · subject "${c.subject}"` : ''}${c.from_name || c.from_email ? ` · from ${[c.from_name, c.from_email && `<${c.from_email}>`].filter(Boolean).join(' ')}` : ''}${c.sms_sender ? ` · SMS sender ${c.sms_sender}` : ''}</p>` : null}
    <div class="card"><h2>Content</h2><pre class="content">${c.content || (c.template_id && sent ? "(the template's content is sent)" : '(empty)')}</pre></div>
    ${writable && !FINAL.includes(c.status) ? html`<details class="card"><summary>Edit campaign</summary><${Editor} role=${role} session=${session} campaign=${c} onSaved=${() => { show('Saved.'); reload(); }} /></details>` : null}
    <${Performance} role=${role} session=${session} c=${c} />
    ${writable ? html`<p><button type="button" class="link danger" onClick=${remove}>Delete campaign</button></p>` : null}`;
}

function Editor({ campaign, onSaved, session }) {
  const c = campaign || {};
  const [name, setName] = useState(c.name || '');
  const [type, setType] = useState(c.type || 'email');
  const [content, setContent] = useState(c.content || '');
  const [when, setWhen] = useState(isoToZoned(c.scheduled_date));
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const [segmentId, setSegmentId] = useState(c.segment_id || null);
  const [sender, senderView] = useSenderFields(c, type, c.user_id || session.user.id);
  // A new campaign is created first and completed through /rest/v1: when a
  // later step fails, a retry completes that campaign instead of a second one.
  const [created, setCreated] = useState(null);

  const save = async (e) => {
    e.preventDefault();
    setBusy(true); setError(null);
    const body = { name: name.trim(), content: content || null };
    if (!campaign || campaign.status === 'draft') body.type = type;
    if (campaign && when === isoToZoned(campaign.scheduled_date)) {
      // unchanged: not sent, so a past date of a sent or paused campaign is no error
    } else if (when) {
      const iso = zonedToIso(when);
      if (!iso) { setError(new ApiError(400, 'invalid', 'The schedule is not a valid date and time.')); setBusy(false); return; }
      body.scheduled_date = iso;
    } else if (campaign?.scheduled_date && campaign.status !== 'scheduled') body.scheduled_date = null;
    try {
      if (campaign) { await api(`/api/campaigns/${campaign.id}`, { method: 'PUT', body }); await saveSender(campaign.id, type, sender); await saveSegment(campaign.id, campaign.segment_id, segmentId); onSaved?.(); }
      else {
        let id = created;
        if (id) await api(`/api/campaigns/${id}`, { method: 'PUT', body });
        else { id = (await api('/api/campaigns', { method: 'POST', body })).data.id; setCreated(id); }
        await saveSender(id, type, sender); await saveSegment(id, null, segmentId);
        window.location.hash = `#/campaigns/${id}`;
      }
    } catch (err) { setError(err); }
    setBusy(false);
  };

  return html`<form class="editor" onSubmit=${save}>
    <${Field} label="Name" id="c-name"><input id="c-name" required maxlength="255" value=${name} onInput=${(e) => setName(e.target.value)} /></${Field}>
    <${Field} label="Type" id="c-type" hint=${campaign && campaign.status !== 'draft' ? 'The type is fixed once a campaign leaves draft.' : null}>
      <select id="c-type" value=${type} disabled=${campaign && campaign.status !== 'draft'} onChange=${(e) => setType(e.target.value)}>${TYPES.map((t) => html`<option value=${t}>${t}</option>`)}</select></${Field}>
    <${Field} label="Content" id="c-content"><textarea id="c-content" rows="8" value=${content} onInput=${(e) => setContent(e.target.value)}></textarea></${Field}>
    ${type === 'sms' && content ? html`<${SmsCounter} text=${content} />` : null}
    ${senderView}
    <${SegmentPicker} value=${segmentId} onChange=${setSegmentId} owner=${c.user_id || session.user.id} />
    <${Field} label=${`Schedule (${timeZone()})`} id="c-when" hint="Optional. Use the Schedule button to move the campaign to scheduled.">
      <input id="c-when" type="datetime-local" value=${when} onInput=${(e) => setWhen(e.target.value)} /></${Field}>
    <${ErrorBox} error=${error} />
    <button type="submit" disabled=${busy}>${campaign ? 'Save changes' : 'Create campaign'}</button>
  </form>`;
}

const FIGS = [['messages', 'Messages'], ['sent', 'Sent'], ['delivered', 'Delivered'], ['failed', 'Failed'], ['bounced', 'Bounced'], ['opened', 'Opened'], ['clicked', 'Clicks'], ['unsubscribed', 'Unsubscribed'], ['unknown', 'Unknown'], ['cost', 'Cost'], ['delivery_rate', 'Delivery %'], ['open_rate', 'Open %'], ['click_rate', 'Click %']];

export function ReportFigures({ report }) {
  const [error, setError] = useState(null);
  // a refused export (e.g. 422: too many rows for a PDF) says so and what to do
  const exportAs = (format) => download(`/api/reports/${report.id}/export?format=${format}`, `report.${format}`).then(() => setError(null), setError);
  const d = report.data || {};
  const t = d.totals || {};
  const daily = d.daily || [];
  return html`<div class="report">
    <p class="muted">${d.period?.from || 'all time'} – ${d.period?.to || 'now'} · generated ${fmtTime(report.generated_at)}</p>
    <div class="kpis">${FIGS.map(([k, l]) => html`<div class="kpi" data-fig=${k}><span class="kpi-label">${l}</span><span class="kpi-value">${k.endsWith('_rate') ? (t[k] === null || t[k] === undefined ? '—' : `${t[k]}%`) : k === 'cost' ? `$${fmtNum(t[k], 4)}` : fmtNum(t[k])}</span></div>`)}</div>
    ${daily.length ? html`<${TimeChart} labels=${daily.map((x) => x.date)} series=${['sent', 'delivered', 'opened', 'clicked'].map((k) => ({ name: k, values: daily.map((x) => x[k] || 0) }))} title="Daily performance" height=${220} />`
                   : html`<p class="state empty">No messages in this period.</p>`}
    <div class="actions">
      <button type="button" class="secondary" onClick=${() => exportAs('csv')}>Export CSV</button>
      <button type="button" class="secondary" onClick=${() => exportAs('json')}>Export JSON</button>
      <button type="button" class="secondary" onClick=${() => exportAs('pdf')}>Export PDF</button>
    </div>
    <${ErrorBox} error=${error} />
  </div>`;
}

function Performance({ role, session, c }) {
  const [gen, setGen] = useState(0);
  const state = useAsync(() => api(`/api/reports?campaign_id=${c.id}&per_page=1`).then((r) => r.data[0] || null), [c.id, gen]);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const canGenerate = role === 'admin' || (role === 'user' && c.user_id === session.user.id);
  const generate = async () => {
    setBusy(true); setError(null);
    try { await api('/api/reports', { method: 'POST', body: { campaign_id: c.id } }); setGen((n) => n + 1); } catch (e) { setError(e); }
    setBusy(false);
  };
  return html`<div class="card"><div class="page-head small"><h2>Performance</h2>
      ${canGenerate ? html`<button type="button" disabled=${busy} onClick=${generate}>${busy ? 'Generating…' : 'Generate report'}</button>` : null}</div>
    <${ErrorBox} error=${error} />
    <${Status} state=${state} empty=${!state.data} emptyText=${canGenerate ? 'No report yet: generate one to see the figures.' : 'No report has been generated for this campaign yet.'}>
      ${state.data ? html`<${ReportFigures} report=${state.data} />` : null}
    </${Status}></div>`;
}
