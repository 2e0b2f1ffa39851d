// Data sources: the list, a new source, and per source the sync history with
// its errors. The import engine's actions (test connection, sync now, cancel
// a running sync) call /api/data-sources/:id/test|sync and
// /api/sync-logs/:id/cancel; on a server without the engine those answer 404
// "No such endpoint", and the page says so instead of failing. A source's
// page also shows the first rows of its import table and follows its sync
// history live (realtime); viewers see all of it without the action buttons.
import { useState } from 'preact/hooks';
import { html, api, supabase, q, pageRange, PER_PAGE, useAsync, useRealtime, Status, ErrorBox, Field, Pager, Badge, fmtTime, fmtNum, useFlash, canWrite, ApiError, usePageClamp } from '../lib.js';
import { explain, adviceFor } from './connectors.js';

const TYPES = ['csv_upload', 'csv_url', 'google_sheets', 'excel', 'rest_api', 'postgres', 'mysql', 'mssql', 'redshift', 'bigquery', 'snowflake', 'google_analytics', 'meta_pixel', 'custom_database'];
const SCHEDULES = ['manual', 'hourly', 'daily', 'weekly', 'monthly'];

/** Calls an import engine endpoint; a missing route becomes a clear message. */
export async function engine(path, body) {
  try {
    return await api(path, { method: 'POST', body: body || {} });
  } catch (e) {
    if (e.status === 404 && e.code === 'not_found' && /endpoint/i.test(e.message))
      throw new ApiError(404, 'engine_missing', 'The import engine is not available on this server yet.', null, 'Ask your administrator to upgrade campaignd; the sync history below still works.');
    throw e;
  }
}

export function DataSources({ role }) {
  const [adding, setAdding] = useState(false);
  const [gen, setGen] = useState(0);
  const [page, setPage] = useState(1);
  const state = useAsync(() => q(pageRange(supabase.from('data_sources').select('id,name,type,sync_schedule,sync_status,last_sync_at,next_sync_at', { count: 'exact' })
    .order('created_at', { ascending: false }).order('id'), page)), [gen, page]);
  const rows = state.data?.data || [];
  usePageClamp(state, page, setPage);
  return html`<section aria-labelledby="ds-title">
    <div class="page-head"><h1 id="ds-title">Data sources</h1>${canWrite(role) ? html`<a class="button" href="#/data-sources/import">Import data</a><button type="button" class="secondary" aria-expanded=${adding} onClick=${() => setAdding(!adding)}>New data source</button>` : null}</div>
    ${adding ? html`<${NewSource} onDone=${(id) => { setAdding(false); setGen((n) => n + 1); if (id) window.location.hash = `#/data-sources/${id}`; }} />` : null}
    <${Status} state=${state} empty=${!rows.length} emptyText="No data sources yet. Add one to import contacts or metrics.">
      <div class="table-wrap"><table class="list"><thead><tr><th scope="col">Name</th><th scope="col">Type</th><th scope="col">Schedule</th><th scope="col">Status</th><th scope="col">Last sync</th></tr></thead>
      <tbody>${rows.map((d) => html`<tr><td><a href=${`#/data-sources/${d.id}`}>${d.name}</a></td><td>${d.type}</td><td>${d.sync_schedule}</td><td><${Badge} value=${d.sync_status} /></td><td>${fmtTime(d.last_sync_at)}</td></tr>`)}</tbody></table></div>
      <${Pager} page=${page} perPage=${PER_PAGE} total=${state.data?.count} onPage=${setPage} />
    </${Status}>
  </section>`;
}

function NewSource({ onDone }) {
  const [name, setName] = useState('');
  const [type, setType] = useState('csv_upload');
  const [schedule, setSchedule] = useState('manual');
  const [error, setError] = useState(null);
  const submit = async (e) => {
    e.preventDefault();
    setError(null);
    try { const r = await q(supabase.from('data_sources').insert({ name: name.trim(), type, sync_schedule: schedule }).select('id').single()); onDone(r.id); } catch (err) { setError(err); }
  };
  return html`<form class="card row-form" onSubmit=${submit} aria-label="New data source">
    <${Field} label="Name" id="ns-name"><input id="ns-name" required value=${name} onInput=${(e) => setName(e.target.value)} /></${Field}>
    <${Field} label="Type" id="ns-type"><select id="ns-type" value=${type} onChange=${(e) => setType(e.target.value)}>${TYPES.map((t) => html`<option value=${t}>${t}</option>`)}</select></${Field}>
    <${Field} label="Schedule" id="ns-sched"><select id="ns-sched" value=${schedule} onChange=${(e) => setSchedule(e.target.value)}>${SCHEDULES.map((t) => html`<option value=${t}>${t}</option>`)}</select></${Field}>
    <button type="submit">Add data source</button>
    <${ErrorBox} error=${error} />
  </form>`;
}

/** The first rows of a source's import table, with the exact count. */
function ImportedRows({ table, gen }) {
  const rows = useAsync(() => q(supabase.from(table).select('*', { count: 'exact' }).limit(10)), [table, gen]);
  const list = rows.data?.data || [];
  const keys = list.length ? Object.keys(list[0]).filter((k) => k !== 'id' && k !== 'imported_at') : [];
  return html`<div class="card" aria-labelledby="dsr-title"><h2 id="dsr-title">Rows</h2>
    <${Status} state=${rows} empty=${!list.length} emptyText="No rows yet: run a sync.">
      <p class="muted" data-testid="row-count">${fmtNum(rows.data?.count)} rows in ${table}</p>
      <div class="table-wrap"><table class="list"><thead><tr>${keys.map((k) => html`<th scope="col">${k}</th>`)}</tr></thead>
      <tbody>${list.map((r) => html`<tr>${keys.map((k) => html`<td>${String(r[k] ?? '')}</td>`)}</tr>`)}</tbody></table></div>
    </${Status}></div>`;
}

export function DataSourcePage({ params, role }) {
  const [gen, setGen] = useState(0);
  const src = useAsync(() => q(supabase.from('data_sources').select('*').eq('id', params.id).single()), [params.id, gen]);
  const logs = useAsync(() => q(supabase.from('sync_logs').select('*').eq('data_source_id', params.id).order('started_at', { ascending: false }).limit(50)), [params.id, gen]);
  const [error, setError] = useState(null);
  const [preview, setPreview] = useState(null);
  const [busy, setBusy] = useState(false);
  const [flash, show] = useFlash();
  const writer = canWrite(role);
  // a run that starts or ends changes the history (and the rows): reload both
  useRealtime(`source-${params.id}`, ['sync_logs'], (p) => {
    if (p.eventType === 'INSERT' || (p.new && p.new.status !== 'running')) setGen((n) => n + 1);
  }, `data_source_id=eq.${params.id}`, () => setGen((n) => n + 1));
  const run = async (what) => {
    setBusy(true); setError(null);
    try {
      const r = await engine(`/api/data-sources/${params.id}/${what}`);
      if (what === 'test') { setPreview(r.data); show('Connection works.'); } else show('Sync started.');
      setGen((n) => n + 1);
    } catch (e) { setError(explain(e)); }
    setBusy(false);
  };
  const cancel = async (id) => {
    try { await engine(`/api/sync-logs/${id}/cancel`); show('Cancelling the sync.'); setGen((n) => n + 1); } catch (e) { setError(e); }
  };
  const d = src.data;
  const rows = (logs.data || []).filter((l) => l.metadata?.kind !== 'preview');
  const previewRows = preview && (preview.preview_data || preview.rows || preview.preview);
  return html`<section aria-labelledby="dsp-title"><p><a href="#/data-sources">← Data sources</a></p>
    <${Status} state=${src}>${d ? html`
      <div class="page-head title"><h1 id="dsp-title">${d.name}</h1><${Badge} value=${d.sync_status} /></div>
      <p class="muted">${d.type} · schedule ${d.sync_schedule} · last sync ${fmtTime(d.last_sync_at)} · next ${fmtTime(d.next_sync_at)}${d.table_name ? ` · table ${d.table_name}` : ''}${d.schedule_config?.incremental_strategy === 'incremental' ? ` · incremental on ${d.schedule_config.incremental_column}, last value ${d.last_sync_value ?? '—'}` : ''}</p>
      ${d.credentials ? html`<p class="muted" data-testid="masked-credentials">Stored login (encrypted): ${Object.entries(d.credentials).map(([k, v]) => `${k} ${v}`).join(' · ')}</p>` : null}
      ${writer ? html`<div class="actions"><button type="button" disabled=${busy} onClick=${() => run('test')}>Test connection</button><button type="button" disabled=${busy} onClick=${() => run('sync')}>Sync now</button></div>` : null}
      <${ErrorBox} error=${error} />${flash}
      ${Array.isArray(previewRows) && previewRows.length ? html`<div class="card"><h2>Preview</h2><div class="table-wrap"><table class="list"><thead><tr>${Object.keys(previewRows[0]).map((k) => html`<th scope="col">${k}</th>`)}</tr></thead>
        <tbody>${previewRows.map((r) => html`<tr>${Object.keys(previewRows[0]).map((k) => html`<td>${String(r[k] ?? '')}</td>`)}</tr>`)}</tbody></table></div></div>` : null}
      ${d.table_name && writer ? html`<${ImportedRows} table=${d.table_name} gen=${gen} />` : null}` : null}
    </${Status}>
    <h2>Sync history</h2>
    <${Status} state=${logs} empty=${!rows.length} emptyText="This source has not synced yet.">
      <div class="table-wrap"><table class="list" aria-label="Sync history"><thead><tr><th scope="col">Started</th><th scope="col">Status</th><th scope="col" class="num">Imported</th><th scope="col" class="num">Skipped</th><th scope="col">Finished</th><th scope="col">Errors</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
      <tbody>${rows.map((l) => html`<tr><td class="nowrap">${fmtTime(l.started_at)}</td><td><${Badge} value=${l.status} /></td><td class="num">${fmtNum(l.records_imported)}</td><td class="num">${fmtNum(l.records_skipped)}</td><td>${fmtTime(l.completed_at)}</td>
        <td>${l.error_message || '—'}${l.error_message && adviceFor(l.error_message) ? html` <small>${adviceFor(l.error_message)}</small>` : null}${Array.isArray(l.metadata?.errors) ? html`<ul class="errors">${l.metadata.errors.slice(0, 20).map((er) => html`<li>${er.line ? `line ${er.line}: ` : ''}${er.message || JSON.stringify(er)}</li>`)}</ul>` : null}</td>
        <td>${l.status === 'running' && writer ? html`<button type="button" class="link danger" onClick=${() => cancel(l.id)}>Cancel</button>` : null}</td></tr>`)}</tbody></table></div>
    </${Status}>
  </section>`;
}
