// kvctl admin commands: they talk to the node's HTTP port (decommission) or print CLUSTER.

// auth.ts directly, not the replica index: that loads storage and lmdb, and kvctl is the image's
// healthcheck (a process every few seconds), as light as it can be.
import { adminHeaders } from '../auth/index.ts';
import type { CliOutput } from './commands.ts';

interface DecommissionState {
  status: 'active' | 'decommissioning' | 'decommissioned';
  transfer: { scanned: number; sent: number; done: boolean } | null;
  error?: string;
}

/** A node's HTTP port, and the cluster secret that proves admin calls (null: none set). */
export interface AdminTarget {
  readonly base: string;
  readonly secret: string | null;
}

async function call(
  target: AdminTarget,
  path: string,
  method: 'GET' | 'POST',
): Promise<{ status: number; body: DecommissionState }> {
  const headers = adminHeaders(target.secret, method, path);
  const res = await fetch(`${target.base}${path}`, { method, headers });
  const body = (await res.json()) as DecommissionState;
  if (res.status === 401)
    throw new Error(`${path}: ${body.error ?? 'unauthorized'}; set KVCTL_CLUSTER_SECRET`);
  return { status: res.status, body };
}

function line(s: DecommissionState): string {
  const t = s.transfer;
  return t
    ? `${s.status}: ${t.scanned} records read, ${t.sent} sent${t.done ? ', done' : ''}`
    : s.status;
}

/**
 * Starts a decommission (POST /admin/decommission). With `wait`, polls every `pollMs` printing
 * progress until the node reports `decommissioned`. Exit code 0 when started (or done), 1 when
 * the node refused.
 */
export async function decommission(
  target: AdminTarget,
  wait: boolean,
  out: CliOutput,
  pollMs = 500,
): Promise<number> {
  const started = await call(target, '/admin/decommission', 'POST');
  if (started.status !== 202) {
    out.stderr.write(`kvctl: decommission refused: ${started.body.error ?? started.status}\n`);
    return 1;
  }
  out.stdout.write(`${line(started.body)}\n`);
  let state = started.body;
  while (wait && state.status !== 'decommissioned') {
    await new Promise((r) => setTimeout(r, pollMs));
    state = (await call(target, '/admin/decommission', 'GET')).body;
    out.stdout.write(`${line(state)}\n`);
  }
  return 0;
}

interface ClusterState {
  node: string;
  status: string;
  ring: { moving: boolean };
  members: { name: string; share: number }[];
  transfer: { scanned: number; sent: number } | null;
}

/**
 * Takes a decommissioned (or decommissioning) node back (POST /admin/recommission). With `wait`,
 * polls GET /admin/cluster every `pollMs` until the ring settled with the node holding a share.
 * Exit code 0 when done (or started), 1 when the node refused.
 */
export async function recommission(
  target: AdminTarget,
  wait: boolean,
  out: CliOutput,
  pollMs = 500,
): Promise<number> {
  const started = await call(target, '/admin/recommission', 'POST');
  const body = started.body as DecommissionState & { dropped?: number };
  if (started.status !== 200) {
    out.stderr.write(`kvctl: recommission refused: ${body.error ?? started.status}\n`);
    return 1;
  }
  out.stdout.write(`${body.status}: ${body.dropped ?? 0} stale records dropped, rejoining\n`);
  while (wait) {
    const c = (await call(target, '/admin/cluster', 'GET')).body as unknown as ClusterState;
    const share = c.members.find((m) => m.name === c.node)?.share ?? 0;
    const done = !c.ring.moving && share > 0;
    out.stdout.write(
      `${c.status}: ring ${c.ring.moving ? 'moving' : 'settled'}, share ${share}${done ? ', done' : ''}\n`,
    );
    if (done) break;
    await new Promise((r) => setTimeout(r, pollMs));
  }
  return 0;
}

/** Prints GET /admin/decommission. */
export async function decommissionStatus(target: AdminTarget, out: CliOutput): Promise<number> {
  out.stdout.write(`${line((await call(target, '/admin/decommission', 'GET')).body)}\n`);
  return 0;
}

/** Pretty-prints the JSON line CLUSTER answers. */
export function printCluster(json: string, out: CliOutput): number {
  out.stdout.write(`${JSON.stringify(JSON.parse(json), null, 2)}\n`);
  return 0;
}
