// The campaign editor's audience: one of the signed-in user's segments, or all
// of the campaign owner's live contacts (campaigns.segment_id NULL). Written
// through /rest/v1 after the campaign itself is saved by /api/campaigns.
import { html, supabase, q, allPages, useAsync, Field, fmtNum } from '../lib.js';

export function SegmentPicker({ value, onChange, owner }) {
  // a campaign may name only a segment of its own owner (migration 026)
  const state = useAsync(() => allPages((from, to) => supabase.from('audience_segments').select('id,name,estimated_size').eq('user_id', owner).order('name').order('id').range(from, to)), [owner]);
  const rows = state.data || [];
  return html`<${Field} label="Audience" id="c-segment" hint=${state.error ? `Segments could not be loaded: ${state.error.message}` : 'Who the campaign goes to. Consent and suppressions are checked when it sends.'}>
    <select id="c-segment" value=${value || ''} onChange=${(e) => onChange(e.target.value || null)}>
      <option value="">All live contacts</option>
      ${rows.map((s) => html`<option value=${s.id}>${s.name}${s.estimated_size === null ? '' : ` (${fmtNum(s.estimated_size)} contacts)`}</option>`)}
    </select></${Field}>`;
}

/** Sets the campaign's segment when it changed. */
export async function saveSegment(campaignId, before, after) {
  if ((before || null) === (after || null)) return;
  await q(supabase.from('campaigns').update({ segment_id: after || null }).eq('id', campaignId).select('id').single());
}

/** "Audience: <segment>" on a campaign's page. */
export function AudienceLine({ segmentId }) {
  const state = useAsync(() => (segmentId ? q(supabase.from('audience_segments').select('id,name,estimated_size').eq('id', segmentId).maybeSingle()) : Promise.resolve(null)), [segmentId]);
  if (!segmentId) return html`<p class="muted">Audience: all live contacts</p>`;
  const s = state.data;
  return html`<p class="muted">Audience: ${s ? html`<a href=${`#/segments/${s.id}`}>${s.name}</a>${s.estimated_size === null ? '' : ` (${fmtNum(s.estimated_size)} contacts when last counted)`}` : 'a segment'}</p>`;
}
