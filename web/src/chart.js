// A time-series chart on uPlot (small, canvas-based, no network access).
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import { html } from './lib.js';

const COLORS = ['#2563eb', '#16a34a', '#d97706', '#dc2626', '#7c3aed', '#0891b2', '#db2777', '#4b5563'];

/** labels: ['2026-11-01', ...]; series: [{ name, values: [...] }]. */
export function TimeChart({ labels, series, title, height = 260 }) {
  const box = useRef(null);
  useEffect(() => {
    const el = box.current;
    if (!el || !labels.length) return undefined;
    const xs = labels.map((d) => Date.parse(`${d}T12:00:00Z`) / 1000);
    const opts = {
      width: Math.max(280, el.clientWidth),
      height,
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), 'UTC'),
      scales: { x: { time: true } },
      legend: { live: false },
      axes: [{ stroke: '#64748b', grid: { stroke: '#eef2f7' } }, { stroke: '#64748b', grid: { stroke: '#eef2f7' }, size: 56 }],
      series: [{}, ...series.map((s, i) => ({ label: s.name, stroke: COLORS[i % COLORS.length], width: 2, points: { size: 5 } }))],
    };
    const plot = new uPlot(opts, [xs, ...series.map((s) => s.values)], el);
    const ro = new ResizeObserver(() => plot.setSize({ width: Math.max(280, el.clientWidth), height }));
    ro.observe(el);
    return () => { ro.disconnect(); plot.destroy(); };
  }, [JSON.stringify(labels), JSON.stringify(series), height]);
  const summary = series.map((s) => `${s.name}: ${s.values.reduce((a, b) => a + (b || 0), 0)}`).join(', ');
  return html`<figure class="chart">
    <div ref=${box} role="img" aria-label=${`${title || 'Chart'} — totals ${summary}`}></div>
    ${!labels.length ? html`<p class="state empty">No data for this period.</p>` : null}
  </figure>`;
}
