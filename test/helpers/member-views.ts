// Members as Membership shows them (MemberView), for tests of the rings built on what they report.

import type { MemberView, Topology } from '../../src/membership/index.ts';
import type { HelloReply, SettledRing } from '../../src/replica/index.ts';

export interface ViewOptions {
  self?: boolean;
  state?: MemberView['state'];
  incarnation?: string;
  status?: HelloReply['status'];
  settled?: SettledRing;
  ringId?: string;
  rebalanced?: string | null;
  hints?: number;
  /** No hello yet (listed, never answered). */
  silent?: boolean;
}

/** A member as Membership shows it; by default up, active, reporting `t`'s rings. */
export function view(name: string, t: Topology, o: ViewOptions = {}): MemberView {
  const hello: HelloReply = {
    name,
    incarnation: o.incarnation ?? `inc-${name}`,
    status: o.status ?? 'active',
    ringId: o.ringId ?? t.target.id,
    rebalanced: o.rebalanced === undefined ? null : o.rebalanced,
    settled: o.settled ?? t.settledRing,
    hints: o.hints ?? 0,
  };
  return {
    name,
    host: '127.0.0.1',
    peerPort: 7946,
    lastContact: null,
    self: o.self ?? false,
    state: o.state ?? 'up',
    hello: o.silent ? null : hello,
  };
}

/** Every name up and reporting the transfer `t` is at as finished. */
export function allDone(t: Topology, names: string[], self = names[0]): MemberView[] {
  return names.map((n) => view(n, t, { self: n === self, rebalanced: t.transferId }));
}

/** The incarnations view() reports for `names`. */
export const incs = (names: string[]) => Object.fromEntries(names.map((n) => [n, `inc-${n}`]));
