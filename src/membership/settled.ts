// Settled-ring records: parsing what a node saved, and the order that says which of two is newer.

import type { SettledRing } from '../replica/index.ts';

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
  return settledRing(r.epoch, r.members as string[], incarnations);
}

/** A settled ring record: members sorted and unique, incarnations only of members. */
export function settledRing(
  epoch: number,
  members: readonly string[],
  incarnations: Readonly<Record<string, string>>,
): SettledRing {
  const names = [...new Set(members)].sort();
  const kept: Record<string, string> = {};
  for (const n of names) {
    const id = incarnations[n];
    if (id !== undefined) kept[n] = id;
  }
  return { epoch, members: names, incarnations: kept };
}

/**
 * Whether `a` is newer than `b`: a higher epoch. At the same epoch with other members (two nodes
 * settled different rings at the same moment, or a cluster's nodes started with different
 * member lists) the ring with more members, then the greater member list in code-unit order:
 * every node picks the same one, so they converge. Same epoch and members: not newer.
 */
export function newerSettled(a: SettledRing, b: SettledRing): boolean {
  if (a.epoch !== b.epoch) return a.epoch > b.epoch;
  if (a.members.length !== b.members.length) return a.members.length > b.members.length;
  const x = JSON.stringify(a.members);
  const y = JSON.stringify(b.members);
  return x > y;
}

/** Whether two records name the same members (whatever their epochs). */
export function sameMembers(a: SettledRing, b: SettledRing): boolean {
  return JSON.stringify(a.members) === JSON.stringify(b.members);
}

function isName(x: unknown): x is string {
  return typeof x === 'string' && x.length > 0;
}
