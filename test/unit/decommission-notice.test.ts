// A decommissioned member tells the others in parallel, within a bound, and tries again a member
// it could not reach (a connection in its backoff) until then.

import { describe, expect, it } from 'vitest';
import { KvError } from '../../src/errors/index.ts';
import {
  type MemberView,
  readDecommissionedNotice,
  tellDecommissioned,
} from '../../src/membership/index.ts';
import { captureLog } from '../helpers/log-capture.ts';

const member = (name: string, self = false) =>
  ({
    name,
    self,
    host: name,
    peerPort: 7946,
    state: 'up',
    hello: null,
    lastContact: null,
  }) as MemberView;
const unavailable = () =>
  new KvError('KV_ERR_PEER_UNAVAILABLE', 'peer: unreachable, retrying after backoff');

describe('tellDecommissioned', () => {
  it('tells every other member, tries an unreachable one again, and gives up on the rest at the bound', async () => {
    const log = captureLog();
    const sent: string[] = [];
    let backoff = 3;
    await tellDecommissioned({
      members: [member('n0', true), member('n1'), member('n2'), member('n3'), member('n4')],
      send: async (m) => {
        sent.push(m.name);
        if (m.name === 'n2' && backoff-- > 0) throw unavailable(); // back after three tries
        if (m.name === 'n3')
          throw new KvError(
            'KV_ERR_UNKNOWN_COMMAND',
            "replica: unknown peer method 'decommissioned'",
          );
        if (m.name === 'n4') return new Promise(() => {}); // never answers
        return { s: 'decommissioned' };
      },
      why: 'stopping',
      // Three retries 10 ms apart in a bound of 2 s: room for a loaded machine's late timers
      // (with the default 100 ms in 1 s, n2's fourth try missed the bound at load 50).
      waitMs: 2000,
      retryMs: 10,
      logger: log.logger,
    });
    expect(sent.filter((n) => n === 'n2')).toHaveLength(4);
    expect(sent.filter((n) => n === 'n3')).toHaveLength(1); // an older version: not again
    expect(sent).not.toContain('n0');
    const [told] = log
      .records()
      .filter((r) => r.msg === 'told the members this node is decommissioned');
    expect(told).toMatchObject({
      why: 'stopping',
      members: 4,
      acknowledged: 2,
      unacknowledged: ['n3', 'n4'],
      failed: { n3: "replica: unknown peer method 'decommissioned'" },
    });
    expect(told!.ms).toBeGreaterThanOrEqual(2000);
  });

  it('stops trying a member that stays unreachable at the bound', async () => {
    const log = captureLog();
    let tries = 0;
    await tellDecommissioned({
      members: [member('n0', true), member('n1')],
      send: async () => {
        tries++;
        throw unavailable();
      },
      why: 'stopping',
      waitMs: 500,
      logger: log.logger,
    });
    const after = tries;
    await new Promise((r) => setTimeout(r, 300));
    expect(tries).toBe(after);
    expect(tries).toBeGreaterThan(1);
    expect(
      log.records().find((r) => r.msg === 'told the members this node is decommissioned'),
    ).toMatchObject({
      acknowledged: 0,
      unacknowledged: ['n1'],
    });
  });
});

describe('readDecommissionedNotice', () => {
  it('reads a node name, and refuses anything else', () => {
    expect(readDecommissionedNotice({ n: 'kvstore-2' })).toBe('kvstore-2');
    for (const body of [null, {}, { n: '' }, { n: 'a b' }, { n: 7 }, { n: 'x'.repeat(1000) }]) {
      expect(() => readDecommissionedNotice(body)).toThrow(/malformed decommissioned notice/);
    }
  });
});
