// Reports: list (paged, /api/reports), generate for a campaign and period,
// open one, download CSV/JSON/PDF.
import { useState } from 'preact/hooks';
import { html, api, download, useAsync, useRealtime, Status, ErrorBox, Field, Pager, fmtTime, canWrite } from '../lib.js';
import { ReportFigures } from './campaigns.js';

export function Reports({ role }) {
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
        </tr>${open === r.id ? html`<tr><td colspan="5"><${ReportFigures} report=${r} /></td></tr>` : null}`)}</tbody></table></div>
      <${Pager} page=${page} perPage=${perPage} total=${state.data?.total} onPage=${setPage} />
    </${Status}>
  </section>`;
}

function Generate({ onDone }) {
  const campaigns = useAsync(() => api('/api/campaigns?per_page=200').then((r) => r.data), []);
  const [cid, setCid] = useState('');
  const [from, setFrom] = useState('');
  const [to, setTo] = useState('');
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e) => {
    e.preventDefault();
    setBusy(true); setError(null);
    const body = { campaign_id: cid };
    if (from) body.from = from;
    if (to) body.to = to;
    try { await api('/api/reports', { method: 'POST', body }); onDone(); } catch (err) { setError(err); }
    setBusy(false);
  };
  return html`<form class="card row-form" onSubmit=${submit} aria-label="Generate a report">
    <${Field} label="Campaign" id="g-campaign"><select id="g-campaign" required value=${cid} onChange=${(e) => setCid(e.target.value)}>
      <option value="">${campaigns.loading ? 'Loading…' : 'Pick a campaign'}</option>${(campaigns.data || []).map((c) => html`<option value=${c.id}>${c.name}</option>`)}</select></${Field}>
    <${Field} label="From" id="g-from"><input id="g-from" type="date" value=${from} onInput=${(e) => setFrom(e.target.value)} /></${Field}>
    <${Field} label="To" id="g-to"><input id="g-to" type="date" value=${to} onInput=${(e) => setTo(e.target.value)} /></${Field}>
    <button type="submit" disabled=${busy || !cid}>${busy ? 'Generating…' : 'Generate report'}</button>
    <${ErrorBox} error=${error} />
  </form>`;
}
