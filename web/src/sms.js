import { html } from './lib.js';

// SMS length and segments as carriers count them: GSM 03.38 (7-bit) when every
// character is in the GSM alphabet (extension characters count twice),
// otherwise UCS-2 (UTF-16 code units). One segment holds 160 / 70 units; a
// concatenated message carries 153 / 67 per segment (the rest is the UDH).
const GSM_BASIC = '@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !"#¤%&\'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà';
const GSM_EXT = '\f^{}\\[~]|€';

export function smsInfo(text) {
  let gsm = true;
  let units = 0;
  for (const ch of text) {
    if (GSM_BASIC.includes(ch)) units += 1;
    else if (GSM_EXT.includes(ch)) units += 2;
    else { gsm = false; break; }
  }
  if (!gsm) units = text.length; // UTF-16 code units
  const single = gsm ? 160 : 70;
  const multi = gsm ? 153 : 67;
  const segments = units === 0 ? 0 : units <= single ? 1 : Math.ceil(units / multi);
  const per = segments > 1 ? multi : single;
  return { encoding: gsm ? 'GSM-7' : 'UCS-2', units, segments, remaining: segments === 0 ? single : segments * per - units };
}

// A placeholder as the send engine reads it (docs/sending.md, "Templates"):
// {{first_name}}, {{contact.first_name}}, {{contact.attributes.company}},
// each optionally with a default: {{first_name | "there"}}.
const PLACEHOLDER = /\{\{\s*(?:contact\.)?(attributes\.)?([A-Za-z_][A-Za-z0-9_-]*)\s*(?:\|\s*"((?:[^"\\]|\\.)*)"\s*)?\}\}/g;

/** The {{variable}} names in a text, in order of first appearance. */
export function variablesOf(text) {
  const out = [];
  for (const m of String(text || '').matchAll(PLACEHOLDER))
    if (!out.includes(m[2])) out.push(m[2]);
  return out;
}

/** Fills {{variables}} from a contact (its columns, then its attributes),
 * using a placeholder's default when the value is missing or empty. */
export function fillTemplate(text, contact) {
  return String(text || '').replace(PLACEHOLDER, (all, attr, name, dflt) => {
    if (!contact) return all;
    const v = attr ? contact.attributes?.[name] : contact[name] ?? contact.attributes?.[name];
    if (v === null || v === undefined || v === '') return dflt === undefined ? '' : dflt.replace(/\\(["\\])/g, '$1');
    return String(v);
  });
}

/** The SMS counter line: characters, segments, encoding, room left. */
export function SmsCounter({ text, id }) {
  const sms = smsInfo(text || '');
  return html`<p id=${id} class="counter" aria-live="polite" data-testid="sms-counter">${sms.units} characters · ${sms.segments} segment${sms.segments === 1 ? '' : 's'} · ${sms.encoding} · ${sms.remaining} left in this segment</p>`;
}
