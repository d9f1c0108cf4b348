// Runs inside the control namespace (started by run.ts): cluster, workload and nemesis, then the checks.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { LanHost } from '../helpers/netns.ts';
import { checkHistory, EXPIRY_SLACK_MS, type Violation } from './checker.ts';
import { ChaosCluster } from './cluster.ts';
import { finalPhase, waitSettled } from './final.ts';
import { History } from './history.ts';
import { CLOCK_JUMP_MAX_MS, Nemesis } from './nemesis.ts';
import { type ChaosOptions, Rng } from './options.ts';
import { crashViolations, formatSummary } from './report.ts';
import { keyName, startWorkload, Values } from './workload.ts';

/** What run.ts passes on the command line, as JSON. */
export interface ControllerSpec {
  readonly options: ChaosOptions;
  /** One host per node slot (members, and one spare for the member the nemesis adds). */
  readonly slots: readonly LanHost[];
  /** The host this process runs in: the DNS server and the clients live here. */
  readonly ctl: LanHost;
  readonly workDir: string;
  /** powerlossfs's binary (built by run.ts), with `--power-loss`. */
  readonly powerlossfs?: string;
}

async function main(spec: ControllerSpec): Promise<number> {
  const o = spec.options;
  const history = new History();
  const rng = new Rng(o.seed);
  const nemesisRng = rng.fork();
  const workloadRng = rng.fork();
  const keys = Array.from({ length: o.keys }, (_, i) => keyName(i));
  const log = (line: string) =>
    process.stdout.write(`[${(history.now() / 1000).toFixed(1)} s] ${line}\n`);
  let cluster: ChaosCluster | null = null;
  const interrupted = new Promise<number>((resolve) => {
    for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => resolve(130));
  });
  const run = async (): Promise<number> => {
    log(`starting ${o.nodes} nodes in network namespaces (seed ${o.seed})`);
    cluster = await ChaosCluster.start(
      spec.slots,
      spec.ctl,
      o.nodes,
      spec.workDir,
      () => history.now(),
      {
        steppableClocks: o.clockJumps,
        smallDisks: o.fullDisks,
        quorums: { read: o.readQuorum, write: o.writeQuorum },
        ...(spec.powerlossfs ? { powerlossfs: spec.powerlossfs } : {}),
      },
    );
    const notReady = await waitSettled(cluster, 30_000);
    if (notReady !== null) throw new Error(`the cluster did not form: ${notReady}`);
    log(`cluster formed; ${o.clients} clients and the nemesis run for ${o.durationS} s`);
    const values = new Values(o.valueBytes);
    const workload = startWorkload(
      cluster,
      history,
      workloadRng,
      o.clients,
      o.keys,
      values,
      o.expiringWrites,
    );
    const nemesis = new Nemesis(
      cluster,
      nemesisRng,
      {
        baseMembers: o.nodes,
        membershipEveryS: o.membershipEveryS,
        loseVolumes: o.loseVolumes,
        slowLinks: o.slowLinks,
        clockJumps: o.clockJumps,
        fullDisks: o.fullDisks,
        powerLoss: o.powerLoss,
        diskErrors: o.diskErrors,
        everyFaultFirst: o.everyFaultFirst,
        restartFaulted: o.restartFaulted,
        newAddresses: o.newAddresses,
        partialSplits: o.partialSplits,
        oneWayLinks: o.oneWayLinks,
      },
      () => history.now(),
    );
    await nemesis.run(history.now() + o.durationS * 1000, o.maxFaults, o.reuseName);
    await workload.stop();
    log(`nemesis stopped after ${nemesis.events.length} events; healing`);
    await nemesis.settleMembership();
    const final = await finalPhase(cluster, history, keys, o.quietS, values);
    log('final reads done; checking the history');
    const stuck = cluster.members().filter((m) => m.state === 'leaving');
    const violations: Violation[] = [
      ...stuck.map((m) => ({
        kind: 'unsettled' as const,
        key: '*',
        message: `${m.host.name} never finished its decommission, even with every fault healed`,
        excerpt: [],
      })),
      ...crashViolations(cluster.crashes),
      ...final.violations,
      // A node whose clock was stepped back shows expired values up to the step late.
      ...checkHistory(history.ops, keys, {
        expirySlackMs: o.clockJumps ? CLOCK_JUMP_MAX_MS + EXPIRY_SLACK_MS : EXPIRY_SLACK_MS,
      }),
    ];
    if (o.keep) {
      const file = join(spec.workDir, 'history.json');
      writeFileSync(
        file,
        JSON.stringify({
          options: o,
          events: nemesis.events,
          ops: history.ops,
          storesBefore: final.storesBefore,
        }),
      );
    }
    const summary = formatSummary({
      options: o,
      ops: history.ops,
      events: nemesis.events,
      crashes: cluster.crashes,
      final,
      violations,
      seconds: history.now() / 1000,
    });
    process.stdout.write(`\n${summary}\n`);
    return violations.length === 0 ? 0 : 1;
  };
  try {
    return await Promise.race([run(), interrupted]);
  } finally {
    await (cluster as ChaosCluster | null)?.destroy();
  }
}

const spec = JSON.parse(process.argv[2] ?? '{}') as ControllerSpec;
main(spec).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`chaos: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(2);
  },
);
