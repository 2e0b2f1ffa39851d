// Scheduled reports (docs/reports.md#scheduled-reports): the list of
// report_schedules, a form to add or change one, "Send now", pause/resume
// and delete. Rows go through /rest/v1 and row-level security: a user sees and
// manages their own schedules; an admin sees everyone's and manages their
// own. Recipients are picked from public.report_recipients() (live users of
// the instance). The database checks every value and its message is shown as
// it is. Runs update the row (last_run_at, last_error, next_run_at), which
// arrives through realtime.
import { useState } from 'preact/hooks';
import { html, supabase, q, allPages, pageRange, PER_PAGE, useAsync, useRealtime, Status, ErrorBox, Field, Pager, fmtTime, useFlash, timeZone, usePageClamp } from '../lib.js';

export const REPORT_TYPES = [
  ['period_summary', 'Period summary'],
  ['channel_comparison', 'Channel comparison'],
  ['audience', 'Audience'],
];
const typeLabel = (t) => (REPORT_TYPES.find((x) => x[0] === t) || [t, t])[1];
const DAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];
const MAX_RECIPIENTS = 20;

/** "Weekly, Monday at 08:00" / "Monthly, day 31 at 00:00" (the database's defaults when a key is missing). */
export function describeWhen(s) {
  const c = s.schedule_config || {};
  const time = c.time || '00:00';
  if (s.frequency === 'monthly') return `Monthly, day ${c.day_of_month ?? 1} at ${time}`;
  return `Weekly, ${DAYS[(c.day_of_week ?? 1) % 7]} at ${time}`;
}

export function ScheduledReports({ session }) {
  const me = session.user.id;
  const [editing, setEditing] = useState(null); // null: closed, {}: new, row: edit
  const [error, setError] = useState(null);
  const [flash, show] = useFlash();
  const [page, setPage] = useState(1);
  const state = useAsync(() => q(pageRange(supabase.from('report_schedules')
    .select('id,user_id,name,report_type,frequency,schedule_config,recipients,attachment_format,enabled,next_run_at,last_run_at,last_error', { count: 'exact' })
    .order('created_at', { ascending: true }).order('id'), page)), [page]);
  const people = useAsync(allRecipients, []);
  useRealtime('report-schedules', ['report_schedules'], () => state.reload());
  const rows = state.data?.data || [];
  usePageClamp(state, page, setPage);
  const emailOf = new Map((people.data || []).map((p) => [p.id, p.email]));
  const who = (ids) => ids.map((id) => emailOf.get(id) || 'a former user').join(', ');

  const act = async (fn, done) => {
    setError(null);
    try { await fn(); show(done); state.reload(); } catch (err) { setError(err); }
  };
  const toggle = (s) => act(() => q(supabase.from('report_schedules').update({ enabled: !s.enabled }).eq('id', s.id).select('id').single()),
    s.enabled ? `“${s.name}” paused.` : `“${s.name}” resumed.`);
  const sendNow = (s) => act(() => q(supabase.rpc('run_report_schedule', { p_id: s.id })),
    `“${s.name}” is being generated and mailed now.`);
  const remove = (s) => {
    if (!window.confirm(`Delete the schedule “${s.name}”? Reports it already sent stay in the list.`)) return;
    act(() => q(supabase.from('report_schedules').delete().eq('id', s.id).select('id').single()), `“${s.name}” deleted.`);
  };

  return html`<section class="card" aria-labelledby="rs-title">
    <div class="page-head small"><h2 id="rs-title">Scheduled reports</h2>
      ${editing ? null : html`<button type="button" onClick=${() => setEditing({})}>Schedule a report</button>`}</div>
    <p class="muted">Generated as you, with what you may see, and mailed with the file attached and a download link valid 7 days. Times are in the app's time zone (${timeZone()}).</p>
    ${flash}
    <${ErrorBox} error=${error} />
    ${editing ? html`<${ScheduleForm} key=${editing.id || 'new'} s=${editing} me=${me} people=${people}
        onDone=${(msg) => { setEditing(null); show(msg); state.reload(); }} onCancel=${() => setEditing(null)} />` : null}
    <${Status} state=${state} empty=${!rows.length} emptyText="No scheduled reports yet.">
      <div class="table-wrap"><table class="list" aria-label="Scheduled reports">
        <thead><tr><th scope="col">Name</th><th scope="col">Report</th><th scope="col">When</th><th scope="col">Mailed to</th>
          <th scope="col">File</th><th scope="col">Next run</th><th scope="col">Last run</th><th scope="col">Actions</th></tr></thead>
        <tbody>${rows.map((s) => {
          const own = s.user_id === me;
          return html`<tr>
            <td>${s.name}${s.enabled ? null : html` <span class="badge b-paused">paused</span>`}</td>
            <td>${typeLabel(s.report_type)}</td>
            <td>${describeWhen(s)}</td>
            <td>${who(s.recipients)}</td>
            <td>${s.attachment_format === 'pdf' ? 'PDF' : 'CSV'}</td>
            <td>${s.enabled ? fmtTime(s.next_run_at) : '—'}</td>
            <td>${fmtTime(s.last_run_at)}${s.last_error ? html`<div class="failed-note">Failed: ${s.last_error}</div>` : null}</td>
            <td class="nowrap">${own ? html`
              <button type="button" class="link" aria-label=${`Send ${s.name} now`} onClick=${() => sendNow(s)}>Send now</button> ·
              <button type="button" class="link" aria-label=${`${s.enabled ? 'Pause' : 'Resume'} ${s.name}`} onClick=${() => toggle(s)}>${s.enabled ? 'Pause' : 'Resume'}</button> ·
              <button type="button" class="link" aria-label=${`Edit ${s.name}`} onClick=${() => setEditing(s)}>Edit</button> ·
              <button type="button" class="link" aria-label=${`Delete ${s.name}`} onClick=${() => remove(s)}>Delete</button>`
              : html`<span class="muted">${emailOf.get(s.user_id) || 'another user'}'s</span>`}</td>
          </tr>`;
        })}</tbody></table></div>
      <${Pager} page=${page} perPage=${PER_PAGE} total=${state.data?.count} onPage=${setPage} />
    </${Status}>
  </section>`;
}

/** Every user a report can be mailed to (read page by page: allPages). */
const allRecipients = () => allPages((from, to) => supabase.rpc('report_recipients').order('email').range(from, to));

function ScheduleForm({ s, me, people, onDone, onCancel }) {
  const isNew = !s.id;
  const c = s.schedule_config || {};
  const [name, setName] = useState(s.name || '');
  const [type, setType] = useState(s.report_type || 'period_summary');
  const [frequency, setFrequency] = useState(s.frequency || 'weekly');
  const [weekday, setWeekday] = useState(String((c.day_of_week ?? 1) % 7));
  const [monthDay, setMonthDay] = useState(String(c.day_of_month ?? 1));
  const [time, setTime] = useState(c.time || '08:00');
  const [format, setFormat] = useState(s.attachment_format || 'csv');
  const [recipients, setRecipients] = useState(new Set(s.recipients || [me]));
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const flip = (id) => {
    const next = new Set(recipients);
    if (next.has(id)) next.delete(id); else next.add(id);
    setRecipients(next);
  };
  const submit = async (e) => {
    e.preventDefault();
    setBusy(true); setError(null);
    const row = {
      name: name.trim(), report_type: type, frequency, attachment_format: format, recipients: [...recipients],
      schedule_config: frequency === 'weekly' ? { day_of_week: Number(weekday), time } : { day_of_month: Number(monthDay), time },
    };
    try {
      if (isNew) await q(supabase.from('report_schedules').insert(row).select('id').single());
      else await q(supabase.from('report_schedules').update(row).eq('id', s.id).select('id').single());
      onDone(isNew ? `“${row.name}” scheduled.` : `“${row.name}” saved.`);
    } catch (err) { setError(err); }
    setBusy(false);
  };
  const list = people.data || [];
  return html`<form class="card" onSubmit=${submit} aria-label=${isNew ? 'Schedule a report' : `Edit ${s.name}`}>
    <div class="row-form">
      <${Field} label="Name (the mail's subject)" id="rs-name"><input id="rs-name" required maxlength="200" value=${name} onInput=${(e) => setName(e.target.value)} /></${Field}>
      <${Field} label="Report" id="rs-type"><select id="rs-type" value=${type} onChange=${(e) => setType(e.target.value)}>
        ${REPORT_TYPES.map(([v, l]) => html`<option value=${v}>${l}</option>`)}</select></${Field}>
      <${Field} label="Every" id="rs-frequency"><select id="rs-frequency" value=${frequency} onChange=${(e) => setFrequency(e.target.value)}>
        <option value="weekly">week (covers the 7 days before)</option><option value="monthly">month (covers the previous month)</option></select></${Field}>
      ${frequency === 'weekly'
        ? html`<${Field} label="On" id="rs-weekday"><select id="rs-weekday" value=${weekday} onChange=${(e) => setWeekday(e.target.value)}>
            ${DAYS.map((d, i) => html`<option value=${String(i)}>${d}</option>`)}</select></${Field}>`
        : html`<${Field} label="Day of the month" id="rs-monthday" hint="Past the month's end: its last day."><input id="rs-monthday" type="number" min="1" max="31" required value=${monthDay} onInput=${(e) => setMonthDay(e.target.value)} aria-describedby="rs-monthday-hint" /></${Field}>`}
      <${Field} label=${`At (${timeZone()})`} id="rs-time"><input id="rs-time" type="time" required value=${time} onInput=${(e) => setTime(e.target.value)} /></${Field}>
      <${Field} label="Attach" id="rs-format"><select id="rs-format" value=${format} onChange=${(e) => setFormat(e.target.value)}>
        <option value="csv">CSV</option><option value="pdf">PDF</option></select></${Field}>
    </div>
    <fieldset><legend>Mail it to (up to ${MAX_RECIPIENTS})</legend>
      ${people.loading ? html`<p class="state">Loading…</p>` : null}
      <${ErrorBox} error=${people.error} retry=${people.reload} />
      ${list.map((p) => html`<label class="check"><input type="checkbox" checked=${recipients.has(p.id)}
          disabled=${!recipients.has(p.id) && recipients.size >= MAX_RECIPIENTS} onChange=${() => flip(p.id)} /> ${p.email}${p.id === me ? ' (you)' : ''}</label>`)}
    </fieldset>
    <div class="actions">
      <button type="submit" disabled=${busy || !recipients.size || !name.trim()}>${busy ? 'Saving…' : isNew ? 'Schedule' : 'Save'}</button>
      <button type="button" class="secondary" onClick=${onCancel}>Cancel</button>
    </div>
    <${ErrorBox} error=${error} />
  </form>`;
}
