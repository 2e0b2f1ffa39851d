// Contacts: a server-side paged, searchable table through /rest/v1 (Range and
// an exact count), with the consent state per channel from the consent tables.
import { useState, useEffect } from 'preact/hooks';
import { html, supabase, q, useAsync, Status, ErrorBox, Field, Pager, fmtTime, useFlash, canWrite, usePageClamp } from '../lib.js';

const PER_PAGE = 25;
const COLS = 'id,email,phone,first_name,last_name,source,created_at,sms_consent(consent_given,opt_out_at),email_subscriptions(subscribed,unsubscribed_at)';

/** A value for a PostgREST or=() filter: quoted, so commas and parentheses stay text. */
function orValue(s) {
  return `"*${s.replace(/["\\]/g, '').replace(/[*%]/g, '')}*"`;
}

export function Contacts({ role }) {
  const [search, setSearch] = useState('');
  const [term, setTerm] = useState('');
  const [page, setPage] = useState(1);
  const [adding, setAdding] = useState(false);
  const [gen, setGen] = useState(0);
  useEffect(() => { const t = setTimeout(() => { setTerm(search.trim()); setPage(1); }, 250); return () => clearTimeout(t); }, [search]);
  const state = useAsync(() => {
    let b = supabase.from('contacts').select(COLS, { count: 'exact' }).is('deleted_at', null)
      .order('created_at', { ascending: false }).order('id').range((page - 1) * PER_PAGE, page * PER_PAGE - 1);
    if (term) {
      const v = orValue(term);
      b = b.or(`email.ilike.${v},first_name.ilike.${v},last_name.ilike.${v},phone.ilike.${v}`);
    }
    return q(b);
  }, [term, page, gen]);
  const rows = state.data?.data || [];
  usePageClamp(state, page, setPage, PER_PAGE);

  return html`<section aria-labelledby="ct-title">
    <div class="page-head"><h1 id="ct-title">Contacts</h1>${canWrite(role) ? html`<button type="button" onClick=${() => setAdding(!adding)} aria-expanded=${adding}>New contact</button>` : null}</div>
    ${adding ? html`<${NewContact} onDone=${() => { setAdding(false); setGen((n) => n + 1); }} />` : null}
    <div class="filters"><${Field} label="Search" id="ct-search"><input id="ct-search" type="search" placeholder="Name, e-mail or phone" value=${search} onInput=${(e) => setSearch(e.target.value)} /></${Field}></div>
    <${Status} state=${state} empty=${!rows.length} emptyText=${term ? 'No contact matches this search.' : 'No contacts yet. Add one, or import them from a data source.'}>
      <div class="table-wrap"><table class="list">
        <thead><tr><th scope="col">Name</th><th scope="col">E-mail</th><th scope="col">Phone</th><th scope="col">E-mail consent</th><th scope="col">SMS consent</th><th scope="col">Source</th><th scope="col">Added</th></tr></thead>
        <tbody>${rows.map((c) => html`<tr>
          <td>${[c.first_name, c.last_name].filter(Boolean).join(' ') || '—'}</td><td>${c.email || '—'}</td><td>${c.phone || '—'}</td>
          <td>${consent(c.email ? c.email_subscriptions : undefined, 'subscribed')}</td>
          <td>${consent(c.phone ? c.sms_consent : undefined, 'consent_given')}</td>
          <td>${c.source}</td><td>${fmtTime(c.created_at)}</td></tr>`)}</tbody></table></div>
      <${Pager} page=${page} perPage=${PER_PAGE} total=${state.data?.count} onPage=${setPage} />
    </${Status}>
  </section>`;
}

function consent(row, key) {
  if (row === undefined) return html`<span class="muted">no channel</span>`;
  if (!row) return html`<span class="badge b-unknown">unknown</span>`;
  return row[key] ? html`<span class="badge b-yes">opted in</span>` : html`<span class="badge b-no">opted out</span>`;
}

function NewContact({ onDone }) {
  const [f, setF] = useState({ email: '', phone: '', first_name: '', last_name: '' });
  const [error, setError] = useState(null);
  const [flash, show] = useFlash();
  const set = (k) => (e) => setF({ ...f, [k]: e.target.value });
  const save = async (e) => {
    e.preventDefault();
    setError(null);
    const row = {};
    for (const [k, v] of Object.entries(f)) if (v.trim()) row[k] = k === 'email' ? v.trim().toLowerCase() : v.trim();
    try { await q(supabase.from('contacts').insert(row).select('id').single()); show('Contact added.'); onDone(); } catch (err) { setError(err); }
  };
  return html`<form class="card editor" onSubmit=${save} aria-label="New contact">
    <div class="row">
      <${Field} label="First name" id="nc-first"><input id="nc-first" value=${f.first_name} onInput=${set('first_name')} /></${Field}>
      <${Field} label="Last name" id="nc-last"><input id="nc-last" value=${f.last_name} onInput=${set('last_name')} /></${Field}>
    </div>
    <div class="row">
      <${Field} label="E-mail" id="nc-email"><input id="nc-email" type="email" value=${f.email} onInput=${set('email')} /></${Field}>
      <${Field} label="Phone (E.164)" id="nc-phone" hint="e.g. +15551234567"><input id="nc-phone" type="tel" pattern="\\+[1-9][0-9]{1,14}" value=${f.phone} onInput=${set('phone')} /></${Field}>
    </div>
    <${ErrorBox} error=${error} />${flash}
    <button type="submit">Add contact</button>
  </form>`;
}
