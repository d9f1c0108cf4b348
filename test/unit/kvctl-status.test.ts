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
  it('shows a member whose disk stalled as up but stalled, the others as up', () => {
    const view = {
      node: 'kv0',
      status: 'active',
      ring: { moving: false, epoch: 3 },
      members: [member('kv0'), member('kv1', { storageStalled: true }), member('kv2')],
    } as unknown as ClusterInfo;
    const lines = statusTable(view).trimEnd().split('\n');
    expect(lines[0]).toBe('as seen by kv0 (active); ring: settled (epoch 3)');
    const state = (name: string) => {
      const row = lines.find((l) => l.startsWith(`${name} `))!;
      return row.split(/\s{2,}/)[2];
    };
    expect([state('kv0'), state('kv1'), state('kv2')]).toEqual(['up', 'up, disk stalled', 'up']);
  });
});
