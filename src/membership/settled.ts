// Settled-ring records: parsing what a node saved, and the order that says which of two is newer.

import type { HelloReply, SettledRing } from '../replica/index.ts';
import type { MemberView } from './manager.ts';

/**
 * A saved settled ring: the current shape, or the member list older versions saved (epoch 0,
 * no incarnations). null when absent or malformed (the node then starts as a new one would).
 */
export function parseSettled(saved: unknown): SettledRing | null {
  if (Array.isArray(saved)) {
    const members = saved.filter(isName);
    return members.length > 0 ? settledRing(0, members, {}) : null;
  }
  if (saved === null || typeof saved !== 'object') return null;
  const r = saved as Partial<Record<keyof SettledRing, unknown>>;
  if (typeof r.epoch !== 'number' || !Number.isSafeInteger(r.epoch) || r.epoch < 0) return null;
  if (!Array.isArray(r.members) || !r.members.every(isName)) return null;
  const inc = r.incarnations;
  if (inc === null || typeof inc !== 'object' || Array.isArray(inc)) return null;
  const incarnations: Record<string, string> = {};
  for (const [name, id] of Object.entries(inc)) if (typeof id === 'string') incarnations[name] = id;
  if (r.lost !== undefined && (!Array.isArray(r.lost) || !r.lost.every(isName))) return null;
  const handedOff: Record<string, string> = {};
  const off = r.handedOff;
  if (off !== null && typeof off === 'object' && !Array.isArray(off)) {
    for (const [name, ring] of Object.entries(off)) if (isName(ring)) handedOff[name] = ring;
  }
  const lost = (r.lost ?? []) as string[];
  const back = Array.isArray(r.takenBack) ? r.takenBack.filter(isName) : [];
  return settledRing(r.epoch, r.members as string[], incarnations, lost, handedOff, back);
}

/**
 * ReplicaHandlerOptions.lostAt of the member `self` whose settled ring is `record`: its epoch
 * while it records `self` lost, else null. Also null while `self` is decommissioned and the
 * record keeps its hand-off (SettledRing.handedOff: recorded for it, from the directory the ring
 * recorded): that directory holds all it held, and its reads are the handler's handedOff to
 * refuse. A member lost before its hand-off (a new directory, then back on its old one) is not
 * exempt: its directory lacks the writes taken on the other one.
 */
export function lostAt(record: SettledRing, self: string, decommissioned: boolean): number | null {
  if (!record.lost.includes(self)) return null;
  const off = record.handedOff;
  if (decommissioned && off !== undefined && own(off, self) !== undefined) return null;
  return record.epoch;
}

/**
 * A settled ring record: members sorted and unique; lost ones sorted, only members; incarnations
 * only of members not lost; hand-offs (`handedOff`) only of lost members not taken back; taken
 * back ones (`takenBack`) only of lost members; each of the last two fields left out when it is
 * empty (the record then reads as older versions made it).
 */
export function settledRing(
  epoch: number,
  members: readonly string[],
  incarnations: Readonly<Record<string, string>>,
  lost: readonly string[] = [],
  handedOff: Readonly<Record<string, string>> = {},
  takenBack: readonly string[] = [],
): SettledRing {
  const names = [...new Set(members)].sort();
  const gone = names.filter((n) => lost.includes(n));
  const back = gone.filter((n) => takenBack.includes(n));
  const kept: Record<string, string> = {};
  const off: Record<string, string> = {};
  for (const n of names) {
    const id = own(incarnations, n);
    if (id !== undefined && !gone.includes(n)) kept[n] = id;
    const ring = own(handedOff, n);
    if (ring !== undefined && gone.includes(n) && !back.includes(n)) off[n] = ring;
  }
  const record: SettledRing = { epoch, members: names, incarnations: kept, lost: gone };
  return {
    ...record,
    ...(Object.keys(off).length === 0 ? {} : { handedOff: off }),
    ...(back.length === 0 ? {} : { takenBack: back }),
  };
}

/**
 * `record` with other hand-offs and take-backs (settledRing's last two arguments; a take-back
 * keeps the name's hand-off out).
 */
export function withHandOffs(
  record: SettledRing,
  handedOff: Readonly<Record<string, string>> | undefined,
  takenBack: readonly string[] | undefined,
  epoch = record.epoch,
): SettledRing {
  const { members, incarnations, lost } = record;
  return settledRing(epoch, members, incarnations, lost, handedOff, takenBack);
}

/** Whether two records keep the same hand-offs and take-backs. */
export function sameHandOffs(a: SettledRing, b: SettledRing): boolean {
  const off = (r: SettledRing) => JSON.stringify(Object.entries(r.handedOff ?? {}).sort());
  const back = (r: SettledRing) => JSON.stringify(r.takenBack ?? []);
  return off(a) === off(b) && back(a) === back(b);
}

/**
 * Whether `a` is newer than `b`: a higher epoch. At the same epoch with other members (two nodes
 * settled different rings at the same moment, or a cluster's nodes started with different
 * member lists) the ring with more members, then the greater member list in code-unit order:
 * every node picks the same one, so they converge; with the same members, the one with more lost
 * members. The same record: not newer.
 */
export function newerSettled(a: SettledRing, b: SettledRing): boolean {
  if (a.epoch !== b.epoch) return a.epoch > b.epoch;
  if (a.members.length !== b.members.length) return a.members.length > b.members.length;
  const x = JSON.stringify(a.members);
  const y = JSON.stringify(b.members);
  if (x !== y) return x > y;
  // Same members, other members lost: the one with more lost holds less, so trusts less.
  if (a.lost.length !== b.lost.length) return a.lost.length > b.lost.length;
  return JSON.stringify(a.lost) > JSON.stringify(b.lost);
}

/**
 * `record[name]` when it is the record's own property: member names are the user's (a node may
 * be called `constructor` or `toString`), and a plain object inherits Object.prototype's.
 */
export function own<T>(record: Readonly<Record<string, T>>, name: string): T | undefined {
  return Object.hasOwn(record, name) ? record[name] : undefined;
}

/** Whether two sorted member lists are the same. */
export function sameNames(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((n, i) => n === b[i]);
}

/**
 * The newest non-empty settled ring another member reports, and who reported it; only one newer
 * than `floor` when given. null when there is none.
 */
export function newestReported(
  members: readonly MemberView[],
  floor: SettledRing | null = null,
): { from: string; ring: SettledRing } | null {
  let best: { from: string; ring: SettledRing } | null = null;
  for (const m of members) {
    const r = m.self ? undefined : m.hello?.settled;
    if (!r || r.members.length === 0) continue;
    const bar = best?.ring ?? floor;
    if (bar === null || newerSettled(r, bar)) best = { from: m.name, ring: r };
  }
  return best;
}

function isName(x: unknown): x is string {
  return typeof x === 'string' && x.length > 0;
}

/**
 * Whether `record` counts `name` as holding data, or about to (Membership keeps such a member
 * while the source stops listing it): a member of the settled ring not recorded lost, or one
 * recorded lost whose last hello (`last`) said it was active with itself lost in its own settled
 * ring: it knew its directory was new and ran on, so it is back under its name after a lost
 * volume and being refilled, a holder again once the ring settles (a later record, another
 * member's hand-off, changes nothing about that). A member recorded lost for its hand-off says
 * `decommissioned`; one whose last hello came before its loss or hand-off counts as the record
 * says.
 */
export function holdsDataIn(
  record: SettledRing,
  name: string,
  last?: { readonly status: string; readonly settled: SettledRing },
): boolean {
  if (!record.members.includes(name)) return false;
  if (!record.lost.includes(name)) return true;
  return last !== undefined && last.status === 'active' && last.settled.lost.includes(name);
}

/**
 * Whether `hello`, the member `name`'s, says it runs again under its name after its loss or
 * hand-off: routing (a ring), not decommissioned, and not holding data in its own settled ring
 * (back on a new directory, or recommissioned).
 */
export function runsAgainAfterLoss(name: string, hello: HelloReply): boolean {
  return (
    hello.status !== 'decommissioned' && hello.ringId !== '' && !holdsDataIn(hello.settled, name)
  );
}

/** Whether two records are the same but for their hand-offs. */
export function sameRecord(a: SettledRing, b: SettledRing): boolean {
  if (a.epoch !== b.epoch || !sameNames(a.members, b.members) || !sameNames(a.lost, b.lost)) {
    return false;
  }
  const names = Object.keys(a.incarnations);
  if (names.length !== Object.keys(b.incarnations).length) return false;
  return names.every((n) => own(b.incarnations, n) === a.incarnations[n]);
}
