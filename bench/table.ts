// Markdown tables (readable as plain text) and the number formats the reports share.

/** A Markdown table with padded columns; every column but the first aligns right. */
export function markdownTable(rows: string[][], leftColumns = 1): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  const pad = (c: string, i: number) =>
    i < leftColumns ? c.padEnd(widths[i]!) : c.padStart(widths[i]!);
  const line = (r: string[]) => `| ${r.map(pad).join(' | ')} |`;
  const rule = `|${widths.map((w, i) => `${'-'.repeat(w + 1)}${i < leftColumns ? '-' : ':'}`).join('|')}|`;
  return [line(rows[0]!), rule, ...rows.slice(1).map(line)].join('\n');
}

/** A count with thousands separators. */
export const num = (n: number) => Math.round(n).toLocaleString('en-US');
/** Microseconds: whole above 100, one decimal below. */
export const us = (n: number) => (n >= 100 ? n.toFixed(0) : n.toFixed(1));
/** Milliseconds with about three significant digits. */
export const ms = (n: number) => n.toFixed(n >= 100 ? 0 : n >= 10 ? 1 : n >= 1 ? 2 : 3);
/** a/b as `0.85x`, or n/a. */
export const ratio = (a: number, b: number) =>
  b > 0 && Number.isFinite(a) ? `${(a / b).toFixed(2)}x` : 'n/a';
/** Bytes in MiB. */
export const mib = (n: number) => `${(n / 2 ** 20).toFixed(0)} MiB`;
