// kvctl status: the members as one node sees them, as a table like `nodetool status`.

import {
  ADMIN_PATHS,
  adminErrorOf,
  type ClusterInfo,
  clusterInfoSchema,
  type TransferView,
} from '../admin/index.ts';
import { type AdminTarget, checked, parse } from './admin.ts';
import type { CliOutput } from './commands.ts';
import { formatBytes, formatDuration } from './progress.ts';

const COLUMNS = ['NAME', 'ADDRESS', 'STATE', 'PHASE', 'KEYS', 'BYTES', 'OWNS', 'HINTS', 'TRANSFER'];

function transferCell(t: TransferView | null | undefined): string {
  if (!t || t.done || t.percent === undefined) return '-';
  const eta = typeof t.etaSeconds === 'number' ? ` ETA ${formatDuration(t.etaSeconds)}` : '';
  const waits = Object.keys(t.waitingFor ?? {});
  return `${t.kind} ${t.percent}%${eta}${waits.length > 0 ? `, waits for ${waits.join(',')}` : ''}`;
}

/**
 * One line per member whose stream waits for members that refuse writes (StreamProgress's
 * waitingFor): who waits for whom, why, and what to do.
 */
function waitLines(view: ClusterInfo): string[] {
  const lines: string[] = [];
  for (const m of view.members) {
    const t = m.transfer;
    if (!t || t.done) continue;
    for (const [member, reason] of Object.entries(t.waitingFor ?? {})) {
      lines.push(
        `${m.name}'s ${t.kind} waits for ${member}, which refuses writes (${reason}): it takes no data until it stores again; free space there, the ${t.kind} then goes on by itself, see docs/cluster.md`,
      );
    }
  }
  return lines;
}

/**
 * A member's state, and what it said it refuses: a stalled disk (up and a member, but down for
 * data: docs/storage.md), writes for its clock (docs/observability.md, Readiness), replicas of
 * writes for its storage (a full disk: docs/storage.md).
 */
function stateCell(m: ClusterInfo['members'][number]): string {
  const notes = [
    m.storageStalled === true ? 'disk stalled' : null,
    m.clockRefusing === true ? 'refusing writes (clock)' : null,
    m.storageNotWritable === true ? 'storage not writable' : null,
  ];
  return [m.state, ...notes.filter((n) => n !== null)].join(', ');
}

/** The table (with a heading line), one row per member, columns padded to line up. */
export function statusTable(view: ClusterInfo): string {
  const ring = view.ring.moving
    ? 'ring: data moving'
    : `ring: settled${view.ring.epoch === undefined ? '' : ` (epoch ${view.ring.epoch})`}`;
  const rows = view.members.map((m) => [
    m.name,
    m.address,
    stateCell(m),
    m.phase ?? '-',
    m.keys === null || m.keys === undefined ? '?' : String(m.keys),
    m.bytes === null || m.bytes === undefined ? '?' : formatBytes(m.bytes),
    `${(m.share * 100).toFixed(1)}%`,
    String(m.hintsHeldFor ?? 0),
    transferCell(m.transfer),
  ]);
  const widths = COLUMNS.map((c, i) => Math.max(c.length, ...rows.map((r) => r[i]!.length)));
  const fmt = (r: readonly string[]) =>
    r
      .map((cell, i) => cell.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  const lines = [
    `as seen by ${view.node} (${view.status}); ${ring}`,
    fmt(COLUMNS),
    ...rows.map(fmt),
  ];
  const refusing = [refusingLine(view), notWritableLine(view)].filter((l) => l !== null);
  lines.splice(1, 0, ...refusing);
  lines.push(...waitLines(view));
  const differ = memberListsDiffer(view);
  if (differ !== null) lines.push(differ);
  const listed = [...(view.decommissionedListed ?? [])].sort();
  if (listed.length > 0) {
    lines.push(
      `decommissioned members still listed: ${listed.join(', ')} handed their data off: take them out of every member's --peers (a rolling restart), or delete their pods; until then the cluster is never at rest, see docs/cluster.md`,
    );
  }
  return lines.join('\n').concat('\n');
}

/** What the node refuses of its clients' commands and why (CLUSTER's `refusing`), or null. */
function refusingLine(view: ClusterInfo): string | null {
  const r = view.refusing;
  if (!r) return null;
  const what = r.commands === 'all' ? 'every command' : 'writes';
  const ready = r.ready
    ? 'ready all the same (/readyz 200, degraded): no other member answers that could take its clients'
    : 'not ready (/readyz 503): its clients go to other nodes';
  return `this node refuses ${what}: ${r.reason}; ${ready}`;
}

/** Why this node's storage refuses writes (CLUSTER's `notWritable`), or null. */
function notWritableLine(view: ClusterInfo): string | null {
  if (!view.notWritable) return null;
  return `this node's storage refuses writes: ${view.notWritable}; it serves reads and coordinates writes, which the other replicas store, see docs/storage.md`;
}

/**
 * The members that have listed other members than this node for longer than a join takes
 * (CLUSTER's memberListsDiffer, docs/cluster.md), as one line; null when none.
 */
export function memberListsDiffer(view: ClusterInfo): string | null {
  const differ = Object.entries(view.memberListsDiffer ?? {}).sort(([a], [b]) =>
    a < b ? -1 : a > b ? 1 : 0,
  );
  if (differ.length === 0) return null;
  const lists = differ.map(([name, listed]) => `${name} lists ${listed.join(',')}`).join('; ');
  return `member lists differ: ${lists}; this node lists ${view.members.map((m) => m.name).join(',')}: give every member the same --peers (or --discovery name), see docs/cluster.md`;
}

/**
 * Prints the table (or, with `json`, the node's view as one JSON line). With `watch`, again every
 * `intervalMs` until interrupted: a terminal is cleared before each table; piped output gets one
 * table (or JSON line) after another. A node that stops answering is reported and asked again.
 * A watch ends (0) once its output is gone: the reader of a pipe left (`| head`).
 */
export async function status(
  target: AdminTarget,
  opts: { readonly watch: boolean; readonly json: boolean; readonly intervalMs?: number },
  out: CliOutput,
): Promise<number> {
  const tty = (out.stdout as { isTTY?: boolean }).isTTY === true;
  // Set when a write fails (EPIPE: the reader left); process.stdout is never destroyed for it.
  let gone = false;
  for (let first = true; ; first = false) {
    if (!first) await new Promise((r) => setTimeout(r, opts.intervalMs ?? 2000));
    if (gone) return 0;
    let text: string;
    try {
      const { status: code, body } = await checked(target, 'GET', ADMIN_PATHS.cluster);
      // A node that is starting says what it waits for (503 with an AdminError).
      if (code !== 200)
        throw new Error(`${ADMIN_PATHS.cluster}: ${adminErrorOf(body) ?? `answered ${code}`}`);
      text = opts.json
        ? `${JSON.stringify(body)}\n`
        : statusTable(parse(clusterInfoSchema, ADMIN_PATHS.cluster, body));
    } catch (err) {
      if (!opts.watch) throw err;
      text = `kvctl: ${target.base} does not answer: ${err instanceof Error ? err.message : String(err)}\n`;
    }
    if (!opts.watch) {
      out.stdout.write(text);
      return 0;
    }
    const stamp = opts.json ? '' : `${new Date().toISOString()}\n`;
    out.stdout.write(
      tty && !opts.json
        ? `\x1b[H\x1b[2J${stamp}${text}`
        : `${stamp}${text}${opts.json ? '' : '\n'}`,
      (err) => {
        if (err) gone = true;
      },
    );
  }
}
