// Leader election of kvstore-operator on a real control plane: two processes (each as the
// operator's ServiceAccount), one reconciles; the other takes over when it stops or dies.
// The nodes' admin API is a stand-in (kwok pods run no container); see operator-fixtures.ts.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  getJson,
  installOperatorBasics,
  OPERATOR_NS,
  type OperatorProcess,
  StandIn,
  serviceAccountKubeconfig,
  startOperator,
  stopOperators,
  waitUntil,
} from './operator-fixtures.ts';
import { START_TIMEOUT_MS, useControlPlane } from './use-control-plane.ts';

const NS = 'kv-leader';
// A lease short enough that a killed leader (no release) is replaced within seconds.
const LEASE = ['--lease-duration-ms', '6000', '--renew-deadline-ms', '4000'];
/**
 * A lease no test waits out: a follower that takes it over did so because it was released,
 * however slow the machine (the holder writes its duration into the Lease; followers judge
 * expiry by it).
 */
const LONG_LEASE = ['--lease-duration-ms', '3600000', '--renew-deadline-ms', '4000'];

const k = useControlPlane();
let kubeconfig = '';
const standIn = new StandIn();

async function holder(): Promise<string | undefined> {
  const lease = await getJson(k(), ['lease', 'kvstore-operator', '-n', OPERATOR_NS]);
  return lease?.spec.holderIdentity || undefined;
}

function start(identity: string, lease = LEASE): Promise<OperatorProcess> {
  return startOperator(kubeconfig, [
    '--identity',
    identity,
    '--pod-url-template',
    standIn.template,
    '--poll-ms',
    '300',
    '--retry-period-ms',
    '300',
    ...lease,
  ]);
}

async function replicas(): Promise<number | undefined> {
  return (await getJson(k(), ['statefulset', 'lead', '-n', NS]))?.spec.replicas;
}

async function leaderGauge(op: OperatorProcess): Promise<string> {
  return /^kvstore_operator_leader (\d)$/m.exec(await op.metrics())?.[1] ?? '';
}

beforeAll(async () => {
  await installOperatorBasics(k(), NS);
  await standIn.start();
  kubeconfig = await serviceAccountKubeconfig(k());
}, START_TIMEOUT_MS);

afterAll(async () => {
  await stopOperators();
  await standIn.close();
}, 120_000);

describe('leader election', { timeout: 180_000 }, () => {
  it('lets one of two operators reconcile and hands over when it stops or dies', async () => {
    const a = await start('op-a', LONG_LEASE);
    const first = await waitUntil('a lease holder', holder);
    expect(first).toBe('op-a');
    const b = await start('op-b');
    await new Promise((r) => setTimeout(r, 1500));
    expect(await holder()).toBe('op-a');
    expect([await leaderGauge(a), await leaderGauge(b)]).toEqual(['1', '0']);

    const kvc =
      'apiVersion: kvstore.dev/v1alpha1\nkind: KVCluster\nmetadata: {name: lead}\nspec: {replicas: 1, replicationFactor: 1, readQuorum: 1, writeQuorum: 1}\n';
    await k().kubectl(['apply', '-n', NS, '-f', '-'], { input: kvc });
    await waitUntil('StatefulSet from op-a', async () => (await replicas()) === 1);
    const bLogs = b.logs.filter((l) => l.msg === 'controller started');
    expect(bLogs).toEqual([]);

    // Graceful stop releases the Lease: op-b takes over without waiting for it to expire (an
    // hour: op-a's lease).
    expect(await a.stop('SIGTERM')).toBe(0);
    await waitUntil('op-b leads', async () => (await holder()) === 'op-b', 60_000);
    await k().kubectl(['scale', 'kvcluster/lead', '-n', NS, '--replicas=2']);
    await waitUntil('StatefulSet scaled by op-b', async () => (await replicas()) === 2, 30_000);
    expect(await leaderGauge(b)).toBe('1');

    // A killed leader cannot release: the next one waits for the lease to expire.
    const c = await start('op-c');
    expect(await b.stop('SIGKILL')).toBe('SIGKILL');
    const killedAt = Date.now();
    await waitUntil('op-c leads', async () => (await holder()) === 'op-c', 30_000);
    expect(Date.now() - killedAt).toBeGreaterThan(4000);
    await k().kubectl(['scale', 'kvcluster/lead', '-n', NS, '--replicas=3']);
    await waitUntil('StatefulSet scaled by op-c', async () => (await replicas()) === 3, 30_000);
    const lease = await getJson(k(), ['lease', 'kvstore-operator', '-n', OPERATOR_NS]);
    expect(lease?.spec.leaseTransitions).toBeGreaterThanOrEqual(2);
    expect(await c.stop('SIGTERM')).toBe(0);
  });
});
