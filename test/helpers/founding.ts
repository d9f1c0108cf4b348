// Set-ups of the tests of a member that starts with no saved ring while it cannot hear its peers.

import { expect } from 'vitest';
import {
  type ClusterNode,
  loopbackBlock,
  openClient,
  startDnsMember,
  waitFormed,
} from './cluster.ts';
import type { TestDnsServer } from './dns-server.ts';

/** Three settled members found through `service`, and the keys written through the first. */
export interface Trio {
  readonly nodes: [ClusterNode, ClusterNode, ClusterNode];
  readonly names: string[];
  readonly hosts: string[];
  /** `k0..k19`, each written as `v-<key>`. */
  readonly keys: string[];
}

/**
 * Members kvstore-0..2 on a new loopback block, listed by A records of `service` (and named by
 * PTR records when `ptr`), started with `extra` flags, settled, with 20 keys written through
 * kvstore-0.
 */
export async function dnsTrioWithKeys(
  dns: TestDnsServer,
  service: string,
  ptr: boolean,
  extra: string[] = [],
): Promise<Trio> {
  const block = loopbackBlock();
  const names = ['kvstore-0', 'kvstore-1', 'kvstore-2'];
  const hosts = names.map((_, i) => `${block}.${i + 1}`);
  if (ptr) for (let i = 0; i < 3; i++) dns.setPtr(hosts[i]!, `${names[i]}.${service}`);
  dns.setA(service, hosts);
  const nodes = await Promise.all(
    [0, 1, 2].map((i) => startDnsMember(dns.port, service, names[i]!, hosts[i]!, extra)),
  );
  await waitFormed(nodes);
  const c = await openClient(nodes[0]!);
  const keys = Array.from({ length: 20 }, (_, i) => `k${i}`);
  for (const k of keys) expect(await c.call(`PUT ${k} v-${k}`)).toBe('OK');
  return { nodes: nodes as Trio['nodes'], names, hosts, keys };
}

/**
 * Which came first: the member `starting` serving, or `waiting` (the sign that it waits). Served
 * first, it answers from a ring of itself alone: `wrong` counts the keys it then reads wrong.
 */
export async function servedFirst(
  starting: Promise<ClusterNode>,
  waiting: Promise<unknown>,
  keys: readonly string[],
): Promise<{ first: string; wrong: number }> {
  const first = await Promise.race([starting.then(() => 'serving'), waiting.then(() => 'waiting')]);
  let wrong = 0;
  if (first === 'serving') {
    const early = await openClient(await starting);
    for (const k of keys) if ((await early.call(`GET ${k}`)) !== `v-${k}`) wrong++;
  }
  return { first, wrong };
}
