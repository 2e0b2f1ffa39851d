// Admin: users and roles (the admin API with the admin's own token — a
// campaignd extension, no service key in the browser), app settings with
// write-only masked secret fields, and the audit log with filters.
import { useState } from 'preact/hooks';
import { createClient } from '@supabase/supabase-js';
import { html, supabase, anonKey, accessToken, q, fromSupabase, useAsync, Status, ErrorBox, Field, Pager, fmtTime, useFlash, setTimeZone, setDateFormat } from '../lib.js';

const ROLES = ['admin', 'user', 'viewer'];
const TABS = [['users', 'Users'], ['settings', 'Settings'], ['audit', 'Audit log']];

// One client per access token (a refresh makes a new one).
let adminClient = null;
let adminToken = null;
async function adminAuth() {
  const tok = await accessToken();
  if (tok !== adminToken) {
    adminToken = tok;
    adminClient = createClient(window.location.origin, anonKey, {
      global: { headers: { Authorization: `Bearer ${tok}` } },
      auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false, storageKey: 'campaignd-admin' },
      realtime: { params: {} },
    });
  }
  return adminClient.auth.admin;
}
async function call(promise) {
  const { data, error } = await promise;
  if (error) throw fromSupabase(error);
  return data;
}

export function Admin({ session }) {
  const [tab, setTab] = useState('users');
  const onKey = (e) => {
    const i = TABS.findIndex((t) => t[0] === tab);
    if (e.key === 'ArrowRight' || e.key === 'ArrowLeft') {
      const n = TABS[(i + (e.key === 'ArrowRight' ? 1 : TABS.length - 1)) % TABS.length][0];
      setTab(n);
      setTimeout(() => document.getElementById(`tab-${n}`)?.focus(), 0);
    }
  };
  return html`<section aria-labelledby="a-title"><h1 id="a-title">Admin</h1>
    <div class="tabs" role="tablist" aria-label="Admin sections" onKeyDown=${onKey}>
      ${TABS.map(([k, l]) => html`<button type="button" role="tab" id=${`tab-${k}`} aria-selected=${tab === k} aria-controls=${`panel-${k}`} tabindex=${tab === k ? 0 : -1} onClick=${() => setTab(k)}>${l}</button>`)}
    </div>
    <div role="tabpanel" id=${`panel-${tab}`} aria-labelledby=${`tab-${tab}`}>
      ${tab === 'users' ? html`<${Users} session=${session} />` : tab === 'settings' ? html`<${Settings} />` : html`<${Audit} />`}
    </div></section>`;
}

function Users({ session }) {
  const [page, setPage] = useState(1);
  const [gen, setGen] = useState(0);
  const [error, setError] = useState(null);
  const [flash, show] = useFlash();
  const perPage = 50;
  const state = useAsync(async () => call((await adminAuth()).listUsers({ page, perPage })), [page, gen]);
  const users = state.data?.users || [];
  const setRole = async (u, role) => {
    setError(null);
    try { await call((await adminAuth()).updateUserById(u.id, { app_metadata: { role } })); show(`${u.email} is now ${role}.`); setGen((n) => n + 1); } catch (e) { setError(e); }
  };
  return html`<${NewUser} onDone=${() => setGen((n) => n + 1)} />
    <${ErrorBox} error=${error} />${flash}
    <${Status} state=${state} empty=${!users.length}>
      <div class="table-wrap"><table class="list"><thead><tr><th scope="col">E-mail</th><th scope="col">Role</th><th scope="col">Last sign-in</th><th scope="col">Created</th></tr></thead>
      <tbody>${users.map((u) => html`<tr><td>${u.email}</td><td>
        ${u.id === session.user.id ? html`<span class="role r-admin">${u.app_metadata?.role} (you)</span>`
          : html`<label class="sr-only" for=${`role-${u.id}`}>Role of ${u.email}</label><select id=${`role-${u.id}`} value=${u.app_metadata?.role || 'user'} onChange=${(e) => setRole(u, e.target.value)}>${ROLES.map((r) => html`<option value=${r}>${r}</option>`)}</select>`}
      </td><td>${fmtTime(u.last_sign_in_at)}</td><td>${fmtTime(u.created_at)}</td></tr>`)}</tbody></table></div>
      <${Pager} page=${page} perPage=${perPage} total=${state.data?.total ?? users.length} onPage=${setPage} />
    </${Status}>`;
}

function NewUser({ onDone }) {
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [role, setRole] = useState('user');
  const [error, setError] = useState(null);
  const [flash, show] = useFlash();
  const submit = async (e) => {
    e.preventDefault();
    setError(null);
    try {
      await call((await adminAuth()).createUser({ email: email.trim(), password, email_confirm: true, app_metadata: { role } }));
      show(`${email} can now sign in as ${role}.`);
      setEmail(''); setPassword('');
      onDone();
    } catch (err) { setError(err); }
  };
  return html`<form class="card row-form" onSubmit=${submit} aria-label="Add a user">
    <${Field} label="E-mail" id="nu-email"><input id="nu-email" type="email" required value=${email} onInput=${(e) => setEmail(e.target.value)} /></${Field}>
    <${Field} label="Initial password" id="nu-pass"><input id="nu-pass" type="password" autocomplete="new-password" required minlength="8" value=${password} onInput=${(e) => setPassword(e.target.value)} /></${Field}>
    <${Field} label="Role" id="nu-role"><select id="nu-role" value=${role} onChange=${(e) => setRole(e.target.value)}>${ROLES.map((r) => html`<option value=${r}>${r}</option>`)}</select></${Field}>
    <button type="submit">Add user</button>
    <${ErrorBox} error=${error} />${flash}
  </form>`;
}

// The write-only provider secrets of migrations 009 and 039: the server keeps
// them encrypted and answers only a mask; the page says "Set" / "Not set".
const SECRETS = [
  ['smtp_url', 'SMTP URL', 'smtp://user:password@host:587 (smtps:// for implicit TLS): the server of campaign e-mail.'],
  ['sendgrid_api_key', 'SendGrid API key', 'An API key with the Mail Send permission.'],
  ['twilio_account_sid', 'Twilio account SID', 'AC… from the Twilio console.'],
  ['twilio_auth_token', 'Twilio auth token', 'Signs API requests and the webhooks Twilio sends back.'],
];
// The plain provider columns of app_settings (039); empty = the server's environment value.
const PROVIDER_FIELDS = [
  ['email_from', 'Sender address', 'email', 'Used when a campaign names none.'],
  ['sendgrid_api_base', 'SendGrid API base', 'url', 'Default https://api.sendgrid.com.'],
  ['twilio_from', 'Twilio sender', 'text', 'An E.164 number or a messaging service SID (MG…); a campaign\'s SMS sender wins.'],
  ['twilio_api_base', 'Twilio API base', 'url', 'Default https://api.twilio.com.'],
];
const FORMATS = ['MM/DD/YYYY', 'DD/MM/YYYY', 'YYYY-MM-DD', 'DD.MM.YYYY'];

function Settings() {
  const [gen, setGen] = useState(0);
  const state = useAsync(() => q(supabase.from('app_settings').select('*').single()), [gen]);
  return html`<${Status} state=${state}>${state.data ? html`<${SettingsForm} s=${state.data} reload=${() => setGen((n) => n + 1)} />` : null}</${Status}>`;
}

const nullIfBlank = (v) => (typeof v === 'string' && !v.trim() ? null : typeof v === 'string' ? v.trim() : v);

function SettingsForm({ s, reload }) {
  const [f, setF] = useState({ timezone: s.timezone, date_format: s.date_format, monthly_sms_limit: s.monthly_sms_limit, monthly_email_limit: s.monthly_email_limit, data_retention_days: s.data_retention_days, enable_audit_log: s.enable_audit_log, postal_address: s.postal_address || '' });
  const [prov, setProv] = useState(Object.fromEntries([['email_provider', s.email_provider || ''], ...PROVIDER_FIELDS.map(([k]) => [k, s[k] || ''])]));
  const [secrets, setSecrets] = useState({});
  const [error, setError] = useState(null);
  const [flash, show] = useFlash();
  const set = (k, num) => (e) => setF({ ...f, [k]: num ? Number(e.target.value) : e.target.value });
  const save = async (e) => {
    e.preventDefault();
    setError(null);
    try {
      const provider = Object.fromEntries(Object.entries(prov).map(([k, v]) => [k, nullIfBlank(v)]));
      await q(supabase.from('app_settings').update({ ...f, ...provider, postal_address: f.postal_address.trim() || null }).eq('id', s.id).select('id').single());
      for (const [name] of SECRETS)
        if (secrets[name]) await q(supabase.rpc('set_app_secret', { name, value: secrets[name] }));
      setTimeZone(f.timezone);
      setDateFormat(f.date_format);
      setSecrets({});
      show('Settings saved.');
      reload();
    } catch (err) { setError(err); }
  };
  const clearSecret = async (name, label) => {
    if (!window.confirm(`Clear the ${label}? Sending through this provider uses the server's own value (or stops) until a new one is entered.`)) return;
    setError(null);
    try { await q(supabase.rpc('set_app_secret', { name, value: '' })); show(`${label} cleared.`); reload(); } catch (err) { setError(err); }
  };
  return html`<form class="card editor" onSubmit=${save} aria-label="App settings">
    <h2>General</h2>
    <div class="row">
      <${Field} label="Time zone" id="s-tz" hint="An IANA name, e.g. Europe/Lisbon. Times in the app and reports use it."><input id="s-tz" required value=${f.timezone} onInput=${set('timezone')} /></${Field}>
      <${Field} label="Date format" id="s-df"><select id="s-df" value=${f.date_format} onChange=${set('date_format')}>${FORMATS.map((x) => html`<option value=${x}>${x}</option>`)}</select></${Field}>
    </div>
    <div class="row">
      <${Field} label="Monthly SMS limit" id="s-sms"><input id="s-sms" type="number" min="0" value=${f.monthly_sms_limit} onInput=${set('monthly_sms_limit', true)} /></${Field}>
      <${Field} label="Monthly e-mail limit" id="s-email"><input id="s-email" type="number" min="0" value=${f.monthly_email_limit} onInput=${set('monthly_email_limit', true)} /></${Field}>
      <${Field} label="Keep audit log (days)" id="s-ret"><input id="s-ret" type="number" min="1" max="36500" value=${f.data_retention_days} onInput=${set('data_retention_days', true)} /></${Field}>
    </div>
    <${Field} label="Postal address" id="s-postal" hint="Printed in the footer of every marketing e-mail; e-mail campaigns are not sent without it.">
      <textarea id="s-postal" rows="2" maxlength="500" value=${f.postal_address} onInput=${set('postal_address')}></textarea></${Field}>
    <label class="check"><input type="checkbox" checked=${f.enable_audit_log} onChange=${(e) => setF({ ...f, enable_audit_log: e.target.checked })} /> Keep an audit log</label>
    <h2>Providers</h2>
    <p class="muted">Empty fields use the server's own configuration (its environment).</p>
    <${Field} label="E-mail provider" id="p-email_provider"><select id="p-email_provider" value=${prov.email_provider} onChange=${(e) => setProv({ ...prov, email_provider: e.target.value })}>
      <option value="">Server default</option><option value="smtp">SMTP</option><option value="sendgrid">SendGrid</option></select></${Field}>
    <div class="row">
      ${PROVIDER_FIELDS.map(([k, label, type, hint]) => html`<${Field} label=${label} id=${`p-${k}`} hint=${hint}>
        <input id=${`p-${k}`} type=${type} maxlength=${k === 'twilio_from' ? 64 : 500} value=${prov[k]} onInput=${(e) => setProv({ ...prov, [k]: e.target.value })} /></${Field}>`)}
    </div>
    <h2>Provider credentials</h2>
    <p class="muted">Write-only: stored encrypted and never shown again. Leave a field empty to keep the current value.</p>
    ${SECRETS.map(([name, label, hint]) => html`<div class="row secret" data-testid=${`secret-${name}`}>
      <${Field} label=${label} id=${`sec-${name}`} hint=${hint}>
        <input id=${`sec-${name}`} type="password" autocomplete="off" placeholder=${s[name] ? 'Enter a new value to replace it' : 'Not set'} value=${secrets[name] || ''} onInput=${(e) => setSecrets({ ...secrets, [name]: e.target.value })} /></${Field}>
      <span class=${s[name] ? 'badge ok' : 'badge'} data-testid="secret-state">${s[name] ? 'Set' : 'Not set'}</span>
      ${s[name] ? html`<button type="button" class="link danger" onClick=${() => clearSecret(name, label)}>Clear ${label}</button>` : null}
    </div>`)}
    <${ErrorBox} error=${error} />${flash}
    <button type="submit">Save settings</button>
  </form>`;
}

function Audit() {
  const [action, setAction] = useState('');
  const [resource, setResource] = useState('');
  const [from, setFrom] = useState('');
  const [to, setTo] = useState('');
  const [page, setPage] = useState(1);
  const perPage = 50;
  const state = useAsync(() => {
    let b = supabase.from('audit_logs').select('id,created_at,user_id,action,resource_type,resource_id,status,ip_address,error_message', { count: 'exact' })
      .order('created_at', { ascending: false }).range((page - 1) * perPage, page * perPage - 1);
    if (action) b = b.eq('action', action);
    if (resource.trim()) b = b.eq('resource_type', resource.trim());
    if (from) b = b.gte('created_at', `${from}T00:00:00Z`);
    if (to) b = b.lte('created_at', `${to}T23:59:59.999Z`);
    return q(b);
  }, [action, resource, from, to, page]);
  const rows = state.data?.data || [];
  const reset = (fn) => (e) => { fn(e.target.value); setPage(1); };
  return html`<div class="filters" role="group" aria-label="Audit filters">
      <${Field} label="Action" id="au-action"><select id="au-action" value=${action} onChange=${reset(setAction)}><option value="">Any</option>${['create', 'update', 'delete', 'login', 'export'].map((a) => html`<option value=${a}>${a}</option>`)}</select></${Field}>
      <${Field} label="Resource" id="au-res"><input id="au-res" placeholder="e.g. campaigns" value=${resource} onChange=${reset(setResource)} /></${Field}>
      <${Field} label="From (UTC)" id="au-from"><input id="au-from" type="date" value=${from} onInput=${reset(setFrom)} /></${Field}>
      <${Field} label="To (UTC)" id="au-to"><input id="au-to" type="date" value=${to} onInput=${reset(setTo)} /></${Field}>
    </div>
    <${Status} state=${state} empty=${!rows.length} emptyText="No audit entries match.">
      <div class="table-wrap"><table class="list"><thead><tr><th scope="col">When</th><th scope="col">Action</th><th scope="col">Resource</th><th scope="col">Status</th><th scope="col">User</th><th scope="col">Address</th></tr></thead>
      <tbody>${rows.map((r) => html`<tr><td class="nowrap">${fmtTime(r.created_at)}</td><td>${r.action}</td><td>${r.resource_type || '—'} <small class="muted">${r.resource_id ? r.resource_id.slice(0, 8) : ''}</small></td>
        <td>${r.status || '—'}${r.error_message ? html` <small>${r.error_message}</small>` : null}</td><td><small>${r.user_id ? r.user_id.slice(0, 8) : 'system'}</small></td><td>${r.ip_address || '—'}</td></tr>`)}</tbody></table></div>
      <${Pager} page=${page} perPage=${perPage} total=${state.data?.count} onPage=${setPage} />
    </${Status}>`;
}
