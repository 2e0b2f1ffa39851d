// The import wizard (docs/import.md, docs/connectors.md): source and
// destination; a file (upload to the `imports` bucket with a progress bar, or
// a link) or a connection to a database or an API (connectors.js: its fields,
// the credentials sent once to the encrypted store and shown masked after, the
// incremental settings); the engine's test preview; the column mapping with
// types and cleaning rules, duplicate handling, the schedule with its time
// zone; then a sync followed live through realtime alone (sync_logs changes of
// the source, subscribed before the sync starts; the row is refetched only
// when the channel joins again after a lost connection). Every engine call
// goes through engine(), which says clearly when this server has no import
// engine; connector errors come with what to do (connectors.js explain()).
import { useState, useEffect } from 'preact/hooks';
import { html, supabase, anonKey, accessToken, api, q, useRealtime, ErrorBox, Field, Badge, fmtNum, timeZone, canWrite, ApiError } from '../lib.js';
import { engine } from './sources.js';
import { DATABASES, APIS, isConnector, isMetrics, blankConnection, connectionConfig, connectionFromSource, ConnectionFields, explain, adviceFor } from './connectors.js';

const FILES = [['csv_upload', 'CSV or spreadsheet file (upload)'], ['excel', 'Excel workbook (upload)'], ['csv_url', 'CSV file at a link'], ['google_sheets', 'Google Sheet shared by link']];
const KINDS = [['Files', FILES], ['Databases', DATABASES], ['APIs', APIS]];
const TYPES = ['text', 'integer', 'number', 'boolean', 'date', 'timestamp'];
const RULES = [['trim', 'Trim'], ['lowercase', 'Lower case'], ['title_case', 'Title Case'], ['validate_email', 'Valid e-mail (skip row)'], ['normalize_phone', 'Phone to E.164']];
const SCHEDULES = ['manual', 'hourly', 'daily', 'weekly', 'monthly'];

/** Uploads file to storage with progress (XHR: fetch has no upload progress). */
function upload(path, file, token, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', `/storage/v1/object/imports/${path.split('/').map(encodeURIComponent).join('/')}`);
    xhr.setRequestHeader('apikey', anonKey);
    xhr.setRequestHeader('Authorization', `Bearer ${token}`);
    xhr.setRequestHeader('x-upsert', 'true');
    xhr.setRequestHeader('Content-Type', file.type || 'application/octet-stream');
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) onProgress(e.loaded / e.total); };
    xhr.onload = () => {
      if (xhr.status < 300) { resolve(); return; }
      let j = {};
      try { j = JSON.parse(xhr.responseText); } catch { /* not JSON */ }
      reject(new ApiError(xhr.status, j.error || j.code, j.message || `Upload failed (${xhr.status}).`));
    };
    xhr.onerror = () => reject(new ApiError(0, 'network', 'The upload was interrupted. Check your connection and try again.'));
    xhr.send(file);
  });
}

export function ImportWizard({ session, role }) {
  const [step, setStep] = useState(1);
  const [name, setName] = useState('');
  const [kind, setKind] = useState('csv_upload');
  const [destination, setDestination] = useState('table');
  const [file, setFile] = useState(null);
  const [url, setUrl] = useState('');
  const [conn, setConn] = useState(blankConnection);
  const [progress, setProgress] = useState(null);
  const [source, setSource] = useState(null);
  const [preview, setPreview] = useState(null);
  const [columns, setColumns] = useState([]);
  const [dupes, setDupes] = useState('keep_first');
  const [dupeKey, setDupeKey] = useState('');
  const [schedule, setSchedule] = useState('manual');
  const [time, setTime] = useState('06:00');
  const [tz, setTz] = useState(timeZone());
  const [log, setLog] = useState(null);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const uploads = kind === 'csv_upload' || kind === 'excel';
  const connector = isConnector(kind);
  const metrics = isMetrics(kind);
  const readOnly = !canWrite(role);
  const setField = (k, val) => setConn((o) => ({ ...o, [k]: val }));

  const guard = async (fn) => {
    setBusy(true); setError(null);
    try { await fn(); } catch (e) { setError(explain(e)); }
    setBusy(false);
  };

  // Step 1 → 2: create (or, back from step 2, update) the source; a
  // connector's credentials go to the encrypted store, never into the row.
  const createSource = (e) => {
    e.preventDefault();
    guard(async () => {
      let config = { destination };
      let credentials = null;
      let scheduleConfig = {};
      if (connector) {
        const c = connectionConfig(kind, conn, Boolean(source?.credentials));
        config = metrics ? c.config : { ...c.config, destination };
        credentials = c.credentials;
        scheduleConfig = c.schedule;
      } else if (uploads) {
        if (!file) throw new ApiError(400, 'invalid', 'Choose a file to upload.');
        const path = `${session.user.id}/${Date.now()}-${file.name.replace(/[^A-Za-z0-9._-]+/g, '_')}`;
        setProgress(0);
        await upload(path, file, await accessToken(), setProgress);
        config.storage_path = path;
      } else {
        if (!/^https?:\/\//.test(url)) throw new ApiError(400, 'invalid', 'Give an http:// or https:// link.');
        config.url = url;
      }
      const fields = { name: name.trim(), type: kind, config, schedule_config: scheduleConfig };
      let row = source
        ? await q(supabase.from('data_sources').update(fields).eq('id', source.id).select().single())
        : await q(supabase.from('data_sources').insert(fields).select().single());
      if (credentials) {
        const r = await api(`/api/data-sources/${row.id}/credentials`, { method: 'PUT', body: credentials });
        row = { ...row, credentials: r.data.credentials };
        setConn((o) => ({ ...o, user: kind === 'snowflake' ? o.user : '', password: '', secret: '' })); // write-only
      }
      setSource(row);
      setPreview(null);
      setStep(2);
    });
  };

  // Step 2: the engine's preview ("Test connection"), and a mapping to edit.
  const test = () => guard(async () => {
    setPreview(null);
    const r = await engine(`/api/data-sources/${source.id}/test`);
    setPreview(r.data);
    setColumns((r.data.columns || []).map((c) => ({
      source_name: c.source_name, target_name: c.proposed_target_name || c.target_name || c.source_name,
      type: c.inferred_type || c.type || 'text', included: true, rules: connector ? [] : ['trim'], sample: c.sample,
    })));
  });
  useEffect(() => { if (step === 2 && source && !preview) test(); }, [step, source?.id]);

  const setCol = (i, patch) => setColumns(columns.map((c, j) => (j === i ? { ...c, ...patch } : c)));

  // The source's sync_logs changes, subscribed as soon as the source exists,
  // so that the run's first progress report cannot be missed.
  const refetchLog = async () => {
    if (!log?.id) return;
    const { data } = await supabase.from('sync_logs').select('*').eq('id', log.id).maybeSingle();
    if (data) setLog(data);
  };
  const joined = useRealtime('wizard', source ? ['sync_logs'] : [], (p) => {
    if (log?.id && p.new?.id === log.id) setLog(p.new);
  }, source ? `data_source_id=eq.${source.id}` : undefined, refetchLog);

  // Step 3 → 4: save mapping and schedule, run a sync.
  const run = () => guard(async () => {
    const fields = { sync_schedule: schedule };
    fields.schedule_config = { ...(source.schedule_config || {}), ...(schedule === 'manual' ? {} : { time, timezone: tz }) };
    if (!metrics) {
      fields.column_config = {
        columns: columns.map((c) => (c.included
          ? { source_name: c.source_name, target_name: c.target_name, type: c.type, included: true, cleaning_rules: c.rules.map((t) => (t === 'validate_email' ? { type: t, on_invalid: 'skip' } : { type: t })) }
          : { source_name: c.source_name, included: false })),
        row_filters: [],
        // duplicate handling needs a key: without one, every row is kept
        ...(dupeKey ? { duplicate_handling: dupes, duplicate_key_columns: [dupeKey] } : { duplicate_key_columns: [] }),
      };
      if (fields.schedule_config.incremental_strategy === 'incremental' && !dupeKey)
        throw new ApiError(400, 'invalid', 'An incremental sync needs a duplicate key.', null, 'Choose the key (e.g. the id column) in "Duplicate key": a row read again then replaces itself.');
    }
    await q(supabase.from('data_sources').update(fields).eq('id', source.id).select('id').single());
    await joined.current;
    const r = await engine(`/api/data-sources/${source.id}/sync`);
    setLog({ id: r.data.sync_log_id, status: r.data.status || 'running', metadata: {} });
    setStep(4);
  });

  const pr = log?.metadata?.progress || {};
  const frac = pr.bytes_total ? Math.min(1, pr.bytes_read / pr.bytes_total) : null;
  const previewRows = preview && Array.isArray(preview.rows) ? preview.rows : [];

  return html`<section aria-labelledby="wz-title"><p><a href="#/data-sources">← Data sources</a></p>
    <h1 id="wz-title">Import data</h1>
    ${readOnly ? html`<p class="flash warn" role="status">Your role can look at the wizard but not add data sources.</p>` : null}
    <ol class="steps" aria-label="Steps">${['Source', 'Preview and columns', 'Schedule', 'Run'].map((l, i) => html`<li aria-current=${step === i + 1 ? 'step' : undefined} class=${step > i + 1 ? 'done' : ''}>${l}</li>`)}</ol>
    <${ErrorBox} error=${error} />
    ${step === 1 ? html`<form class="card editor" onSubmit=${createSource}><fieldset class="plain" disabled=${readOnly}>
      <${Field} label="Name" id="wz-name"><input id="wz-name" required value=${name} onInput=${(e) => setName(e.target.value)} placeholder="Trade show leads" /></${Field}>
      <${Field} label="Where the data is" id="wz-kind"><select id="wz-kind" value=${kind} disabled=${Boolean(source)} onChange=${(e) => { setKind(e.target.value); setConn(blankConnection()); }}>${KINDS.map(([g, items]) => html`<optgroup label=${g}>${items.map(([k, l]) => html`<option value=${k}>${l}</option>`)}</optgroup>`)}</select></${Field}>
      ${connector ? html`<${ConnectionFields} type=${kind} v=${conn} set=${setField} masked=${source?.credentials} />`
        : uploads ? html`<${Field} label="File" id="wz-file" hint="CSV, .xlsx or .xls"><input id="wz-file" type="file" accept=".csv,.txt,.xlsx,.xls,text/csv" onChange=${(e) => setFile(e.target.files[0] || null)} /></${Field}>`
        : html`<${Field} label="Link" id="wz-url"><input id="wz-url" type="url" required value=${url} onInput=${(e) => setUrl(e.target.value)} placeholder="https://…" /></${Field}>`}
      ${metrics ? html`<p class="muted">The metrics land in the analytics charts (one value per metric and day).</p>`
        : html`<${Field} label="Load into" id="wz-dest"><select id="wz-dest" value=${destination} onChange=${(e) => setDestination(e.target.value)}><option value="table">a table of its own</option><option value="contacts">my contacts</option></select></${Field}>`}
      ${progress !== null ? html`<div class="progress" role="progressbar" aria-label="Upload" aria-valuemin="0" aria-valuemax="100" aria-valuenow=${Math.round(progress * 100)}><span style=${`width:${Math.round(progress * 100)}%`}></span></div>` : null}
      <button type="submit" disabled=${busy || readOnly}>${busy ? 'Working…' : connector ? 'Save and test connection' : 'Continue'}</button>
    </fieldset></form>` : null}
    ${step === 2 ? html`<div class="card">
      <h2>Preview</h2>
      ${connector && source?.credentials ? html`<p class="muted" data-testid="masked-credentials">Stored login: ${Object.entries(source.credentials).map(([k, val]) => `${k} ${val}`).join(' · ')}</p>` : null}
      ${!preview ? html`<p class="state">${busy ? (connector ? 'Connecting and reading the first rows…' : 'Reading the head of the file…') : html`<button type="button" onClick=${test}>Test connection again</button>`}</p>
        ${connector && !busy ? html`<p><button type="button" class="secondary" onClick=${() => { setError(null); setStep(1); }}>Change the connection</button></p>` : null}` : html`
        <p class="flash ok" role="status">${connector ? 'Connection works.' : 'The file can be read.'}</p>
        <p class="muted">${preview.format || ''} ${preview.encoding || ''} ${preview.delimiter ? `· delimiter ${JSON.stringify(preview.delimiter)}` : ''}</p>
        ${(preview.warnings || []).length ? html`<ul class="errors">${preview.warnings.slice(0, 10).map((w) => html`<li>${w}</li>`)}</ul>` : null}
        ${metrics ? html`<div class="table-wrap"><table class="list"><thead><tr><th scope="col">Day</th><th scope="col">Metric</th><th scope="col" class="num">Value</th><th scope="col">Dimensions</th></tr></thead>
          <tbody>${previewRows.map((r) => html`<tr><td>${r.date}</td><td>${r.metric}</td><td class="num">${fmtNum(r.value, 2)}</td><td>${r.dimensions ? JSON.stringify(r.dimensions) : ''}</td></tr>`)}</tbody></table></div>
          <p class="muted">${fmtNum(preview.values)} values in the report.</p>` : html`
        <div class="table-wrap"><table class="list"><thead><tr><th scope="col">Import</th><th scope="col">Column in the source</th><th scope="col">Name</th><th scope="col">Type</th><th scope="col">Cleaning</th><th scope="col">Sample</th></tr></thead>
        <tbody>${columns.map((c, i) => html`<tr>
          <td><input type="checkbox" aria-label=${`Import ${c.source_name}`} checked=${c.included} onChange=${(e) => setCol(i, { included: e.target.checked })} /></td>
          <td>${c.source_name}</td>
          <td><input aria-label=${`Name for ${c.source_name}`} value=${c.target_name} onInput=${(e) => setCol(i, { target_name: e.target.value })} /></td>
          <td><select aria-label=${`Type of ${c.source_name}`} value=${c.type} onChange=${(e) => setCol(i, { type: e.target.value })}>${TYPES.map((t) => html`<option value=${t}>${t}</option>`)}</select></td>
          <td class="nowrap">${RULES.map(([r, l]) => html`<label class="check small"><input type="checkbox" checked=${c.rules.includes(r)} onChange=${(e) => setCol(i, { rules: e.target.checked ? [...c.rules, r] : c.rules.filter((x) => x !== r) })} /> ${l}</label>`)}</td>
          <td><small>${String(c.sample ?? '')}</small></td></tr>`)}</tbody></table></div>
        <div class="row">
          <${Field} label="Duplicates" id="wz-dupes"><select id="wz-dupes" value=${dupes} onChange=${(e) => setDupes(e.target.value)}><option value="keep_first">keep the first</option><option value="keep_last">keep the last</option><option value="skip_all">skip all copies</option></select></${Field}>
          <${Field} label="Duplicate key" id="wz-key"><select id="wz-key" value=${dupeKey} onChange=${(e) => setDupeKey(e.target.value)}><option value="">none</option>${columns.filter((c) => c.included).map((c) => html`<option value=${c.target_name}>${c.target_name}</option>`)}</select></${Field}>
        </div>`}
        <div class="actions"><button type="button" onClick=${() => setStep(3)}>Continue</button>${connector ? html`<button type="button" class="secondary" onClick=${() => setStep(1)}>Change the connection</button>` : null}</div>`}
    </div>` : null}
    ${step === 3 ? html`<div class="card editor">
      <${Field} label="Sync" id="wz-sched"><select id="wz-sched" value=${schedule} onChange=${(e) => setSchedule(e.target.value)}>${SCHEDULES.map((s) => html`<option value=${s}>${s === 'manual' ? 'only when I run it' : s}</option>`)}</select></${Field}>
      ${schedule !== 'manual' ? html`<div class="row"><${Field} label="At" id="wz-time"><input id="wz-time" type="time" value=${time} onInput=${(e) => setTime(e.target.value)} /></${Field}>
        <${Field} label="Time zone" id="wz-tz"><input id="wz-tz" value=${tz} onInput=${(e) => setTz(e.target.value)} /></${Field}></div>` : null}
      <div class="actions"><button type="button" disabled=${busy} onClick=${run}>${busy ? 'Starting…' : 'Save and run now'}</button>
        <button type="button" class="secondary" onClick=${() => { setError(null); setStep(2); }}>Back</button></div>
    </div>` : null}
    ${step === 4 && log ? html`<${SyncView} log=${log} frac=${frac} pr=${pr} source=${source} />` : null}
  </section>`;
}

/** The run, as its sync_logs row says (kept current by realtime). */
function SyncView({ log, frac, pr, source }) {
  const advice = log.status === 'failed' ? adviceFor(log.error_message) : '';
  const rows = pr.rows_read || 0;
  return html`<div class="card">
    <div class="page-head title"><h2>Sync</h2><${Badge} value=${log.status} /></div>
    ${log.status === 'running' ? html`<div class="progress" role="progressbar" aria-label="Sync" data-rows=${rows}
        aria-valuemin="0" aria-valuemax=${frac === null ? undefined : 100} aria-valuenow=${frac === null ? undefined : Math.round(frac * 100)}
        aria-valuetext=${`${log.metadata?.phase || 'queued'}: ${rows} rows read`}>${frac === null ? html`<span class="indeterminate"></span>` : html`<span style=${`width:${Math.round(frac * 100)}%`}></span>`}</div>
      <p class="muted" aria-live="polite">${log.metadata?.phase || 'queued'} · ${fmtNum(rows)} rows read · ${fmtNum(pr.imported || 0)} imported · ${fmtNum(pr.skipped || 0)} skipped</p>`
      : html`<p data-testid="sync-result">${fmtNum(log.records_imported)} imported, ${fmtNum(log.records_skipped)} skipped.${log.error_message ? html` <strong>${log.error_message}</strong>` : null}${advice ? html` <span>${advice}</span>` : null}</p>`}
    ${Array.isArray(log.metadata?.errors) && log.metadata.errors.length ? html`<ul class="errors">${log.metadata.errors.slice(0, 20).map((er) => html`<li>line ${er.line}: ${er.message || er.reason}</li>`)}</ul>` : null}
    <p><a href=${`#/data-sources/${source.id}`}>Open the source, its rows and its sync history</a></p>
  </div>`;
}
