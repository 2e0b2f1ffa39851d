// Overview: KPIs for a period and time series from /api/analytics, reloaded
// live when analytics rows or campaigns change (realtime postgres_changes).
import { useState } from 'preact/hooks';
import { html, api, useAsync, useRealtime, Status, fmtNum, today, timeZone } from '../lib.js';
import { TimeChart } from '../chart.js';

export const KPIS = [
  ['sent', 'Sent'], ['delivered', 'Delivered'], ['opened', 'Opened'], ['clicked', 'Clicked'],
  ['bounced', 'Bounced'], ['unsubscribed', 'Unsubscribed'], ['cost', 'Cost'],
];
const PERIODS = [['7', 'Last 7 days', 'day'], ['30', 'Last 30 days', 'day'], ['90', 'Last 90 days', 'week'], ['365', 'Last 12 months', 'month']];

export function Overview() {
  const [period, setPeriod] = useState('30');
  const [metric, setMetric] = useState('');
  const [live, setLive] = useState(0);
  const p = PERIODS.find((x) => x[0] === period);
  const from = today(-(Number(period) - 1));
  const to = today();
  const state = useAsync(() => api(`/api/analytics?from=${from}&to=${to}&interval=${p[2]}`).then((r) => r.data), [from, to, p[2], live]);
  const campaigns = useAsync(() => api('/api/campaigns?per_page=1&status=sending').then((r) => r.total), [live]);
  useRealtime('overview', ['analytics_data', 'campaigns'], () => setLive((n) => n + 1));

  const d = state.data;
  const names = d ? Object.keys(d.series) : [];
  const shown = metric && names.includes(metric) ? [metric] : names.slice(0, 6);
  const labels = d && shown.length ? d.series[shown[0]].map((x) => x.period) : [];
  const series = d ? shown.map((n) => ({ name: n, values: d.series[n].map((x) => Number(x.sum)) })) : [];

  return html`<section aria-labelledby="ov-title">
    <div class="page-head">
      <h1 id="ov-title">Overview</h1>
      <div class="tools">
        <label for="ov-period" class="sr-only">Period</label>
        <select id="ov-period" value=${period} onChange=${(e) => setPeriod(e.target.value)}>
          ${PERIODS.map(([v, l]) => html`<option value=${v}>${l}</option>`)}
        </select>
      </div>
    </div>
    <p class="muted">${from} – ${to} · ${timeZone()} · updates live${campaigns.data ? html` · <a href="#/campaigns">${campaigns.data} sending now</a>` : null}</p>
    <${Status} state=${state}>
      <div class="kpis" data-testid="kpis">
        ${KPIS.map(([k, label]) => html`<div class="kpi" data-kpi=${k}>
          <span class="kpi-label">${label}</span>
          <span class="kpi-value">${d && d.totals[k] ? (k === 'cost' ? `$${fmtNum(d.totals[k].sum, 2)}` : fmtNum(d.totals[k].sum)) : '0'}</span>
        </div>`)}
      </div>
      <div class="card">
        <div class="page-head small">
          <h2>Trend</h2>
          ${names.length ? html`<div class="tools"><label for="ov-metric">Metric</label>
            <select id="ov-metric" value=${metric} onChange=${(e) => setMetric(e.target.value)}>
              <option value="">All (first 6)</option>
              ${names.map((n) => html`<option value=${n}>${n}</option>`)}
            </select></div>` : null}
        </div>
        ${names.length ? html`<${TimeChart} labels=${labels} series=${series} title="Metrics over time" />`
                       : html`<p class="state empty">No analytics recorded in this period yet. Metrics appear here as campaigns send and imports run.</p>`}
      </div>
      ${names.length ? html`<div class="card"><h2>All metrics</h2><div class="table-wrap"><table>
        <thead><tr><th scope="col">Metric</th><th scope="col" class="num">Sum</th><th scope="col" class="num">Rows</th><th scope="col" class="num">Average</th></tr></thead>
        <tbody>${names.map((n) => html`<tr><td>${n}</td><td class="num">${fmtNum(d.totals[n].sum, 2)}</td><td class="num">${fmtNum(d.totals[n].count)}</td><td class="num">${fmtNum(d.totals[n].avg, 2)}</td></tr>`)}</tbody>
      </table></div></div>` : null}
    </${Status}>
  </section>`;
}
