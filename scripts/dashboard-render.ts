// Renders monitoring/grafana-dashboard.json for real, without Grafana: a 3-node cluster on
// loopback serves traffic (a node down and back, hints, a decommission), Debian's Prometheus scrapes it
// with monitoring/prometheus.yml, every panel's PromQL is asked over the last minutes
// (query_range, as Grafana would with `$instance` = All), and the panels are drawn at their
// gridPos as SVG and photographed by Debian's chromium (playwright-core).
//
//   node scripts/dashboard-render.ts [out.png]       (default docs/grafana-dashboard.png)
//
// It fails when a panel query returns no data. Every process and directory it makes is removed.

import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { chromium } from 'playwright-core';
import { connect, peersOf, restart, startStaticCluster } from '../test/helpers/cluster.ts';
import { cleanup } from '../test/helpers/node-process.ts';
import { concrete, startPrometheus } from '../test/helpers/prometheus.ts';

const ROOT = resolve(import.meta.dirname, '..');
if (process.argv.includes('--help') || process.argv.includes('-h')) {
  process.stdout.write(
    'Usage: node scripts/dashboard-render.ts [out.png] (default docs/grafana-dashboard.png)\n',
  );
  process.exit(0);
}
const out = resolve(process.argv[2] ?? `${ROOT}/docs/grafana-dashboard.png`);

interface Panel {
  type: string;
  title: string;
  gridPos: { x: number; y: number; w: number; h: number };
  fieldConfig?: { defaults?: { unit?: string } };
  targets: { expr: string; legendFormat?: string }[];
}
const dashboard = JSON.parse(readFileSync(`${ROOT}/monitoring/grafana-dashboard.json`, 'utf8')) as {
  title: string;
  panels: Panel[];
};

interface Series {
  name: string;
  points: [number, number][];
}

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const COLORS = [
  '#73bf69',
  '#f2cc0c',
  '#8ab8ff',
  '#ff780a',
  '#f2495c',
  '#5794f2',
  '#b877d9',
  '#fade2a',
  '#37872d',
  '#c4162a',
];

function legend(format: string | undefined, metric: Record<string, string>): string {
  if (!format) return JSON.stringify(metric);
  return format.replace(/\{\{\s*(\w+)\s*\}\}/g, (_, k: string) => metric[k] ?? '');
}

async function queryRange(api: string, expr: string, start: number, end: number) {
  const q = new URLSearchParams({
    query: concrete(expr, '10s'),
    start: String(start),
    end: String(end),
    step: '2',
  });
  const body = (await (await fetch(`${api}/api/v1/query_range?${q}`)).json()) as {
    status: string;
    error?: string;
    data: { result: { metric: Record<string, string>; values: [number, string][] }[] };
  };
  if (body.status !== 'success') throw new Error(`${expr}: ${body.error}`);
  return body.data.result;
}

function fmt(v: number, unit: string | undefined): string {
  const n = Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 1 ? v.toFixed(1) : v.toPrecision(2);
  if (unit === 's') return v < 1 ? `${(v * 1000).toPrecision(3)} ms` : `${v.toFixed(2)} s`;
  if (unit === 'reqps') return `${n} req/s`;
  return n;
}

function timeseries(series: Series[], w: number, h: number, unit: string | undefined): string {
  const pad = { l: 64, r: 8, t: 8, b: 20 };
  const all = series.flatMap((s) => s.points);
  if (all.length === 0)
    return `<svg width="${w}" height="${h}"><text x="${w / 2}" y="${h / 2}" text-anchor="middle">every series 0</text></svg>`;
  const t0 = Math.min(...all.map((p) => p[0]));
  const t1 = Math.max(...all.map((p) => p[0]));
  const max = Math.max(1e-9, ...all.map((p) => p[1]));
  const x = (t: number) => pad.l + ((t - t0) / Math.max(1, t1 - t0)) * (w - pad.l - pad.r);
  const y = (v: number) => h - pad.b - (v / max) * (h - pad.t - pad.b);
  const lines = series.map((s, i) => {
    const pts = s.points.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(' ');
    return `<polyline points="${pts}" fill="none" stroke="${COLORS[i % COLORS.length]}" stroke-width="1.5"/>`;
  });
  const grid = [0, 0.5, 1].map((f) => {
    const v = max * f;
    return `<line x1="${pad.l}" x2="${w - pad.r}" y1="${y(v)}" y2="${y(v)}" stroke="#2c3235"/><text x="${pad.l - 4}" y="${y(v) + 4}" text-anchor="end">${esc(fmt(v, unit))}</text>`;
  });
  const time = (t: number) => new Date(t * 1000).toISOString().slice(11, 19);
  const axis = `<text x="${pad.l}" y="${h - 4}">${time(t0)}</text><text x="${w - pad.r}" y="${h - 4}" text-anchor="end">${time(t1)}</text>`;
  return `<svg width="${w}" height="${h}">${grid.join('')}${lines.join('')}${axis}</svg>`;
}

async function main(): Promise<void> {
  const args = ['--rebalance-rate-bytes', '40000'];
  const nodes = await startStaticCluster(3, args);
  const prom = await startPrometheus(nodes.map((n) => `${n.host}:${n.proc.httpPort}`));
  const started = Date.now() / 1000;
  try {
    const c = await connect(nodes[0]!);
    const second = await connect(nodes[1]!);
    const until = Date.now() + 60_000;
    let i = 0;
    let paused = false;
    let decommissioned = false;
    let back = false;
    while (Date.now() < until) {
      const left = until - Date.now();
      // kvstore-2 down for a while: writes for it become hints, delivered when it is back.
      if (!paused && left < 45_000) {
        await nodes[2]!.proc.stop('SIGKILL');
        paused = true;
      }
      if (paused && !back && left < 35_000) {
        await restart(nodes[2]!, ['--peers', peersOf(nodes), ...args]);
        back = true;
      }
      // Then kvstore-1 hands its data off: the rebalance panel moves.
      if (!decommissioned && left < 20_000) {
        await fetch(`http://${nodes[1]!.host}:${nodes[1]!.proc.httpPort}/admin/decommission`, {
          method: 'POST',
        });
        decommissioned = true;
      }
      const lines = Array.from({ length: 50 }, (_, j) => {
        const k = `user:${(i * 50 + j) % 3000}`;
        return j % 5 === 0
          ? `GET ${k}`
          : j % 17 === 0
            ? `REMOVE ${k}`
            : `PUT ${k} profile-${i}-${j}`;
      });
      c.send(`${lines.join('\n')}\nFROB\n`);
      await c.lines(lines.length + 1);
      if (i % 4 === 0) await second.call('GET user:1').catch(() => '');
      i++;
      await new Promise((r) => setTimeout(r, 100));
    }
    c.close();
    second.close();
    await new Promise((r) => setTimeout(r, 3000));
    const end = Date.now() / 1000;
    const cell = 52;
    const html: string[] = [];
    for (const p of dashboard.panels) {
      const w = p.gridPos.w * cell;
      const h = p.gridPos.h * 30;
      const series: Series[] = [];
      for (const t of p.targets) {
        const result = await queryRange(prom.api, t.expr, started, end);
        if (result.length === 0) throw new Error(`panel "${p.title}": no data for ${t.expr}`);
        // NaN (a quantile of no requests) is a gap, as Grafana draws it.
        for (const r of result)
          series.push({
            name: legend(t.legendFormat, r.metric),
            points: r.values
              .map(([ts, v]): [number, number] => [ts, Number(v)])
              .filter(([, v]) => Number.isFinite(v)),
          });
      }
      const unit = p.fieldConfig?.defaults?.unit;
      // Series that stayed at zero (commands not sent, error codes not seen) are left out of the
      // picture and counted in the legend.
      const shown = series.filter((s) => s.points.some(([, v]) => v !== 0));
      const hidden = series.length - shown.length;
      const body =
        p.type === 'stat'
          ? `<div class="stat">${esc(
              fmt(
                series.reduce((n, s) => n + (s.points.at(-1)?.[1] ?? 0), 0),
                unit,
              ),
            )}</div>`
          : `${timeseries(shown, w - 16, h - 70, unit)}<ul>${shown.map((s, k) => `<li><i style="background:${COLORS[k % COLORS.length]}"></i>${esc(s.name)}</li>`).join('')}${hidden ? `<li>(${hidden} series at 0 not drawn)</li>` : ''}</ul>`;
      html.push(
        `<section style="left:${p.gridPos.x * cell}px;top:${p.gridPos.y * 30}px;width:${w - 8}px;height:${h - 8}px"><h2>${esc(p.title)}</h2>${body}</section>`,
      );
    }
    const height = Math.max(...dashboard.panels.map((p) => (p.gridPos.y + p.gridPos.h) * 30)) + 40;
    const page = `<!doctype html><html><head><style>
body{margin:0;background:#111217;color:#ccccdc;font:12px sans-serif}
header{padding:8px 12px;font-size:16px}
main{position:relative;margin:0 8px;height:${height}px}
section{position:absolute;background:#181b1f;border:1px solid #2c3235;border-radius:2px;padding:4px 8px;overflow:hidden}
h2{font-size:13px;margin:2px 0 4px;font-weight:500}
.stat{font-size:40px;color:#73bf69;text-align:center;margin-top:14px}
svg text{fill:#8e8e8e;font-size:10px}
ul{list-style:none;margin:2px 0;padding:0;display:flex;flex-wrap:wrap;gap:2px 10px;font-size:11px}
li i{display:inline-block;width:12px;height:3px;margin:0 4px 3px 0}
</style></head><body><header>${esc(dashboard.title)} — every panel's PromQL from a real Prometheus scraping a 3-node kvstore cluster (rendered by scripts/dashboard-render.ts, not Grafana)</header><main>${html.join('')}</main></body></html>`;
    const browser = await chromium.launch({
      executablePath: '/usr/bin/chromium',
      args: ['--no-sandbox'],
    });
    try {
      const tab = await browser.newPage({
        viewport: { width: 24 * cell + 16, height: height + 40 },
      });
      await tab.setContent(page);
      await tab.screenshot({ path: out, fullPage: true });
    } finally {
      await browser.close();
    }
    process.stdout.write(
      `wrote ${out} (${dashboard.panels.length} panels, every query returned data)\n`,
    );
  } finally {
    await prom.stop();
  }
}

try {
  await main();
} finally {
  await cleanup();
}
