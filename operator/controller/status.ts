// KVCluster status: conditions Available/Progressing/Degraded (and StaleReads), the phase they imply, members.

import { quorumsOverlap } from '../../src/config/index.ts';
import {
  API_VERSION,
  type Condition,
  type ConditionType,
  KIND,
  type KVClusterSpec,
  type KVClusterStatus,
  type Member,
  type Phase,
  PLURAL,
} from '../api/v1alpha1/index.ts';
import { blockedProgress, blockedText } from './blockers.ts';
import type { ControllerContext } from './context.ts';
import { canonicalJson } from './names.ts';
import { type Observed, type PodView, unmadeCauses } from './observe.ts';
import { progressText, rebalanceProgress, transferFields, waitsText } from './progress.ts';
import {
  type Health,
  ownRefusals,
  type RolloutPlan,
  storesNoWrites,
  UNHEALTHY,
} from './rollout.ts';
import type { ScalePlan } from './scale.ts';

/**
 * A new pod not Ready for longer than this after creation counts as a problem, not as starting.
 * A pod that ran and lost readiness (a restart, a failing readiness probe) gets no grace.
 */
export const STARTUP_GRACE_MS = 5 * 60_000;

type Cond = Omit<Condition, 'lastTransitionTime' | 'observedGeneration'>;

export interface StatusInput {
  readonly spec: KVClusterSpec;
  readonly generation: number;
  readonly selector: string;
  readonly previous: KVClusterStatus | undefined;
  readonly now: Date;
  readonly observed: Observed;
  readonly scale: ScalePlan;
  readonly rollout: RolloutPlan;
  readonly health: Health;
  /** Claims not grown to spec.storage.size yet, each with what it waits for. */
  readonly volumes?: readonly string[];
  /** A pod restarted (or waiting to be) so that its claim's file system grows. */
  readonly fileSystemResize?: string;
  /** Settings ConfigMaps a pod revision uses, deleted, and not known to make again. */
  readonly configMapsMissing?: readonly string[];
  /** The apiserver's message when applying an owned object failed this round (or why it is held). */
  readonly applyError?: string;
  /** The reason of `applyError` (one of HELD_REASONS; ApplyFailed when absent). */
  readonly applyReason?: string;
}

function cond(type: ConditionType, ok: boolean, reason: string, message: string): Cond {
  return { type, status: ok ? 'True' : 'False', reason, message };
}

/**
 * A refusal's text with its numbers masked, pod names' kept (`kv-1`): what a node says of a
 * refusal (how long its disk has stalled, the bytes free, how far ahead its versions are) changes
 * by itself while its cause stays. Every status write is a watch event that reconciles again at
 * once, so a text shown as it changed made one write per reconcile for as long as the cause
 * lasted (a full disk: hours).
 */
const refusalCause = (text: string) => text.replace(/(?<![-\w.])\d+(\.\d+)?/g, '#');

/** Condition reasons whose messages are the members' problems, refusals among them (Degraded's). */
const REFUSAL_REASONS: readonly string[] = ['MembersRefusing', 'MembersUnhealthy'];
/** Where a held rollout's Progressing message quotes them (rollout.ts). */
const HELD_BY = `waiting: ${UNHEALTHY}`;

/**
 * Whether `c`'s message is `old`'s but for the numbers of the refusals it quotes: all of a
 * Degraded message of the members' problems; a Progressing message after HELD_BY only (what
 * comes before, a partition, stays news).
 */
function sameRefusals(old: Condition, c: Cond): boolean {
  if (old.reason !== c.reason) return false;
  if (REFUSAL_REASONS.includes(c.reason))
    return refusalCause(old.message) === refusalCause(c.message);
  const at = c.message.indexOf(HELD_BY);
  if (at < 0) return false;
  const head = c.message.slice(0, at + HELD_BY.length);
  return (
    old.message.startsWith(head) &&
    refusalCause(old.message.slice(head.length)) === refusalCause(c.message.slice(head.length))
  );
}

/**
 * Conditions with lastTransitionTime kept from `previous` while their status is unchanged, and
 * their message while only the numbers of the refusals it quotes changed (refusalCause).
 */
export function stamp(
  conds: readonly Cond[],
  previous: KVClusterStatus | undefined,
  now: Date,
  generation: number,
): Condition[] {
  return conds.map((c) => {
    const old = previous?.conditions?.find((p) => p.type === c.type);
    const same = old !== undefined && old.status === c.status;
    const at = same ? old.lastTransitionTime : now.toISOString();
    const message = same && sameRefusals(old, c) ? old.message : c.message;
    return { ...c, message, lastTransitionTime: at, observedGeneration: generation };
  });
}

function starting(p: PodView, now: Date): boolean {
  return (
    !p.ready && !p.terminating && !p.lostReady && now.getTime() - p.createdAtMs < STARTUP_GRACE_MS
  );
}

/**
 * Phases of an operation whose new pods start: the first start, a scale-up, a rollout. A pod
 * starting after any other phase was recreated (deleted, evicted, its node lost): no scale.
 */
function startsPods(previous: Phase | undefined): boolean {
  return (
    previous === undefined ||
    previous === 'Pending' ||
    previous === 'Scaling' ||
    previous === 'Upgrading'
  );
}

/** Pods that may be unready while reads and writes still reach their quorums. */
export function unreadyTolerance(spec: KVClusterSpec, members: number): number {
  const rf = Math.min(spec.replicationFactor, members);
  return Math.max(0, rf - Math.max(Math.min(spec.readQuorum, rf), Math.min(spec.writeQuorum, rf)));
}

/**
 * A Ready pod whose node stores no write: its storage refuses them (a full disk: Ready, since it
 * serves reads) or it refuses every command (a stalled disk, before its probe fails).
 */
function storesNothing(s: StatusInput, pod: string): boolean {
  const n = s.observed.nodes.get(pod);
  return (
    storesNoWrites(s.observed.nodes, pod) ||
    (n?.reachable && n.view.refusing?.commands === 'all') === true
  );
}

/**
 * Whether reads and writes reach their quorums: no more pods unready, or Ready but storing no
 * write, than the quorums tolerate. Before 2026-12-07 a pod whose disk was full counted as
 * available: with it and one unready pod of three, writes of W=2 failed while this said True.
 */
function available(s: StatusInput): Cond {
  const pods = s.observed.pods.filter((p) => !p.terminating);
  const ready = pods.filter((p) => p.ready);
  const idle = ready.filter((p) => storesNothing(s, p.name)).map((p) => p.name);
  const tolerance = unreadyTolerance(s.spec, pods.length);
  const out = pods.length - ready.length + idle.length;
  const ok = ready.length > idle.length && out <= tolerance;
  const storing = idle.length ? `, ${idle.join(', ')} storing no writes (counted unready)` : '';
  const message = `${ready.length}/${pods.length} pods ready${storing}; quorums hold with up to ${tolerance} unready`;
  return cond('Available', ok, ok ? 'QuorumAvailable' : 'QuorumUnavailable', message);
}

/** A decommission's progress, and the members its hand-off waits for (a full disk). */
const transferText = (t: Parameters<typeof progressText>[0] & Parameters<typeof waitsText>[0]) =>
  `${progressText(t)}${waitsText(t)}`;

function progressing(s: StatusInput): Cond {
  // Nothing the spec asks for moves on while an owned object is rejected.
  if (s.applyError) {
    const until = HELD_UNTIL[s.applyReason ?? 'ApplyFailed'] ?? 'it is resolved';
    const msg = `held until ${until}: see the Degraded condition`;
    return cond('Progressing', false, s.applyReason ?? 'ApplyFailed', msg);
  }
  const step = s.scale.step;
  if (step.kind === 'blocked') return cond('Progressing', false, step.reason, step.message);
  if (step.kind === 'down') {
    const what =
      step.action === 'skip'
        ? `removing ${step.pod} (never started)`
        : step.action === 'settle'
          ? `${step.pod} decommissions once data stops moving`
          : `decommissioning ${step.pod}: ${transferText(step.view?.transfer ?? {})}`;
    return cond('Progressing', true, 'ScalingDown', `scale-down to ${s.spec.replicas}: ${what}`);
  }
  const stsReplicas = counts(s.observed).replicas;
  if (step.kind === 'up' || stsReplicas < s.spec.replicas) {
    const created = `${stsReplicas}/${s.spec.replicas} pods created`;
    // Pods whose creation is refused: nothing moves until the refusal's cause goes (Blocked).
    const refused = blockedText(unmadeCauses(s.observed.unmade), s.now);
    if (refused) return cond('Progressing', false, 'FailedCreate', `${created}${refused}`);
    return cond('Progressing', true, 'ScalingUp', created);
  }
  if (s.rollout.rolling) {
    const why = s.rollout.waiting ? `; waiting: ${s.rollout.waiting}` : '';
    const blocked = blockedText(s.observed.pods, s.now);
    const msg = `partition ${s.rollout.partition}${why}${blocked}`;
    return cond('Progressing', true, 'RollingUpdate', msg);
  }
  if (s.fileSystemResize) {
    return cond('Progressing', true, 'FileSystemResize', s.fileSystemResize);
  }
  const young = s.observed.pods.filter((p) => starting(p, s.now));
  if (young.length) {
    const why = blockedText(young, s.now);
    const names = young.map((p) => p.name).join(', ');
    return cond('Progressing', true, 'PodsStarting', `starting: ${names}${why}`);
  }
  if (s.health.rebalancing) {
    const r = rebalanceProgress(s.observed);
    const how = r ? `: ${progressText(r)} on ${r.nodes} node${r.nodes === 1 ? '' : 's'}` : '';
    return cond('Progressing', true, 'Rebalancing', `data is moving to its new owners${how}`);
  }
  const volumes = s.volumes ?? [];
  if (volumes.length) {
    const more = volumes.length > 3 ? `; and ${volumes.length - 3} more` : '';
    const msg = `volumes growing to ${s.spec.storage.size}: ${volumes.slice(0, 3).join('; ')}${more}`;
    return cond('Progressing', true, 'VolumesGrowing', msg);
  }
  return cond('Progressing', false, 'Stable', 'the cluster matches the spec');
}

function wantedButLeaving(s: StatusInput): string[] {
  const leaving = s.scale.step.kind === 'down' ? s.scale.step.pod : '';
  return s.observed.pods
    .filter((p) => p.ordinal < s.spec.replicas && p.name !== leaving)
    .filter((p) => {
      const n = s.observed.nodes.get(p.name);
      return (
        n?.reachable === true &&
        (n.view.status === 'decommissioning' || n.view.status === 'decommissioned')
      );
    })
    .map((p) => p.name);
}

function degraded(s: StatusInput, prog: Cond): Cond {
  if (s.applyError) return cond('Degraded', true, s.applyReason ?? 'ApplyFailed', s.applyError);
  const missing = s.configMapsMissing ?? [];
  if (missing.length) {
    const msg = `${missing.join('; ')}. Let the rollout replace those pods, or make the ConfigMap again by hand (docs/operator.md, "A settings ConfigMap deleted by hand")`;
    return cond('Degraded', true, 'ConfigMapMissing', msg);
  }
  const leaving = wantedButLeaving(s);
  if (leaving.length) {
    const msg = `${leaving.join(', ')} decommissioned but still wanted: delete its pod and claim to rejoin it`;
    return cond('Degraded', true, 'DecommissionedMemberWanted', msg);
  }
  const stuck = s.observed.pods.filter((p) => !p.ready && !p.terminating && !starting(p, s.now));
  if (stuck.length) {
    const names = stuck.map((p) => (p.lostReady ? `${p.name} (was running)` : p.name));
    const why = blockedText(stuck, s.now);
    return cond('Degraded', true, 'PodsNotReady', `not ready: ${names.join(', ')}${why}`);
  }
  const unmade = s.observed.unmade ?? [];
  if (unmade.length) {
    const names = unmade.map((u) => u.name).join(', ');
    const why = blockedText(unmadeCauses(unmade), s.now);
    return cond('Degraded', true, 'PodsNotCreated', `not created: ${names}${why}`);
  }
  if (prog.reason === 'PodsStarting' && !startsPods(s.previous?.phase)) {
    const young = s.observed.pods.filter((p) => starting(p, s.now)).map((p) => p.name);
    const why = blockedText(s.observed.pods, s.now);
    const msg = `recreated, starting: ${young.join(', ')} (no scale or rollout under way)${why}`;
    return cond('Degraded', true, 'PodsRecreated', msg);
  }
  const others = s.health.problems.filter((p) => !p.endsWith(' not ready'));
  // Members that run and answer, but refuse work (writes for a clock, a full disk): said apart.
  const refusing = others.every((p) => s.health.refusals.includes(p));
  const reason = refusing ? 'MembersRefusing' : 'MembersUnhealthy';
  if (others.length) return cond('Degraded', true, reason, others.slice(0, 5).join('; '));
  return cond('Degraded', false, 'AsExpected', 'no problems found');
}

/** Reasons of a reconcile held before it could act (HeldError): the phase is Degraded. */
const HELD_UNTIL: Readonly<Record<string, string>> = {
  ApplyFailed: 'every owned object applies',
  ClusterSecretMissing: 'the cluster secret is back',
  StorageShrink: "spec.storage.size is at least the volumes' size",
  VolumeExpansionFailed:
    'the claims can grow (their StorageClass allows expansion) or spec.storage.size is back',
  ClusterSecretChange: 'the cluster secret has the value the pods run with',
  ClusterSecretChanged: 'the cluster secret has the value the pods run with again',
  PeerTlsChange: 'peer TLS is on or off as the pods run with',
};
export const HELD_REASONS: readonly string[] = Object.keys(HELD_UNTIL);

const PHASE_OF_REASON: Readonly<Record<string, Phase>> = {
  ScalingDown: 'Scaling',
  ScalingUp: 'Scaling',
  RollingUpdate: 'Upgrading',
  // Pods restarted one at a time, as in a rollout (a pod starting keeps this phase).
  FileSystemResize: 'Upgrading',
  Rebalancing: 'Rebalancing',
  // Every pod serves meanwhile; the storage provider (or a pod restart) finishes it.
  VolumesGrowing: 'Available',
};

/**
 * The phase the conditions imply; a cluster stays Pending until it was first fully up (or its
 * pods are past their start-up grace), and once up, no pod ready is Degraded (not Pending, nor
 * the Scaling of a StatefulSet made again). Pods
 * starting keep the phase of the scale-up or rollout that made them; started by nothing the
 * operator did (recreated), they are not a scale: Degraded (PodsRecreated) until Ready.
 */
export function phaseOf(conds: readonly Cond[], ready: number, previous: Phase | undefined): Phase {
  const get = (t: ConditionType) => conds.find((c) => c.type === t)!;
  const prog = get('Progressing');
  if (HELD_REASONS.includes(get('Degraded').reason)) return 'Degraded';
  if (prog.status === 'False' && prog.reason !== 'Stable') return 'Blocked';
  const firstStart = previous === undefined || previous === 'Pending';
  // No pod ready in a cluster that was up is an outage, whatever else moves (every pod lost its
  // readiness, or the StatefulSet was deleted with its pods): it showed Pending, a Normal Event.
  // A first start stays Pending until its pods are past their start-up grace (Degraded, say
  // PodsNotReady: an image that does not run, claims that never bind), not for good.
  if (ready === 0) {
    return firstStart && get('Degraded').status !== 'True' ? 'Pending' : 'Degraded';
  }
  if (prog.status === 'True' && firstStart && ['ScalingUp', 'PodsStarting'].includes(prog.reason)) {
    return 'Pending';
  }
  if (prog.status === 'True' && prog.reason === 'PodsStarting') {
    if (previous === 'Scaling' || previous === 'Upgrading') return previous;
  } else if (prog.status === 'True') return PHASE_OF_REASON[prog.reason] ?? 'Scaling';
  if (get('Degraded').status === 'True' || get('Available').status === 'False') return 'Degraded';
  return 'Available';
}

function members(o: Observed, previous: readonly Member[] | undefined): Member[] {
  return o.pods.map((p) => {
    const n = o.nodes.get(p.name);
    let state = p.terminating ? 'terminating' : 'pending';
    if (n) state = n.reachable ? (n.view.status ?? 'active') : 'unreachable';
    // Before 2026-12-07 a member whose disk was full showed `active` here and nothing else.
    // A line for the same cause as the one shown stays as shown: every status write is a watch
    // event that reconciles again at once, and a stalled disk's seconds made one write per
    // reconcile for as long as it stalled.
    const before = previous?.find((m) => m.name === p.name)?.refusing ?? [];
    const refusing = (n?.reachable ? ownRefusals(n.view, true) : []).map(
      (line) => before.find((b) => refusalCause(b) === refusalCause(line)) ?? line,
    );
    return { name: p.name, ready: p.ready, state, ...(refusing.length > 0 ? { refusing } : {}) };
  });
}

function decommission(scale: ScalePlan): KVClusterStatus['decommission'] {
  const step = scale.step;
  if (step.kind !== 'down' || !step.view) return undefined;
  const t = step.view.transfer;
  return {
    member: step.pod,
    state: step.view.status,
    scanned: t?.scanned ?? 0,
    sent: t?.sent ?? 0,
    ...transferFields(t),
  };
}

/**
 * Pods and ready pods: the StatefulSet's status; for one with no status yet (made again after a
 * claim template change, adopting running pods) or none, the pods' own, so the phase does not
 * drop to Pending while they serve.
 */
function counts(o: Observed): { replicas: number; ready: number } {
  const st = o.sts?.status;
  if (st?.observedGeneration !== undefined)
    return { replicas: st.replicas, ready: st.readyReplicas ?? 0 };
  const pods = o.pods.filter((p) => !p.terminating);
  return { replicas: pods.length, ready: pods.filter((p) => p.ready).length };
}

/**
 * While readQuorum + writeQuorum <= replicationFactor (reads may miss acknowledged writes): the
 * StaleReads condition, True, saying whether the spec accepts it; absent otherwise.
 */
export function staleReads(spec: KVClusterSpec): Cond | null {
  if (quorumsOverlap(spec)) return null;
  const { readQuorum, writeQuorum, replicationFactor } = spec;
  const why = `readQuorum ${readQuorum} + writeQuorum ${writeQuorum} <= replicationFactor ${replicationFactor}: a read may miss an acknowledged write until the replicas catch up`;
  return spec.allowStaleReads
    ? cond('StaleReads', true, 'StaleReadsAllowed', `${why} (spec.allowStaleReads)`)
    : cond(
        'StaleReads',
        true,
        'QuorumsDoNotOverlap',
        `${why}; set spec.allowStaleReads: true to accept it, or raise readQuorum or writeQuorum`,
      );
}

/** The status of a valid, unpaused cluster (pure). */
export function buildStatus(s: StatusInput): KVClusterStatus {
  const prog = progressing(s);
  const stale = staleReads(s.spec);
  const conds = [available(s), prog, degraded(s, prog), ...(stale ? [stale] : [])];
  const sts = s.observed.sts?.status;
  const { replicas, ready } = counts(s.observed);
  const d = decommission(s.scale);
  const r = s.health.rebalancing ? rebalanceProgress(s.observed) : undefined;
  const progress = d
    ? `decommission ${d.member}: ${progressText(d)}`
    : r
      ? `rebalance: ${progressText(r)}`
      : blockedProgress([...s.observed.pods, ...unmadeCauses(s.observed.unmade)], s.now);
  return {
    observedGeneration: s.generation,
    phase: phaseOf(conds, ready, s.previous?.phase),
    replicas,
    readyReplicas: ready,
    updatedReplicas: sts?.updatedReplicas ?? 0,
    selector: s.selector,
    members: members(s.observed, s.previous?.members),
    conditions: stamp(conds, s.previous, s.now, s.generation),
    ...(d ? { decommission: d } : {}),
    rebalancing: s.health.rebalancing,
    ...(r ? { rebalance: r } : {}),
    ...(progress ? { progress } : {}),
  };
}

/** Status of a KVCluster whose spec failed validation, or that is paused: nothing else changes. */
export function heldStatus(
  kind: 'Invalid' | 'Paused',
  message: string,
  previous: KVClusterStatus | undefined,
  generation: number,
  now: Date,
): KVClusterStatus {
  const invalid = kind === 'Invalid';
  const conds: Cond[] = [
    cond(
      'Available',
      previous?.conditions?.find((c) => c.type === 'Available')?.status === 'True',
      'Unchanged',
      'not evaluated',
    ),
    cond('Progressing', false, invalid ? 'InvalidSpec' : 'Paused', message),
    cond('Degraded', invalid, invalid ? 'InvalidSpec' : 'Paused', message),
  ];
  const { decommission: _d, rebalance: _r, progress: _p, ...rest } = previous ?? {};
  return {
    ...rest,
    observedGeneration: generation,
    phase: kind,
    conditions: stamp(conds, previous, now, generation),
  };
}

/** Whether `next` differs from what the KVCluster shows (key order ignored). */
export function statusChanged(
  previous: KVClusterStatus | undefined,
  next: KVClusterStatus,
): boolean {
  return canonicalJson(previous ?? {}) !== canonicalJson(next);
}

/** Writes the status subresource when it changed, with an Event when the phase changed. */
export async function ensureStatus(
  ctx: ControllerContext,
  ref: { readonly name: string; readonly namespace: string; readonly uid: string },
  previous: KVClusterStatus | undefined,
  next: KVClusterStatus,
): Promise<void> {
  if (!statusChanged(previous, next)) return;
  await ctx.kube.applyStatus({ apiVersion: API_VERSION, kind: KIND, plural: PLURAL, ...ref }, next);
  if (next.phase && next.phase !== previous?.phase) {
    await ctx.events.phaseChanged(ref, previous?.phase, next.phase, phaseMessage(next));
  }
}

/**
 * The message of a phase's Event: the ready pods, then the reason and message of the condition
 * that explains the phase (Degraded for Degraded and Invalid, Progressing for Blocked and
 * Paused, else whichever of Progressing and Degraded is True).
 */
export function phaseMessage(s: KVClusterStatus): string {
  const get = (t: ConditionType) => s.conditions?.find((c) => c.type === t);
  const isTrue = (c: Condition | undefined) => (c?.status === 'True' ? c : undefined);
  const [available, progressing, degraded] = [
    get('Available'),
    get('Progressing'),
    get('Degraded'),
  ];
  let why: Condition | undefined;
  if (s.phase === 'Degraded' || s.phase === 'Invalid') {
    why = isTrue(degraded) ?? (available?.status === 'False' ? available : undefined);
  } else if (s.phase === 'Blocked' || s.phase === 'Paused') why = progressing;
  else why = isTrue(progressing) ?? isTrue(degraded);
  const members = s.members ?? [];
  const base = `${members.filter((m) => m.ready).length}/${members.length} pods ready`;
  return why ? `${base}; ${why.reason}: ${why.message}` : base;
}
