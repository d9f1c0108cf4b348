// The chaos summary's count of refusals (UNAVAILABLE) by the rule that refused.

import { describe, expect, it } from 'vitest';
import type { Op } from '../chaos/history.ts';
import { refusalReason, refusalReasons } from '../chaos/report.ts';

function refused(id: number, detail?: string): Op {
  return {
    id,
    client: 'c0',
    node: 'kv0',
    type: 'get',
    key: 'k0',
    inv: id,
    cmp: id + 1,
    outcome: 'error',
    error: 'UNAVAILABLE',
    ...(detail === undefined ? {} : { detail }),
  };
}

describe('chaos report: refusals by reason', () => {
  it('names a refusal by its rule, without the names and numbers of the moment', () => {
    expect(refusalReason('replication: write quorum 1/2 (kv1: peer_unavailable)')).toBe(
      'write quorum N/N',
    );
    expect(
      refusalReason(
        "replication: read refused: 2 of the key's 3 settled owners are recorded lost (a new data directory), so the 1 left cannot vouch",
      ),
    ).toBe('read refused: settled owners lost');
    expect(
      refusalReason(
        "replication: no member of this node's settled ring (epoch 4) has answered or probed it for 812 ms: it answers no read",
      ),
    ).toBe("no member of this node's settled ring");
    expect(refusalReason('replica: this node is starting')).toBe('this node is starting');
    expect(refusalReason('')).toBe('unknown');
  });

  it('counts the UNAVAILABLE answers of a history by reason, most first, and nothing else', () => {
    const ops = [
      refused(1, 'replication: read quorum 0/2 (kv1: peer_timeout, kv2: peer_unavailable)'),
      refused(2, 'replication: read quorum 1/2 (kv2: unavailable)'),
      refused(3, 'replica: this node is starting'),
      refused(4),
      { ...refused(5, 'clock: this node is off'), error: 'CLOCK_OFFSET' },
    ];
    expect(refusalReasons(ops)).toBe('read quorum N/N 2, this node is starting 1, unknown 1');
    expect(refusalReasons([])).toBe('');
  });
});
