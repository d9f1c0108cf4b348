// kvctl status's table from a node's CLUSTER view (the command itself runs against real nodes in
// test/integration/kvctl.test.ts; a stalled disk needs powerlossfs, so that column is shown here).

import { describe, expect, it } from 'vitest';
import type { ClusterInfo } from '../../src/admin/index.ts';
import { statusTable } from '../../src/cli/status.ts';

const member = (name: string, extra: Partial<ClusterInfo['members'][number]> = {}) =>
  ({
    name,
    address: `10.0.0.${name.at(-1)}:7946`,
    state: 'up',
    share: 1 / 3,
    keys: 10,
    bytes: 2048,
    hintsHeldFor: 0,
    ...extra,
  }) as ClusterInfo['members'][number];

describe('kvctl status table', () => {
  it('says under its heading what the node refuses, why, and whether it is ready', () => {
    const view = (refusing: ClusterInfo['refusing']) =>
      ({
        node: 'kv0',
        status: 'active',
        ring: { moving: false, epoch: 3 },
        members: [member('kv0'), member('kv1')],
        refusing,
      }) as unknown as ClusterInfo;
    const reason = "clock: no peer has answered this node's probes since it started";
    const waiting = statusTable(view({ commands: 'writes', reason, ready: false })).split('\n');
    expect(waiting[1]).toBe(
      `this node refuses writes: ${reason}; not ready (/readyz 503): its clients go to other nodes`,
    );
    const alone = statusTable(view({ commands: 'all', reason: 'membership: twin', ready: true }));
    expect(alone.split('\n')[1]).toMatch(
      /^this node refuses every command: membership: twin; ready all the same \(\/readyz 200, degraded\)/,
    );
    expect(statusTable(view(null)).split('\n')[1]).toMatch(/^NAME /);
  });

  it('shows a member whose disk stalled as up but stalled, one refusing writes for its clock or storage as such, the others as up', () => {
    const view = {
      node: 'kv0',
      status: 'active',
      ring: { moving: false, epoch: 3 },
      members: [
        member('kv0'),
        member('kv1', { storageStalled: true }),
        member('kv2'),
        member('kv3', { clockRefusing: true }),
        member('kv4', { storageNotWritable: true }),
      ],
      notWritable: 'disk full (1 bytes free in /d, below --min-free-disk-bytes 2)',
    } as unknown as ClusterInfo;
    const lines = statusTable(view).trimEnd().split('\n');
    expect(lines[0]).toBe('as seen by kv0 (active); ring: settled (epoch 3)');
    expect(lines[1]).toBe(
      "this node's storage refuses writes: disk full (1 bytes free in /d, below --min-free-disk-bytes 2); it serves reads and coordinates writes, which the other replicas store, see docs/storage.md",
    );
    const state = (name: string) => {
      const row = lines.find((l) => l.startsWith(`${name} `))!;
      return row.split(/\s{2,}/)[2];
    };
    expect(['kv0', 'kv1', 'kv2', 'kv3', 'kv4'].map(state)).toEqual([
      'up',
      'up, disk stalled',
      'up',
      'up, refusing writes (clock)',
      'up, storage not writable',
    ]);
  });

  it('names a stream that waits for a member whose storage refuses writes, in its row and under the table', () => {
    const transfer = {
      kind: 'decommission' as const,
      ringId: 'r',
      scanned: 256,
      sent: 512,
      bytes: 9000,
      done: false,
      startedAt: '2026-12-06T00:00:00Z',
      percent: 42.5,
      etaSeconds: null,
      waitingFor: {
        kv0: 'not writable: disk full (1 bytes free in /d, below --min-free-disk-bytes 2)',
      },
    };
    const view = {
      node: 'kv1',
      status: 'active',
      ring: { moving: true, epoch: 3 },
      members: [member('kv0'), member('kv1'), member('kv2', { transfer })],
    } as unknown as ClusterInfo;
    const lines = statusTable(view).trimEnd().split('\n');
    expect(lines.find((l) => l.startsWith('kv2 '))).toMatch(/decommission 42.5%, waits for kv0$/);
    expect(lines.at(-1)).toBe(
      "kv2's decommission waits for kv0, which refuses writes (not writable: disk full (1 bytes free in /d, below --min-free-disk-bytes 2)): it takes no data until it stores again; free space there, the decommission then goes on by itself, see docs/cluster.md",
    );
  });
});
