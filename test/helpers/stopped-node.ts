// Tests of what a node does in one event-loop turn: stop it, let work reach it, count at its INFO.

import type { ClusterNode } from './cluster.ts';
import { defer } from './defer.ts';
import type { RawResp } from './resp-tools.ts';

/** Stops `node` (SIGSTOP) until the test goes on with SIGCONT, or ends. Returns its pid. */
export function stop(node: ClusterNode): number {
  const pid = node.proc.child.pid!;
  process.kill(pid, 'SIGSTOP');
  defer(() => {
    if (node.proc.child.exitCode === null) process.kill(pid, 'SIGCONT');
  });
  return pid;
}

/**
 * Sends `INFO stats` on `client` and resolves with the number INFO's `field` had as the node ran
 * it (NaN when INFO has no such field).
 */
export async function infoStat(client: RawResp, field: string, ms = 60_000): Promise<number> {
  client.data = Buffer.alloc(0);
  client.socket.write('*2\r\n$4\r\nINFO\r\n$5\r\nstats\r\n');
  const whole = () => {
    const head = /^\$(\d+)\r\n/.exec(client.data.toString('latin1'));
    return head !== null && client.data.length >= head[0].length + Number(head[1]) + 2;
  };
  await client.until(whole, ms);
  const m = new RegExp(`${field}:(\\d+)`).exec(client.data.toString('latin1'));
  return Number(m?.[1] ?? Number.NaN);
}
