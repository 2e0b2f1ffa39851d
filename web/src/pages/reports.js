// Reports: list (paged, /api/reports), generate one of the four types
// (a campaign's performance, or a period summary, channel comparison or
// audience report over a date range: docs/reports.md), open one, download
// CSV/JSON/PDF; and the scheduled reports (schedules.js).
import { useState } from 'preact/hooks';
import { html, api, download, useAsync, useRealtime, Status, ErrorBox, Field, Pager, fmtTime, canWrite } from '../lib.js';
import { ReportFigures } from './campaigns.js';
import { ScheduledReports, REPORT_TYPES } from './schedules.js';

export function Reports({ role, session }) {
  const [page, setPage] = useState(1);
  const [live, setLive] = useState(0);
  const [open, setOpen] = useState(null);
  const [failed, setFailed] = useState(null);
  const get = (r, format) => download(`/api/reports/${r.id}/export?format=${format}`, `report.${format}`).then(() => setFailed(null), setFailed);
  const perPage = 20;
  const state = useAsync(() => api(`/api/reports?page=${page}&per_page=${perPage}`), [page, live]);
  useRealtime('reports', ['reports'], () => setLive((n) => n + 1));
  const rows = state.data?.data || [];
  return html`<section aria-labelledby="r-title">
    <div class="page-head"><h1 id="r-title">Reports</h1></div>
    ${canWrite(role) ? html`<${Generate} onDone=${() => { setPage(1); setLive((n) => n + 1); }} />` : null}
    <${ErrorBox} error=${failed} />
    <${Status} state=${state} empty=${!rows.length} emptyText="No reports yet.">
      <div class="table-wrap"><table class="list">
        <thead><tr><th scope="col">Report</th><th scope="col">Campaign</th><th scope="col">Period</th><th scope="col">Generated</th><th scope="col">Download</th></tr></thead>
        <tbody>${rows.map((r) => html`<tr>
          <td><button type="button" class="link" aria-expanded=${open === r.id} onClick=${() => setOpen(open === r.id ? null : r.id)}>${r.data?.name || r.report_type}</button></td>
          <td>${r.data?.campaign ? html`<a href=${`#/campaigns/${r.campaign_id}`}>${r.data.campaign.name}</a>` : '—'}</td>
          <td>${r.data?.period?.from || 'all'} – ${r.data?.period?.to || 'now'}</td>
          <td>${fmtTime(r.generated_at)}</td>
          <td class="nowrap"><button type="button" class="link" onClick=${() => get(r, 'csv')}>CSV</button> · <button type="button" class="link" onClick=${() => get(r, 'json')}>JSON</button> · <button type="button" class="link" aria-label=${`PDF of ${r.data?.name || r.report_type}`} onClick=${() => get(r, 'pdf')}>PDF</button></td>
        </tr>${open === r.id ? html`<tr><td colspan="5">${Array.isArray(r.data?.columns) ? html`<${TableFigures} report=${r} />` : html`<${ReportFigures} report=${r} />`}</td></tr>` : null}`)}</tbody></table></div>
      <${Pager} page=${page} perPage=${perPage} total=${state.data?.total} onPage=${setPage} />
    </${Status}>
    ${canWrite(role) ? html`<${ScheduledReports} session=${session} />` : null}
  </section>`;
}

const SHOWN_ROWS = 100;

/** A period summary, channel comparison or audience report: its totals, then
 * its rows (flat, keyed by data.columns — exactly the CSV). */
function TableFigures({ report }) {
  const d = report.data;
  const rows = d.rows || [];
  const table = (label, list) => html`<div class="table-wrap"><table class="list" aria-label=${label}>
    <thead><tr>${d.columns.map((c) => html`<th scope="col">${c.replace(/_/g, ' ')}</th>`)}</tr></thead>
    <tbody>${list.map((row) => html`<tr>${d.columns.map((c) => html`<td class=${typeof row[c] === 'number' ? 'num' : ''}>${row[c] === null || row[c] === undefined ? '—' : String(row[c])}</td>`)}</tr>`)}</tbody></table></div>`;
  return html`<div class="report">
    <p class="muted">${d.period?.from} – ${d.period?.to} (${d.period?.timezone}) · generated ${fmtTime(report.generated_at)}</p>
    ${d.totals?.length ? table('Totals', d.totals) : null}
    ${rows.length ? table('Rows', rows.slice(0, SHOWN_ROWS)) : html`<p class="state empty">Nothing in this period.</p>`}
    ${rows.length > SHOWN_ROWS ? html`<p class="muted">The first ${SHOWN_ROWS} of ${rows.length} rows; the CSV has them all.</p>` : null}
  </div>`;
}

const TYPES = [['campaign_performance', 'Campaign performance'], ...REPORT_TYPES];

function Generate({ onDone }) {
  const campaigns = useAsync(() => api('/api/campaigns?per_page=200').then((r) => r.data), []);
  const [type, setType] = useState('campaign_performance');
  const [cid, setCid] = useState('');
  const [from, setFrom] = useState('');
  const [to, setTo] = useState('');
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const forCampaign = type === 'campaign_performance';
  const submit = async (e) => {
    e.preventDefault();
    setBusy(true); setError(null);
    // a campaign's report takes an optional period; the others need both days
    const body = forCampaign ? { campaign_id: cid } : { report_type: type };
    if (from) body.from = from;
    if (to) body.to = to;
    try { await api('/api/reports', { method: 'POST', body }); onDone(); } catch (err) { setError(err); }
    setBusy(false);
  };
  return html`<form class="card row-form" onSubmit=${submit} aria-label="Generate a report">
    <${Field} label="Report" id="g-type"><select id="g-type" value=${type} onChange=${(e) => setType(e.target.value)}>
      ${TYPES.map(([v, l]) => html`<option value=${v}>${l}</option>`)}</select></${Field}>
    ${forCampaign ? html`<${Field} label="Campaign" id="g-campaign"><select id="g-campaign" required value=${cid} onChange=${(e) => setCid(e.target.value)}>
      <option value="">${campaigns.loading ? 'Loading…' : 'Pick a campaign'}</option>${(campaigns.data || []).map((c) => html`<option value=${c.id}>${c.name}</option>`)}</select></${Field}>` : null}
    <${Field} label="From" id="g-from"><input id="g-from" type="date" required=${!forCampaign} value=${from} onInput=${(e) => setFrom(e.target.value)} /></${Field}>
    <${Field} label="To" id="g-to"><input id="g-to" type="date" required=${!forCampaign} value=${to} onInput=${(e) => setTo(e.target.value)} /></${Field}>
    <button type="submit" disabled=${busy || (forCampaign ? !cid : !from || !to)}>${busy ? 'Generating…' : 'Generate report'}</button>
    <${ErrorBox} error=${error} />
  </form>`;
}
