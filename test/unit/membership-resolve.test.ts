// Re-reading the member source: an answer older than one already taken is never applied (a slow
// DNS resolve finishing after a later one brought back a member that had left).

import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { type MemberAddress, Membership, type PeerSource } from '../../src/membership/index.ts';
import type { HelloReply } from '../../src/replica/index.ts';
import { defer } from '../helpers/defer.ts';
import { captureLog } from '../helpers/log-capture.ts';

const member = (name: string, i: number): MemberAddress => ({
  name,
  host: `127.0.0.${i}`,
  peerPort: 7946,
});

const self = member('n0', 1);
const three = [self, member('n1', 2), member('n2', 3)];

/** A source whose every resolve() waits until the test answers it (in any order). */
function heldSource() {
  const held: PromiseWithResolvers<MemberAddress[]>[] = [];
  const source: PeerSource = {
    description: 'held',
    resolve: () => {
      const answer = Promise.withResolvers<MemberAddress[]>();
      held.push(answer);
      return answer.promise;
    },
  };
  return { source, held };
}

/** Membership of n0 over `source`, with a log of every message it wrote. */
function membershipOf(source: PeerSource) {
  const { logger, lines: logged } = captureLog();
  const membership = new Membership({
    self,
    source,
    probe: (m) => Promise.resolve({ name: m.name } as HelloReply),
    selfHello: () => ({ name: 'n0' }) as HelloReply,
    resolveIntervalMs: 60_000,
    probeIntervalMs: 60_000,
    probeFailures: 3,
    logger,
    registry: new Registry(),
  });
  defer(() => membership.stop());
  const said = (msg: string) => logged.filter((l) => JSON.parse(l).msg === msg).length;
  return { membership, said };
}

/**
 * n0's Membership after a first resolve answered `three`, with two more resolves out at once
 * (held[1] started first, held[2] second), both unanswered.
 */
async function twoResolvesOut() {
  const { source, held } = heldSource();
  const { membership, said } = membershipOf(source);
  const first = membership.resolveNow();
  held[0]!.resolve(three);
  await first;
  const older = membership.resolveNow();
  const newer = membership.resolveNow();
  return { membership, said, held, older, newer };
}

describe('Membership re-reading its source', () => {
  it('keeps a newer answer when an older resolve answers after it', async () => {
    // Two resolves out at once (a slow DNS server, a resolve interval shorter than its answers):
    // the one started first answers last, with the list from before n2 left.
    const { membership, said, held, older, newer } = await twoResolvesOut();
    held[2]!.resolve([self, member('n1', 2)]);
    await newer;
    expect(membership.names()).toEqual(['n0', 'n1']);
    held[1]!.resolve(three);
    await older;
    expect(membership.names()).toEqual(['n0', 'n1']);
    expect(said('member joined')).toBe(2); // n1 and n2 at the first answer, n2 not again
    expect(said('member left')).toBe(1);
  });

  it('does not take an older answer with members for the records coming back', async () => {
    const { membership, said, held, older, newer } = await twoResolvesOut();
    held[2]!.resolve([]); // the records are gone
    await newer;
    held[1]!.resolve(three); // asked before they went
    await older;
    const next = membership.resolveNow();
    held[3]!.resolve([]);
    await next;
    expect(said('member source lists members again')).toBe(0);
    expect(
      said(
        'member source lists no members, not even this node: keeping the last list until it lists some',
      ),
    ).toBe(1);
    expect(membership.names()).toEqual(['n0', 'n1', 'n2']);
  });
});
