// How kvctl shows a transfer: counts, percentage, rate and time left; a bar on a terminal.

import type { TransferView } from '../admin/index.ts';

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

/** `1.5 KiB`, `12 B`. */
export function formatBytes(n: number): string {
  let v = n;
  let u = 0;
  while (v >= 1024 && u < UNITS.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v} B` : `${v.toFixed(1)} ${UNITS[u]}`;
}

/** `45s`, `3m05s`, `2h07m`. */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  const pad = (n: number) => String(n).padStart(2, '0');
  if (s < 3600) return `${Math.floor(s / 60)}m${pad(s % 60)}s`;
  return `${Math.floor(s / 3600)}h${pad(Math.floor((s % 3600) / 60))}m`;
}

/** `512/1000 records (51.2%), 40.0 KiB sent, 900 records/s, ETA 1s`; `..., done` at the end. */
export function transferLine(t: TransferView): string {
  if (t.total === undefined) {
    return `${t.scanned} records read, ${t.sent} sent${t.done ? ', done' : ''}`;
  }
  const parts = [`${t.scanned}/${t.total} records (${t.percent ?? 0}%)`];
  parts.push(t.bytes === undefined ? `${t.sent} sent` : `${formatBytes(t.bytes)} sent`);
  if (t.done) return `${parts.join(', ')}, done`;
  if (t.rate !== undefined) parts.push(`${t.rate} records/s`);
  parts.push(
    t.etaSeconds === null || t.etaSeconds === undefined
      ? 'ETA unknown'
      : `ETA ${formatDuration(t.etaSeconds)}`,
  );
  return parts.join(', ');
}

/** `[###########.........]` for a percentage. */
export function bar(percent: number, width = 24): string {
  const full = Math.max(0, Math.min(width, Math.round((percent / 100) * width)));
  return `[${'#'.repeat(full)}${'.'.repeat(width - full)}]`;
}
