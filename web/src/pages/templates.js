// Templates: list and editor (variables, live preview for a chosen contact,
// SMS length and segment counter). Rows are read and written through /rest/v1;
// RLS lets users see their own and admins all.
import { useState, useEffect } from 'preact/hooks';
import { html, supabase, q, api, pageRange, PER_PAGE, useAsync, Status, ErrorBox, Field, Pager, Badge, fmtTime, useFlash, canWrite, usePageClamp } from '../lib.js';
import { SmsCounter, variablesOf, fillTemplate } from '../sms.js';

const CATEGORIES = ['promotional', 'transactional', 'newsletter'];

export function Templates() {
  const [type, setType] = useState('');
  const [search, setSearch] = useState('');
  const [page, setPage] = useState(1);
  const state = useAsync(() => {
    let b = supabase.from('templates').select('id,name,type,category,is_active,updated_at', { count: 'exact' }).is('deleted_at', null);
    if (type) b = b.eq('type', type);
    const s = search.replace(/[%_\\]/g, '').trim();
    if (s) b = b.ilike('name', `%${s}%`);
    return q(pageRange(b.order('updated_at', { ascending: false }).order('id'), page));
  }, [type, search, page]);
  const rows = state.data?.data || [];
  usePageClamp(state, page, setPage);
  return html`<section aria-labelledby="t-title">
    <div class="page-head"><h1 id="t-title">Templates</h1><a class="button" href="#/templates/new">New template</a></div>
    <div class="filters" role="group" aria-label="Filters">
      <${Field} label="Search" id="t-search"><input id="t-search" type="search" value=${search} onInput=${(e) => { setSearch(e.target.value); setPage(1); }} placeholder="Name" /></${Field}>
      <${Field} label="Channel" id="t-type"><select id="t-type" value=${type} onChange=${(e) => { setType(e.target.value); setPage(1); }}><option value="">Any</option><option value="email">email</option><option value="sms">sms</option></select></${Field}>
    </div>
    <${Status} state=${state} empty=${!rows.length} emptyText="No templates yet. Create one to reuse content across campaigns.">
      <div class="table-wrap"><table class="list"><thead><tr><th scope="col">Name</th><th scope="col">Channel</th><th scope="col">Category</th><th scope="col">Active</th><th scope="col">Updated</th></tr></thead>
      <tbody>${rows.map((t) => html`<tr><td><a href=${`#/templates/${t.id}`}>${t.name}</a></td><td>${t.type}</td><td>${t.category || '—'}</td><td>${t.is_active ? 'yes' : 'no'}</td><td>${fmtTime(t.updated_at)}</td></tr>`)}</tbody></table></div>
      <${Pager} page=${page} perPage=${PER_PAGE} total=${state.data?.count} onPage=${setPage} />
    </${Status}>
  </section>`;
}

export function TemplatePage({ params, role }) {
  const isNew = params.id === 'new';
  const state = useAsync(() => (isNew ? Promise.resolve({}) : q(supabase.from('templates').select('*').eq('id', params.id).is('deleted_at', null).single())), [params.id]);
  return html`<section aria-labelledby="te-title"><p><a href="#/templates">← Templates</a></p>
    <${Status} state=${state}>${state.data ? html`<${TemplateEditor} t=${state.data} isNew=${isNew} role=${role} />` : null}</${Status}></section>`;
}

function TemplateEditor({ t, isNew, role }) {
  const [name, setName] = useState(t.name || '');
  const [type, setType] = useState(t.type || 'email');
  const [subject, setSubject] = useState(t.subject || '');
  const [content, setContent] = useState(t.content || '');
  const [category, setCategory] = useState(t.category || '');
  const [active, setActive] = useState(t.is_active !== false);
  const [contactId, setContactId] = useState('');
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const [flash, show] = useFlash();
  const [savedAt, setSavedAt] = useState(0);
  const contacts = useAsync(() => q(supabase.from('contacts').select('id,email,phone,first_name,last_name,attributes').is('deleted_at', null).order('created_at', { ascending: false }).limit(50)), []);
  const vars = variablesOf(`${subject}\n${content}`);
  const contact = (contacts.data || []).find((c) => c.id === contactId);
  const sample = contact || { first_name: 'Ana', last_name: 'Silva', email: 'ana@example.com', phone: '+15551234567' };

  const save = async (e) => {
    e.preventDefault();
    setBusy(true); setError(null);
    const row = { name: name.trim(), type, subject: type === 'email' ? subject || null : null, content, category: category || null, is_active: active, variables: vars };
    try {
      if (isNew) {
        const r = await q(supabase.from('templates').insert(row).select('id').single());
        window.location.hash = `#/templates/${r.id}`;
      } else {
        await q(supabase.from('templates').update(row).eq('id', t.id).select('id').single());
        show('Template saved.');
        setSavedAt((n) => n + 1);
      }
    } catch (err) { setError(err); }
    setBusy(false);
  };
  const remove = async () => {
    if (!window.confirm('Delete this template?')) return;
    try { await q(supabase.from('templates').update({ deleted_at: new Date().toISOString() }).eq('id', t.id).select('id').single()); window.location.hash = '#/templates'; } catch (err) { setError(err); }
  };

  return html`<h1 id="te-title">${isNew ? 'New template' : name || 'Template'}</h1>
  <div class="split">
    <form class="card editor" onSubmit=${save}>
      <${Field} label="Name" id="t-name"><input id="t-name" required maxlength="255" value=${name} onInput=${(e) => setName(e.target.value)} /></${Field}>
      <div class="row">
        <${Field} label="Channel" id="t-channel"><select id="t-channel" value=${type} onChange=${(e) => setType(e.target.value)}><option value="email">email</option><option value="sms">sms</option></select></${Field}>
        <${Field} label="Category" id="t-cat"><select id="t-cat" value=${category} onChange=${(e) => setCategory(e.target.value)}><option value="">None</option>${CATEGORIES.map((c) => html`<option value=${c}>${c}</option>`)}</select></${Field}>
      </div>
      ${type === 'email' ? html`<${Field} label="Subject" id="t-subject"><input id="t-subject" value=${subject} onInput=${(e) => setSubject(e.target.value)} /></${Field}>` : null}
      <${Field} label="Content" id="t-content" hint="Use {{first_name}}, {{last_name}}, {{email}}, {{phone}} or any contact attribute.">
        <textarea id="t-content" rows="10" required value=${content} onInput=${(e) => setContent(e.target.value)} aria-describedby="t-content-hint t-counter"></textarea></${Field}>
      ${type === 'sms' ? html`<${SmsCounter} text=${content} id="t-counter" />` : null}
      <p class="muted">Variables: ${vars.length ? vars.map((v) => html`<code>${v}</code> `) : 'none'}</p>
      <label class="check"><input type="checkbox" checked=${active} onChange=${(e) => setActive(e.target.checked)} /> Active</label>
      <${ErrorBox} error=${error} />${flash}
      ${canWrite(role) ? html`<div class="actions"><button type="submit" disabled=${busy}>${isNew ? 'Create template' : 'Save template'}</button>
        ${!isNew ? html`<button type="button" class="link danger" onClick=${remove}>Delete</button>` : null}</div>` : null}
    </form>
    <div class="card preview" aria-labelledby="pv-title">
      <h2 id="pv-title">Preview</h2>
      <${Field} label="Preview for contact" id="t-contact"><select id="t-contact" value=${contactId} onChange=${(e) => setContactId(e.target.value)}>
        <option value="">Sample contact (Ana Silva)</option>
        ${(contacts.data || []).map((c) => html`<option value=${c.id}>${[c.first_name, c.last_name].filter(Boolean).join(' ') || c.email || c.phone}</option>`)}</select></${Field}>
      ${type === 'email' ? html`<p><strong>${fillTemplate(subject, sample) || '(no subject)'}</strong></p>` : null}
      <div class=${type === 'sms' ? 'bubble' : 'mail'}>${fillTemplate(content, sample) || html`<span class="muted">Nothing to preview yet.</span>`}</div>
      ${!isNew && t.id && contactId ? html`<${ServerPreview} id=${t.id} contactId=${contactId} savedAt=${savedAt} sms=${type === 'sms'} />` : null}
    </div>
  </div>`;
}

/** The saved template as the send engine renders it for one contact (POST
 * /api/templates/:id/preview): defaults, attributes and HTML escaping as in
 * the messages that leave, without the footer sending adds. HTML is shown in
 * a sandboxed frame (no scripts, no same-origin access). */
function ServerPreview({ id, contactId, savedAt, sms }) {
  const [state, setState] = useState({ loading: true });
  useEffect(() => {
    let live = true;
    setState({ loading: true });
    api(`/api/templates/${encodeURIComponent(id)}/preview`, { method: 'POST', body: { contact_id: contactId } })
      .then((r) => live && setState({ data: r.data }), (e) => live && setState({ error: e }));
    return () => { live = false; };
  }, [id, contactId, savedAt]);
  const d = state.data;
  return html`<div class="server-preview" aria-live="polite" data-testid="server-preview">
    <h3>As sent to this contact <small class="muted">(saved version)</small></h3>
    ${state.loading ? html`<p class="state" role="status">Rendering…</p>` : null}
    <${ErrorBox} error=${state.error} />
    ${d ? html`${!sms ? html`<p><strong data-testid="server-subject">${d.subject || '(no subject)'}</strong></p>` : null}
      ${d.html && !sms ? html`<iframe class="mail-frame" title="Rendered e-mail" sandbox="" srcdoc=${d.html}></iframe>` : null}
      ${d.text ? html`<pre class=${sms ? 'bubble' : 'content'} data-testid="server-text">${d.text}</pre>` : null}` : null}
  </div>`;
}
