// kvctl admin commands: they talk to the node's HTTP port (decommission, recommission).

// Loaded only for these commands (cli/main.ts): the admin schema brings zod, and kvctl is the
// image's healthcheck (a process every few seconds), as light as it can be.
import type * as z from 'zod';
import {
  ADMIN_PATHS,
  type AdminTarget,
  adminCall,
  adminErrorOf,
  clusterInfoSchema,
  type DecommissionState,
  decommissionStateSchema,
  recommissionResultSchema,
} from '../admin/index.ts';
import type { CliOutput } from './commands.ts';
import { bar, transferLine } from './progress.ts';

export type { AdminTarget };

const PATH = ADMIN_PATHS.decommission;

/** One admin call; a 401 throws, saying to set the secret. */
export async function checked(target: AdminTarget, method: 'GET' | 'POST', path: string) {
  const answer = await adminCall(target, method, path);
  if (answer.status === 401) {
    throw new Error(
      `${path}: ${adminErrorOf(answer.body) ?? 'unauthorized'}; set KVCTL_CLUSTER_SECRET`,
    );
  }
  return answer;
}

/** `body` as `schema` describes it; throws when the node answered something else. */
export function parse<T>(schema: z.ZodType<T>, path: string, body: unknown): T {
  const r = schema.safeParse(body);
  if (!r.success) throw new Error(`${path}: malformed answer`);
  return r.data;
}

function line(s: DecommissionState): string {
  return s.transfer ? `${s.status}: ${transferLine(s.transfer)}` : s.status;
}

/** On a terminal, one line redrawn with a bar; piped, one plain line per poll. */
function show(s: DecommissionState, out: CliOutput, last: boolean): void {
  const tty = (out.stdout as { isTTY?: boolean }).isTTY === true;
  if (!tty) {
    out.stdout.write(`${line(s)}\n`);
    return;
  }
  const percent = s.transfer?.percent;
  const b = percent === undefined ? '' : `${bar(percent)} `;
  out.stdout.write(`\r\x1b[K${b}${line(s)}${last ? '\n' : ''}`);
}

/** GET /admin/decommission; throws when the node answers anything but its state. */
async function state(target: AdminTarget): Promise<DecommissionState> {
  const r = await checked(target, 'GET', PATH);
  if (r.status !== 200)
    throw new Error(`${PATH}: ${adminErrorOf(r.body) ?? `answered ${r.status}`}`);
  return parse(decommissionStateSchema, PATH, r.body);
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
  const started = await checked(target, 'POST', PATH);
  if (started.status !== 202) {
    out.stderr.write(
      `kvctl: decommission refused: ${adminErrorOf(started.body) ?? started.status}\n`,
    );
    return 1;
  }
  let s = parse(decommissionStateSchema, PATH, started.body);
  show(s, out, !wait || s.status === 'decommissioned');
  while (wait && s.status !== 'decommissioned') {
    await new Promise((r) => setTimeout(r, pollMs));
    s = await state(target);
    show(s, out, s.status === 'decommissioned');
  }
  return 0;
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
  const started = await checked(target, 'POST', ADMIN_PATHS.recommission);
  if (started.status !== 200) {
    out.stderr.write(
      `kvctl: recommission refused: ${adminErrorOf(started.body) ?? started.status}\n`,
    );
    return 1;
  }
  const r = parse(recommissionResultSchema, ADMIN_PATHS.recommission, started.body);
  out.stdout.write(`${r.status}: ${r.dropped} stale records dropped, rejoining\n`);
  while (wait) {
    const answer = await checked(target, 'GET', ADMIN_PATHS.cluster);
    const c = parse(clusterInfoSchema, ADMIN_PATHS.cluster, answer.body);
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
  out.stdout.write(`${line(await state(target))}\n`);
  return 0;
}
