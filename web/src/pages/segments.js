// Segments: the list, and the editor with a visual rule builder (nestable
// groups of conditions; field, operator and value pickers valid per field)
// and a live size from the preview_segment rpc (the signed-in user's own live
// contacts). Rows are read and written through /rest/v1; the database checks
// the rules on save (docs/segments.md) and its message, e.g.
// "rules.all[2].value: must be a non-empty string", is shown as it is.
import { useState, useEffect, useRef } from 'preact/hooks';
import { html, supabase, q, pageRange, PER_PAGE, useAsync, Status, ErrorBox, Field, Pager, fmtTime, fmtNum, useFlash, canWrite, usePageClamp } from '../lib.js';
import { FIELDS, CHOICES, kindOf, opsOf, opLabel, newCond, newGroup, toRules, fromRules } from '../rules.js';

export function Segments({ role }) {
  const [page, setPage] = useState(1);
  const state = useAsync(() => q(pageRange(supabase.from('audience_segments').select('id,name,description,estimated_size,last_calculated_at,updated_at', { count: 'exact' })
    .order('updated_at', { ascending: false }).order('id'), page)), [page]);
  const rows = state.data?.data || [];
  usePageClamp(state, page, setPage);
  return html`<section aria-labelledby="sg-title">
    <div class="page-head"><h1 id="sg-title">Segments</h1>${canWrite(role) ? html`<a class="button" href="#/segments/new">New segment</a>` : null}</div>
    <${Status} state=${state} empty=${!rows.length} emptyText="No segments yet. Create one to send a campaign to part of your contacts.">
      <div class="table-wrap"><table class="list">
        <thead><tr><th scope="col">Name</th><th scope="col">Description</th><th scope="col" class="num">Contacts</th><th scope="col">Counted</th><th scope="col">Updated</th></tr></thead>
        <tbody>${rows.map((s) => html`<tr>
          <td><a href=${`#/segments/${s.id}`}>${s.name}</a></td><td>${s.description || '—'}</td>
          <td class="num">${s.estimated_size === null ? '—' : fmtNum(s.estimated_size)}</td><td>${fmtTime(s.last_calculated_at)}</td><td>${fmtTime(s.updated_at)}</td></tr>`)}
        </tbody></table></div>
      <${Pager} page=${page} perPage=${PER_PAGE} total=${state.data?.count} onPage=${setPage} />
    </${Status}>
  </section>`;
}

export function SegmentPage({ params, role, session }) {
  const isNew = params.id === 'new';
  const state = useAsync(() => (isNew ? Promise.resolve({ rules: { all: [] } })
    : q(supabase.from('audience_segments').select('*').eq('id', params.id).single())), [params.id]);
  // keyed by the loaded row: the editor's state starts from the row it shows
  return html`<section aria-labelledby="se-title"><p><a href="#/segments">← Segments</a></p>
    <${Status} state=${state}>${state.data ? html`<${SegmentEditor} key=${state.data.id || 'new'} s=${state.data} isNew=${isNew} role=${role} session=${session} />` : null}</${Status}>
  </section>`;
}

function SegmentEditor({ s, isNew, role, session }) {
  const [name, setName] = useState(s.name || '');
  const [description, setDescription] = useState(s.description || '');
  const root = useRef(null);
  if (!root.current) root.current = fromRules(s.rules);
  const [, setVersion] = useState(0);
  const changed = () => setVersion((n) => n + 1);
  const [size, setSize] = useState({ n: s.estimated_size, at: s.last_calculated_at });
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const [flash, show] = useFlash();
  const rules = toRules(root.current);
  const writable = canWrite(role);
  // sizes count the owner's contacts, and only the owner may count (an admin
  // editing another user's segment sees no size rather than a wrong one)
  const own = isNew || s.user_id === session.user.id;

  const count = async (id) => {
    const n = await q(supabase.rpc('calculate_segment_size', { p_segment_id: id }));
    setSize({ n, at: new Date().toISOString() });
    return n;
  };
  const save = async (e) => {
    e.preventDefault();
    setBusy(true); setError(null);
    const row = { name: name.trim(), description: description.trim() || null, rules };
    try {
      if (isNew) {
        const created = await q(supabase.from('audience_segments').insert(row).select('id').single());
        await count(created.id);
        window.location.hash = `#/segments/${created.id}`;
      } else {
        await q(supabase.from('audience_segments').update(row).eq('id', s.id).select('id').single());
        if (own) {
          const n = await count(s.id);
          show(`Saved: ${fmtNum(n)} contact${n === 1 ? '' : 's'} now.`);
        } else { setSize({ n: null, at: null }); show('Saved. Its owner sees its size.'); }
      }
    } catch (err) { setError(err); }
    setBusy(false);
  };
  const remove = async () => {
    if (!window.confirm('Delete this segment? (A segment that a campaign targets cannot be deleted: pick another audience for the campaign first.)')) return;
    try { await q(supabase.from('audience_segments').delete().eq('id', s.id)); window.location.hash = '#/segments'; } catch (err) { setError(err); }
  };

  return html`<h1 id="se-title">${isNew ? 'New segment' : s.name}</h1>
    <div class="split">
      <form class="card editor" onSubmit=${save} aria-label="Segment">
        <${Field} label="Name" id="sg-name"><input id="sg-name" required maxlength="255" value=${name} onInput=${(e) => setName(e.target.value)} disabled=${!writable} /></${Field}>
        <${Field} label="Description" id="sg-desc"><input id="sg-desc" value=${description} onInput=${(e) => setDescription(e.target.value)} disabled=${!writable} /></${Field}>
        <${Group} g=${root.current} depth=${0} changed=${changed} />
        <${ErrorBox} error=${error} />${flash}
        ${writable ? html`<div class="actions">
          <button type="submit" disabled=${busy}>${isNew ? 'Create segment' : 'Save segment'}</button>
          ${isNew ? null : html`<button type="button" class="link danger" onClick=${remove}>Delete segment</button>`}</div>` : null}
      </form>
      ${own ? html`<${Preview} rules=${rules} saved=${size} />`
            : html`<aside class="card preview"><h2>Size</h2><p class="muted">This segment belongs to another user: its size counts their contacts, and only they can count it.</p></aside>`}
    </div>`;
}

/** A group: "all" or "any" of its items (conditions and nested groups). */
function Group({ g, depth, changed, onRemove }) {
  const id = `g${g.id}`;
  return html`<fieldset class="rule-group">
    <legend>${depth === 0 ? 'Contacts who match' : 'Group'}</legend>
    <div class="row">
      <${Field} label="Match" id=${`${id}-mode`}><select id=${`${id}-mode`} value=${g.mode} onChange=${(e) => { g.mode = e.target.value; changed(); }}>
        <option value="all">all of these</option><option value="any">any of these</option></select></${Field}>
      ${onRemove ? html`<button type="button" class="link danger" onClick=${onRemove}>Remove group</button>` : null}
    </div>
    ${g.items.length ? null : html`<p class="muted">${g.mode === 'all' ? 'No conditions yet: every live contact matches.' : 'No conditions yet: no contact matches.'}</p>`}
    <ol class="rules">${g.items.map((it, i) => {
      const drop = () => { g.items.splice(i, 1); changed(); };
      return html`<li key=${it.id}>${it.items ? html`<${Group} g=${it} depth=${depth + 1} changed=${changed} onRemove=${drop} />`
                                               : html`<${Condition} c=${it} changed=${changed} onRemove=${drop} />`}</li>`;
    })}</ol>
    <div class="actions">
      <button type="button" class="secondary" onClick=${() => { g.items.push(newCond()); changed(); }}>Add condition</button>
      ${depth < 4 ? html`<button type="button" class="secondary" onClick=${() => { g.items.push(newGroup()); changed(); }}>Add group</button>` : null}
    </div>
  </fieldset>`;
}

/** One condition: field (and attribute name), operator, value. */
function Condition({ c, changed, onRemove }) {
  const id = `c${c.id}`;
  const kind = kindOf(c.field);
  const ops = opsOf(kind);
  const setField = (f) => {
    c.field = f;
    if (!opsOf(kindOf(f)).includes(c.op)) c.op = opsOf(kindOf(f))[0];
    c.text = CHOICES[kindOf(f)] ? CHOICES[kindOf(f)][0] : '';
    c.picked = [];
    changed();
  };
  return html`<div class="rule-cond" role="group" aria-label="Condition">
    <${Field} label="Field" id=${`${id}-field`}><select id=${`${id}-field`} value=${c.field} onChange=${(e) => setField(e.target.value)}>
      ${FIELDS.map(([v, l]) => html`<option value=${v}>${l}</option>`)}</select></${Field}>
    ${kind === 'attr' ? html`<${Field} label="Attribute name" id=${`${id}-key`}><input id=${`${id}-key`} required maxlength="100" placeholder="e.g. company" value=${c.key}
      onInput=${(e) => { c.key = e.target.value; changed(); }} /></${Field}>` : null}
    <${Field} label="Operator" id=${`${id}-op`}><select id=${`${id}-op`} value=${c.op} onChange=${(e) => { c.op = e.target.value; changed(); }}>
      ${ops.map((o) => html`<option value=${o}>${opLabel(kind, o)}</option>`)}</select></${Field}>
    <${Value} c=${c} kind=${kind} id=${id} changed=${changed} />
    <button type="button" class="link danger" onClick=${onRemove} aria-label="Remove condition">Remove</button>
  </div>`;
}

function Value({ c, kind, id, changed }) {
  const set = (e) => { c.text = e.target.value; changed(); };
  const vid = `${id}-value`;
  if (c.op === 'is_null' || c.op === 'not_null') return null;
  if (c.op === 'within_days') {
    return html`<${Field} label="Days" id=${vid}><input id=${vid} type="number" min="0" max="36500" step="1" required value=${c.text} onInput=${set} /></${Field}>`;
  }
  const choices = CHOICES[kind];
  if (choices && c.op === 'in') {
    const toggle = (v) => { c.picked = c.picked.includes(v) ? c.picked.filter((x) => x !== v) : [...c.picked, v]; changed(); };
    return html`<fieldset class="choices"><legend>Values</legend>${choices.map((v) => html`<label class="check">
      <input type="checkbox" checked=${c.picked.includes(v)} onChange=${() => toggle(v)} /> ${v.replace('_', ' ')}</label>`)}</fieldset>`;
  }
  if (choices) {
    return html`<${Field} label="Value" id=${vid}><select id=${vid} value=${c.text} onChange=${set}>
      ${choices.map((v) => html`<option value=${v}>${v.replace('_', ' ')}</option>`)}</select></${Field}>`;
  }
  if (kind === 'time') {
    return html`<${Field} label="Date" id=${vid} hint="Midnight in the app's time zone"><input id=${vid} type="date" required value=${c.text} onInput=${set} /></${Field}>`;
  }
  if (c.op === 'in') {
    return html`<${Field} label="Values" id=${vid} hint="Separated by commas"><input id=${vid} required value=${c.text} onInput=${set} /></${Field}>`;
  }
  const hint = kind === 'attr' && ['gt', 'gte', 'lt', 'lte'].includes(c.op) ? 'A number, or a date as 2026-01-31' : null;
  return html`<${Field} label="Value" id=${vid} hint=${hint}><input id=${vid} required value=${c.text} onInput=${set} /></${Field}>`;
}

/** The live size of the rules being edited (debounced), and a sample. */
function Preview({ rules, saved }) {
  const key = JSON.stringify(rules);
  const [st, setSt] = useState({ loading: true });
  useEffect(() => {
    let live = true;
    setSt((x) => ({ ...x, loading: true }));
    const t = setTimeout(() => {
      q(supabase.rpc('preview_segment', { p_rules: rules })).then(
        (data) => { if (live) setSt({ data }); },
        (error) => { if (live) setSt({ error }); });
    }, 300);
    return () => { live = false; clearTimeout(t); };
  }, [key]);
  const n = st.data?.count;
  return html`<aside class="card preview" aria-labelledby="sg-size">
    <h2 id="sg-size">Live size</h2>
    <p role="status" aria-live="polite">${st.error ? null : n === undefined ? html`<span class="spinner" aria-hidden="true"></span> Counting…`
      : html`<strong class="kpi-value" data-segment-count=${n}>${fmtNum(n)}</strong> contact${n === 1 ? '' : 's'} match${n === 1 ? 'es' : ''}${st.loading ? ' (updating…)' : ''}`}</p>
    ${st.error ? html`<${ErrorBox} error=${{ message: st.error.message, advice: 'Fix this condition to see the size.' }} />` : null}
    ${st.data?.sample?.length ? html`<ul class="sample" aria-label="Sample of matching contacts">${st.data.sample.map((x) => html`<li>
      ${[x.first_name, x.last_name].filter(Boolean).join(' ') || '—'} <span class="muted">${x.email || x.phone || ''}</span></li>`)}</ul>` : null}
    <p class="muted">Saved size: ${saved.n === null || saved.n === undefined ? 'not counted yet' : `${fmtNum(saved.n)} (${fmtTime(saved.at)})`}</p>
  </aside>`;
}
