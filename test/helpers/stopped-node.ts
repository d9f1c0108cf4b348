// Tests of what a node does in one event-loop turn: stop it, let work reach it, count at its INFO.

import { type ClusterNode, metric } from './cluster.ts';
import { defer } from './defer.ts';
import type { RawResp } from './resp-tools.ts';
import { until } from './write-log.ts';

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

/** Each of `peers`' peer requests received so far: the baseline of resumeUntilAnswered. */
export function peerRequestsReceived(peers: readonly ClusterNode[]): Promise<number[]> {
  return Promise.all(peers.map((p) => metric(p, 'kvstore_peer_requests_received_total')));
}

/**
 * Lets the stopped `peers` go on (SIGCONT) and resolves once they received `count` peer requests
 * more than `before` (peerRequestsReceived) and are handling none: every answer is sent, to a
 * coordinator that may itself be stopped.
 */
export async function resumeUntilAnswered(
  peers: readonly ClusterNode[],
  before: readonly number[],
  count: number,
  ms: number,
): Promise<void> {
  for (const peer of peers) process.kill(peer.proc.child.pid!, 'SIGCONT');
  await until(
    async () => {
      const now = await peerRequestsReceived(peers);
      const handling = await Promise.all(
        peers.map((p) => metric(p, 'kvstore_peer_requests_in_flight{side="server"}')),
      );
      const got = now.reduce((a, n, i) => a + n - before[i]!, 0);
      return got >= count && handling.every((h) => h === 0);
    },
    ms,
    'the peers to answer the stopped coordinator',
  );
}
