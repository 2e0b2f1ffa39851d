// The segment rules format (docs/segments.md) for the builder: which operators
// and values each field takes (the same table as migrations/030's
// segment__ops / segment__choices, which has the last word on save), and the
// builder's editable tree <-> the rules JSON stored in audience_segments.rules.

export const FIELDS = [
  ['email', 'E-mail'], ['phone', 'Phone'], ['first_name', 'First name'], ['last_name', 'Last name'],
  ['source', 'Source'], ['created_at', 'Added on'], ['consent.email', 'E-mail consent'], ['consent.sms', 'SMS consent'],
  ['attributes', 'Attribute'],
];

const TEXT_OPS = ['eq', 'neq', 'contains', 'starts_with', 'ends_with', 'in', 'is_null', 'not_null'];
const OPS = {
  text: TEXT_OPS,
  source: ['eq', 'neq', 'in'],
  time: ['gt', 'gte', 'lt', 'lte', 'within_days'],
  attr: ['eq', 'neq', 'contains', 'starts_with', 'ends_with', 'gt', 'gte', 'lt', 'lte', 'in', 'is_null', 'not_null', 'within_days'],
  email_consent: ['eq', 'neq', 'in'],
  sms_consent: ['eq', 'neq', 'in'],
};

export const CHOICES = {
  source: ['manual', 'import', 'api', 'web_form'],
  email_consent: ['subscribed', 'unsubscribed', 'none'],
  sms_consent: ['opted_in', 'opted_out', 'none'],
};

const LABELS = {
  eq: 'is', neq: 'is not', contains: 'contains', starts_with: 'starts with', ends_with: 'ends with',
  gt: 'greater than', gte: 'at least', lt: 'less than', lte: 'at most', in: 'is one of',
  is_null: 'is empty', not_null: 'is not empty', within_days: 'in the last … days',
};
const TIME_LABELS = { gt: 'after', gte: 'on or after', lt: 'before', lte: 'on or before' };

/** The kind of a builder field ('attributes' stands for attributes.<key>). */
export function kindOf(field) {
  if (['email', 'phone', 'first_name', 'last_name'].includes(field)) return 'text';
  if (field === 'source') return 'source';
  if (field === 'created_at') return 'time';
  if (field === 'consent.email') return 'email_consent';
  if (field === 'consent.sms') return 'sms_consent';
  return 'attr';
}

export const opsOf = (kind) => OPS[kind];

export function opLabel(kind, op) {
  if (kind === 'time' && TIME_LABELS[op]) return TIME_LABELS[op];
  if (kind === 'attr' && TIME_LABELS[op]) return `${LABELS[op]} / ${TIME_LABELS[op]}`;
  return LABELS[op];
}

let seq = 0;
export const newCond = () => ({ id: ++seq, field: 'email', key: '', op: 'eq', text: '', picked: [] });
export const newGroup = (mode = 'all') => ({ id: ++seq, mode, items: [] });

const NUMBER = /^-?\d+(\.\d+)?$/;

function condToRule(c) {
  const kind = kindOf(c.field);
  const rule = { field: kind === 'attr' ? `attributes.${c.key}` : c.field, op: c.op };
  if (c.op === 'is_null' || c.op === 'not_null') return rule;
  const text = c.text.trim();
  if (c.op === 'in') rule.value = CHOICES[kind] ? [...c.picked] : text.split(',').map((x) => x.trim()).filter(Boolean);
  else if (c.op === 'within_days') rule.value = text === '' ? null : Number(text);
  else if (kind === 'attr' && NUMBER.test(text)) rule.value = Number(text);
  else rule.value = CHOICES[kind] ? c.text : text;
  return rule;
}

/** The builder's tree → rules JSON. */
export function toRules(g) {
  return { [g.mode]: g.items.map((it) => (it.items ? toRules(it) : condToRule(it))) };
}

/** Rules JSON → the builder's tree (anything unreadable becomes an empty "all"). */
export function fromRules(r) {
  if (!r || typeof r !== 'object' || Array.isArray(r)) return newGroup();
  const mode = Array.isArray(r.any) ? 'any' : 'all';
  const g = newGroup(mode);
  for (const it of Array.isArray(r[mode]) ? r[mode] : []) {
    if (it && (Array.isArray(it.all) || Array.isArray(it.any))) { g.items.push(fromRules(it)); continue; }
    const c = newCond();
    const field = String(it?.field || 'email');
    if (field.startsWith('attributes.')) { c.field = 'attributes'; c.key = field.slice(11); } else c.field = field;
    c.op = String(it?.op || 'eq');
    const v = it?.value;
    if (Array.isArray(v)) { c.picked = v.map(String); c.text = v.join(', '); } else if (v !== undefined && v !== null) c.text = String(v);
    g.items.push(c);
  }
  return g;
}
