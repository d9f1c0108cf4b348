// The nemesis: on a seeded schedule, kills and restarts, pauses, partitions, adds and decommissions nodes.

import type { ChaosCluster, Slot } from './cluster.ts';
import type { Rng } from './options.ts';

export interface NemesisEvent {
  /** Seconds since the run started. */
  readonly t: number;
  readonly kind: string;
  readonly target: string;
  /** Extra facts (`down 1.2 s`), or the error when the step failed. */
  readonly detail: string;
  readonly ok: boolean;
}

/** Point faults and their weights; each lasts a random time, then is undone. */
const FAULTS = { kill: 3, pause: 2, isolate: 2, split: 2 } as const;
/** With `loseVolumes`: the same and a member's data directory lost. */
const WITH_LOST_VOLUMES = { ...FAULTS, 'lose-volume': 1 } as const;
/** With `slowLinks`: one more, a member's link slow and lossy (a gray failure, not a cut). */
const SLOW_LINK = { 'slow-link': 2 } as const;
/** With `clockJumps`: a member's wall clock stepped ahead or back, then stepped back in step. */
const CLOCK_JUMP = { 'clock-jump': 2 } as const;
/** With `fullDisks`: a member's data directory's file system full, then freed. */
const DISK_FULL = { 'disk-full': 2 } as const;
/** With `powerLoss`: a member's power cut (killed, its unsynced writes gone), then back. */
const POWER_CUT = { 'power-cut': 2 } as const;
/** With `diskErrors`: every sync of a member's disk fails with EIO, then the disk is well again. */
const DISK_ERRORS = { 'disk-errors': 2 } as const;
/** With `newAddresses`: a member killed and started again at a new IP address (a pod rescheduled). */
const NEW_ADDRESS = { 'new-address': 2 } as const;
/**
 * With `partialSplits`: a member cut off from one or two other members only, still reaching the
 * rest (and clients and DNS): members disagree on who is up, as a broken route or a firewall rule
 * between two hosts makes (reachability that is not transitive).
 */
const PARTIAL_SPLIT = { 'partial-split': 2 } as const;
/**
 * With `oneWayLinks`: one direction of a member's links to one, two or all other members lost,
 * the other delivered (an asymmetric route, a NIC whose transmit queue hangs, a firewall rule on
 * one side): requests reach a peer that acts on them while its answers are lost, or the reverse.
 */
const ONE_WAY = { 'one-way': 2 } as const;
type Fault =
  | keyof typeof WITH_LOST_VOLUMES
  | keyof typeof NEW_ADDRESS
  | keyof typeof PARTIAL_SPLIT
  | keyof typeof ONE_WAY
  | keyof typeof SLOW_LINK
  | keyof typeof CLOCK_JUMP
  | keyof typeof DISK_FULL
  | keyof typeof POWER_CUT
  | keyof typeof DISK_ERRORS;
/**
 * The share of a cut member's unsynced page writes its disk keeps anyway (0: none; otherwise a
 * seeded subset, as a disk that wrote some of its cache back, in any order, before the power went).
 */
const POWER_CUT_KEEP = [0, 0, 0.5, 0.9] as const;
/**
 * How long each sync of the member's disk takes for a while before its power goes (0: a healthy
 * disk): on a slow disk, writes are in flight, unsynced, when the cut comes.
 */
const POWER_CUT_SLOW_MS = [0, 0, 300, 1500] as const;
/** Link rates (kbit/s, each way) and loss (%) a slow link is drawn from. */
const SLOW_RATES_KBIT = [128, 512, 2048] as const;
const SLOW_LOSS_PCT = [2, 5, 10, 20] as const;
/**
 * How far a clock jumps (ms; negative: back), all beyond the nodes' --max-clock-offset-ms (500):
 * within it, writes through different nodes closer together than the clocks differ may be
 * ordered either way by design (docs/cluster.md), which the checker would count as stale reads.
 */
const CLOCK_JUMPS_MS = [-5000, -2000, -1000, 1000, 2000, 5000] as const;
/** The largest step of a clock, either way (ms). */
export const CLOCK_JUMP_MAX_MS = Math.max(...CLOCK_JUMPS_MS.map(Math.abs));
/** Seconds a fault lasts: [min, max). */
const HOLD: Record<Fault, [number, number]> = {
  kill: [0.3, 5],
  'lose-volume': [0.3, 5],
  pause: [0.5, 5],
  // Up to beyond the tombstone grace (5 s): hints of older values are dropped meanwhile.
  isolate: [1, 7],
  split: [1, 7],
  // Long enough for the failure detector to flap and hints to pile up, if they do.
  'slow-link': [3, 12],
  // Past several probe rounds (200 ms each) and the tombstone grace (5 s) at times.
  'clock-jump': [1, 8],
  'disk-full': [2, 10],
  'power-cut': [0.3, 5],
  'disk-errors': [2, 10],
  // Out of DNS: from the old pod's deletion to the new pod's IP (its start comes after).
  'new-address': [0.3, 5],
  'partial-split': [1, 7],
  'one-way': [1, 7],
};
/**
 * With `powerLoss`: the share of decommissions whose member loses power while it hands off (its
 * status and cursors are then what its disk kept), and when: seconds after the hand-off started.
 */
const LEAVING_CUT_SHARE = 0.5;
const LEAVING_CUT_AFTER_S: [number, number] = [0.2, 3];
/**
 * With `restartFaulted`: the share of clock jumps, full disks and slow links whose member is
 * SIGKILLed partway through (at a share of the hold drawn from RESTART_AT) and started again
 * after RESTART_DOWN_MS while the fault holds: it starts with its clock off, on a full disk, or
 * behind a slow link, as a host that reboots meanwhile does.
 */
const RESTART_FAULTED_SHARE = 0.5;
const RESTART_AT: [number, number] = [0.1, 0.5];
const RESTART_DOWN_MS: [number, number] = [300, 2000];
/** Longest a decommission may take before it counts as stuck. */
const DECOMMISSION_MS = 30_000;
/** With `reuseName`: how long the run may go on past its end waiting for a name to be reused. */
export const REUSE_EXTRA_MS = 180_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class Nemesis {
  readonly events: NemesisEvent[] = [];
  readonly #cluster: ChaosCluster;
  readonly #rng: Rng;
  /** Draws for power cuts of leaving members (a branch: the other draws keep their schedule). */
  readonly #leavingRng: Rng;
  /** With `restartFaulted`, the draws for restarts of faulted members (a branch too); else null. */
  readonly #restartRng: Rng | null;
  readonly #powerLoss: boolean;
  /** A leaving member lost power (with everyFaultFirst, the first decommission's does). */
  #leavingCut = false;
  readonly #baseMembers: number;
  readonly #membershipEveryMs: number;
  readonly #now: () => number;
  /** The join or decommission in progress (one at a time). */
  #membership: Promise<void> | null = null;
  #stopped = false;
  /** A decommissioned member's name joined again (empty). */
  #reused = false;
  /** The faults drawn from and their weights: FAULTS or WITH_LOST_VOLUMES, SLOW_LINK, CLOCK_JUMP, DISK_FULL. */
  readonly #faults: Readonly<Record<string, number>>;
  /** The member whose volume was lost last, and its settled epoch before; null once refilled. */
  #lost: { readonly slot: Slot; readonly epoch: number } | null = null;
  /** With `everyFaultFirst`: the kinds not drawn yet, next first; then draws go by weight. */
  readonly #firsts: Fault[] = [];
  readonly #everyFaultFirst: boolean;
  /** The kinds injected so far. */
  readonly #injected = new Set<Fault>();
  /** Members a point fault has drawn, from the draw until it is undone (see #inject). */
  readonly #busy = new Set<Slot>();

  constructor(
    cluster: ChaosCluster,
    rng: Rng,
    opts: {
      baseMembers: number;
      membershipEveryS: number;
      loseVolumes?: boolean;
      slowLinks?: boolean;
      clockJumps?: boolean;
      fullDisks?: boolean;
      powerLoss?: boolean;
      diskErrors?: boolean;
      everyFaultFirst?: boolean;
      restartFaulted?: boolean;
      newAddresses?: boolean;
      partialSplits?: boolean;
      oneWayLinks?: boolean;
    },
    now: () => number,
  ) {
    this.#cluster = cluster;
    this.#rng = rng;
    this.#leavingRng = rng.branch(0x1ea7);
    this.#restartRng = opts.restartFaulted ? rng.branch(0x5eb0) : null;
    this.#powerLoss = opts.powerLoss ?? false;
    this.#baseMembers = opts.baseMembers;
    this.#membershipEveryMs = opts.membershipEveryS * 1000;
    this.#now = now;
    // Without the options the faults and their order are as before: seeds keep their schedules.
    this.#faults = {
      ...(opts.loseVolumes ? WITH_LOST_VOLUMES : FAULTS),
      ...(opts.slowLinks ? SLOW_LINK : {}),
      ...(opts.clockJumps ? CLOCK_JUMP : {}),
      ...(opts.fullDisks ? DISK_FULL : {}),
      ...(opts.powerLoss ? POWER_CUT : {}),
      ...(opts.diskErrors ? DISK_ERRORS : {}),
      ...(opts.newAddresses ? NEW_ADDRESS : {}),
      ...(opts.partialSplits ? PARTIAL_SPLIT : {}),
      ...(opts.oneWayLinks ? ONE_WAY : {}),
    };
    this.#everyFaultFirst = opts.everyFaultFirst ?? false;
    if (this.#everyFaultFirst) {
      // A seeded shuffle (Fisher-Yates): which kind comes first is the seed's, not the weights'.
      const kinds = Object.keys(this.#faults) as Fault[];
      for (let i = kinds.length - 1; i > 0; i--) {
        const j = this.#rng.int(0, i);
        [kinds[i], kinds[j]] = [kinds[j]!, kinds[i]!];
      }
      this.#firsts.push(...kinds);
    }
  }

  /**
   * Injects faults until `endMs` on the run clock (with `reuseName`, until a decommissioned name
   * joined again, at most REUSE_EXTRA_MS later): `lanes` loops, each one fault at a time on a
   * node no other fault holds, then undone; the first lane also changes the membership.
   */
  async run(endMs: number, lanes = 1, reuseName = false): Promise<void> {
    // The next membership change comes `membershipEveryS` after the previous one finished.
    let nextMembership = this.#now() + this.#membershipEveryMs;
    // With reuseName the run goes on past endMs (bounded) until a name was reused.
    const untilMs = () => (reuseName && !this.#reused ? endMs + REUSE_EXTRA_MS : endMs);
    const lane = async (first: boolean): Promise<void> => {
      while (!this.#stopped && this.#now() < untilMs()) {
        await sleep(this.#rng.between(300, 2000));
        if (this.#now() >= untilMs()) break;
        if (first && this.#now() >= nextMembership && this.#membership === null) {
          nextMembership = Infinity;
          this.#membership = this.#changeMembership().finally(() => {
            this.#membership = null;
            nextMembership = this.#now() + this.#membershipEveryMs;
          });
        }
        const fault = this.#firsts.shift() ?? (this.#rng.weighted(this.#faults) as Fault);
        const [lo, hi] = HOLD[fault];
        const holdMs = Math.min(this.#rng.between(lo * 1000, hi * 1000), untilMs() - this.#now());
        if (await this.#inject(fault, Math.max(holdMs, 100))) this.#injected.add(fault);
        // A kind not injected yet (no member to take it, as while a split cuts every member off
        // from one, or a lost volume that became a plain kill) comes again.
        else if (this.#everyFaultFirst && !this.#injected.has(fault)) this.#firsts.push(fault);
      }
    };
    await Promise.all(Array.from({ length: lanes }, (_, i) => lane(i === 0)));
  }

  stop(): void {
    this.#stopped = true;
  }

  /**
   * Waits for a join or decommission in progress, then finishes decommissions that did not
   * finish by their deadline (faults may hold a hand-off back): another `DECOMMISSION_MS`.
   */
  async settleMembership(): Promise<void> {
    await this.#membership;
    for (const s of this.#cluster.members().filter((m) => m.state === 'leaving')) {
      await this.#decommission(s);
    }
  }

  #record(kind: string, target: string, detail: string, ok = true): void {
    this.events.push({ t: this.#now() / 1000, kind, target, detail, ok });
  }

  /** Resolves with whether `fault` was injected: false when no member could take it, or it failed. */
  async #inject(fault: Fault, holdMs: number): Promise<boolean> {
    const healthy = this.#free();
    if (healthy.length === 0) return false;
    const victim = this.#rng.pick(healthy);
    const name = victim.host.name;
    const hold = `${(holdMs / 1000).toFixed(1)} s`;
    // Claimed at once: a fault may wait before it acts (lose-volume asks the members first), and
    // another lane drawing the same member meanwhile put two faults on it (seed 31004 at
    // 65cdd43: a plain kill and a new address on kv1 at 48.0 s, its restart at the old address
    // failed with EADDRNOTAVAIL, counted as a node failure).
    this.#busy.add(victim);
    try {
      switch (fault) {
        case 'kill':
          await this.#kill(victim, holdMs, '');
          break;
        case 'lose-volume':
          return await this.#loseVolume(victim, holdMs);
        case 'power-cut':
          await this.#powerCut(victim, holdMs);
          break;
        case 'new-address':
          await this.#newAddress(victim, holdMs);
          break;
        case 'disk-errors':
          await this.#cluster.failDisk(victim);
          this.#record('disk-errors', name, `every sync fails with EIO for ${hold}`);
          await sleep(holdMs);
          await this.#cluster.healDisk(victim);
          this.#record('disk-ok', name, 'syncs work again');
          await this.#restartAfterDiskErrors(victim);
          break;
        case 'pause':
          this.#cluster.pause(victim);
          this.#record('pause', name, `SIGSTOP for ${hold}`);
          await sleep(holdMs);
          this.#cluster.resume(victim);
          this.#record('resume', name, 'SIGCONT');
          break;
        case 'isolate':
          await this.#cluster.isolate(victim);
          this.#record('isolate', name, `link down for ${hold} (peers, clients, DNS)`);
          await sleep(holdMs);
          await this.#cluster.reconnect(victim);
          this.#record('reconnect', name, 'link up');
          break;
        case 'split':
          await this.#split(victim, holdMs);
          break;
        case 'partial-split':
          return await this.#partialSplit(victim, holdMs);
        case 'one-way':
          return await this.#oneWay(victim, holdMs);
        case 'slow-link': {
          const rate = this.#rng.pick([...SLOW_RATES_KBIT]);
          const loss = this.#rng.pick([...SLOW_LOSS_PCT]);
          await this.#cluster.slowLink(victim, rate, loss);
          this.#record(
            'slow-link',
            name,
            `${rate} kbit/s and ${loss}% loss each way for ${hold} (peers, clients, DNS)`,
          );
          await this.#hold(victim, holdMs, 'slow link');
          await this.#cluster.fastLink(victim);
          this.#record('fast-link', name, 'link back to full speed');
          break;
        }
        case 'clock-jump': {
          const ms = this.#rng.pick([...CLOCK_JUMPS_MS]);
          this.#cluster.jumpClock(victim, ms);
          const how = `${Math.abs(ms / 1000)} s ${ms > 0 ? 'ahead' : 'back'}`;
          this.#record('clock-jump', name, `wall clock stepped ${how} for ${hold}`);
          await this.#hold(victim, holdMs, 'clock step');
          this.#cluster.jumpClock(victim, 0);
          this.#record('clock-back', name, 'wall clock stepped back in step');
          break;
        }
        case 'disk-full': {
          const bytes = await this.#cluster.fillDisk(victim);
          const mib = (bytes / 2 ** 20).toFixed(0);
          this.#record('disk-full', name, `data disk filled (${mib} MiB of ballast) for ${hold}`);
          await this.#hold(victim, holdMs, 'full disk');
          this.#cluster.freeDisk(victim);
          this.#record('disk-freed', name, 'ballast removed');
          break;
        }
      }
    } catch (err) {
      this.#record(fault, name, err instanceof Error ? err.message : String(err), false);
      return false;
    } finally {
      this.#busy.delete(victim);
    }
    return true;
  }

  /** Members a point fault may take: healthy, and not claimed by a fault that has not acted yet. */
  #free(): Slot[] {
    return this.#cluster.healthy().filter((s) => !this.#busy.has(s));
  }

  /**
   * Waits while a fault holds on `victim` for `holdMs`. With restartFaulted, in a share of the
   * faults, the member is SIGKILLed partway through and started again while the fault still
   * holds (not when it is being decommissioned meanwhile: that undid the fault, and it hands off).
   */
  async #hold(victim: Slot, holdMs: number, what: string): Promise<void> {
    const rng = this.#restartRng;
    if (rng === null || rng.next() >= RESTART_FAULTED_SHARE) {
      await sleep(holdMs);
      return;
    }
    const until = this.#now() + holdMs;
    const downMs = rng.between(...RESTART_DOWN_MS);
    await sleep(rng.between(...RESTART_AT) * holdMs);
    if (victim.state === 'member' && victim.proc !== null) {
      const name = victim.host.name;
      const down = `${(downMs / 1000).toFixed(1)} s`;
      await this.#cluster.kill(victim);
      this.#record('kill-faulted', name, `SIGKILL during its ${what}, restart after ${down}`);
      await sleep(downMs);
      await this.#cluster.restart(victim);
      this.#record('restart', name, `reopened its data directory, its ${what} still on`);
    }
    await sleep(Math.max(0, until - this.#now()));
  }

  /**
   * A node whose LMDB file could not be synced exits by its own decision (EXIT_STORAGE_FAILED):
   * started again once its disk works, as a kubelet would, it replays its log. An exit that
   * comes later than this is restarted at the heal.
   */
  async #restartAfterDiskErrors(victim: Slot): Promise<void> {
    if (!this.#cluster.takeStorageExit(victim)) return;
    const name = victim.host.name;
    this.#record('storage-exit', name, 'exited 3 on its own: a sync of its LMDB file failed');
    await this.#cluster.restart(victim);
    this.#record('restart', name, 'replayed its log');
  }

  /** SIGKILL, then a restart on the same data directory after `holdMs`; `note` ends the event. */
  async #kill(victim: Slot, holdMs: number, note: string): Promise<void> {
    const name = victim.host.name;
    await this.#cluster.kill(victim);
    this.#record('kill', name, `SIGKILL, restart after ${(holdMs / 1000).toFixed(1)} s${note}`);
    await sleep(holdMs);
    await this.#cluster.restart(victim);
    this.#record('restart', name, 'reopened its data directory');
  }

  /**
   * SIGKILL, out of DNS for `holdMs`, then a new IP address listed in DNS and the member started
   * on its data directory there: peers resolve an address that answers nothing until it is up.
   */
  async #newAddress(victim: Slot, holdMs: number): Promise<void> {
    const name = victim.host.name;
    const old = victim.host.ip;
    victim.moving = true;
    try {
      await this.#cluster.kill(victim);
      const hold = `${(holdMs / 1000).toFixed(1)} s`;
      this.#record('new-address', name, `SIGKILL, out of DNS for ${hold}, then a new address`);
      const ip = await this.#cluster.newAddress(victim, holdMs);
      this.#record('readdress', name, `${ip} (was ${old}) in DNS; starting there`);
      await this.#cluster.restart(victim);
      this.#record('restart', name, `reopened its data directory at ${ip}`);
    } finally {
      victim.moving = false;
    }
  }

  /**
   * The victim's power goes: SIGKILL, its disk forgets what was not synced (all of it, or all
   * but a seeded share of the page writes), and after `holdMs` it starts on what the disk kept.
   * Any member may lose power, whatever else is down or lost: an acknowledged write was synced
   * on W members before its OK, and a cut takes back nothing synced (docs/chaos.md).
   */
  async #powerCut(victim: Slot, holdMs: number): Promise<void> {
    const name = victim.host.name;
    const slowMs = this.#rng.pick([...POWER_CUT_SLOW_MS]);
    if (slowMs > 0) {
      const leadMs = this.#rng.between(500, 3000);
      await this.#cluster.slowDisk(victim, slowMs);
      const lead = `${(leadMs / 1000).toFixed(1)} s`;
      this.#record('slow-disk', name, `every sync takes ${slowMs} ms; the power goes in ${lead}`);
      await sleep(leadMs);
      // Being decommissioned meanwhile (which made its disk fast again): it must hand off.
      if (victim.state !== 'member') return;
    }
    await this.#cutPower(victim, holdMs, this.#rng, 'power-cut');
  }

  /** The cut itself: SIGKILL, a seeded share of the unsynced writes kept, back after holdMs. */
  async #cutPower(victim: Slot, holdMs: number, rng: Rng, kind: string): Promise<void> {
    const keep = rng.pick([...POWER_CUT_KEEP]);
    const seed = rng.int(0, 2 ** 31 - 1);
    const r = await this.#cluster.powerCut(victim, seed, keep);
    const lost = `${r.pagesReverted} unsynced page writes and ${r.opsUndone} file operations lost`;
    const kept = keep === 0 ? '' : `, ${r.pagesKept} and ${r.opsKept} kept (keep ${keep})`;
    const hold = (holdMs / 1000).toFixed(1);
    this.#record(kind, victim.host.name, `SIGKILL, ${lost}${kept}; back after ${hold} s`);
    await sleep(holdMs);
    await this.#cluster.restart(victim);
    this.#record('restart', victim.host.name, 'reopened what its disk kept');
  }

  /**
   * Kills the victim and starts it again on a new, empty data directory under its name (a lost
   * disk). Only while no earlier loss is still being refilled (refilledNow): with RF 3 and W 2
   * every acknowledged write is then on another member's disk, whatever else is going on.
   * Otherwise, or when the victim does not answer, a plain kill. Resolves with whether the
   * victim started again on an empty directory (a lost volume, not a plain kill).
   */
  async #loseVolume(victim: Slot, holdMs: number): Promise<boolean> {
    const name = victim.host.name;
    const hold = `${(holdMs / 1000).toFixed(1)} s`;
    const info = await this.#cluster.info(victim);
    const pending = await this.#refilling();
    if (pending !== null || info === null) {
      const why = pending ?? `${name} does not answer`;
      await this.#kill(victim, holdMs, ` (no volume lost: ${why})`);
      return false;
    }
    this.#lost = { slot: victim, epoch: info.ring.epoch };
    await this.#cluster.kill(victim);
    this.#record('lose-volume', name, `SIGKILL, back after ${hold} on an empty data directory`);
    await sleep(holdMs);
    if (await this.#cluster.restartEmpty(victim)) {
      this.#record('restart', name, 'started on a new, empty data directory');
      return true;
    }
    this.#lost = null;
    this.#record('restart', name, 'reopened its data directory (restarted meanwhile)');
    return false;
  }

  /**
   * Why the last member whose volume was lost is not refilled yet, or null when it is (or there
   * is none): it answers CLUSTER with no data moving, at a settled epoch at least two above the
   * one it had before (the loss recorded, then a ring settled with it holding data). Its own
   * settled ring records nobody as lost then, itself included.
   */
  async #refilling(): Promise<string | null> {
    const lost = this.#lost;
    if (lost === null) return null;
    const name = lost.slot.host.name;
    const info = await this.#cluster.info(lost.slot);
    if (info === null) return `${name}, not refilled yet, does not answer`;
    if (info.ring.moving || info.ring.epoch < lost.epoch + 2) {
      return `${name} is not refilled yet (epoch ${info.ring.epoch}, moving ${info.ring.moving})`;
    }
    this.#lost = null;
    this.#record('refilled', name, `settled at epoch ${info.ring.epoch}, holding data again`);
    return null;
  }

  /** Cuts the victim (and maybe another member) off from the other members; clients reach all. */
  async #split(victim: Slot, holdMs: number): Promise<void> {
    const others = this.#cluster.members().filter((s) => s !== victim);
    const side = [victim];
    if (others.length >= 4 && this.#rng.next() < 0.5) side.push(this.#rng.pick(others));
    const rest = others.filter((s) => !side.includes(s));
    const cut = await this.#cluster.split(side, rest);
    const names = (g: Slot[]) => g.map((s) => s.host.name).join(',');
    this.#record(
      'split',
      names(side),
      `cut from ${names(rest)} for ${(holdMs / 1000).toFixed(1)} s`,
    );
    await sleep(holdMs);
    await this.#cluster.heal(cut);
    this.#record('heal-split', names(side), 'reachable again');
  }

  /**
   * Cuts the victim off from one or two other members (at most all but one: it keeps a peer it
   * reaches); false when it has fewer than two others. Those others are not faulted yet.
   */
  async #partialSplit(victim: Slot, holdMs: number): Promise<boolean> {
    const others = this.#free().filter((s) => s !== victim);
    const peers = this.#cluster.members().filter((s) => s !== victim).length;
    if (others.length === 0 || peers < 2) return false;
    const far = [this.#rng.pick(others)];
    const second = others.filter((s) => s !== far[0]);
    if (peers >= 4 && second.length > 0 && this.#rng.next() < 0.5) far.push(this.#rng.pick(second));
    for (const s of far) this.#busy.add(s);
    try {
      const cut = await this.#cluster.split([victim], far);
      const names = far.map((s) => s.host.name).join(',');
      const hold = `${(holdMs / 1000).toFixed(1)} s`;
      this.#record('partial-split', victim.host.name, `cut from ${names} only, for ${hold}`);
      await sleep(holdMs);
      await this.#cluster.heal(cut);
      this.#record('heal-partial', victim.host.name, `reaches ${names} again`);
      return true;
    } finally {
      for (const s of far) this.#busy.delete(s);
    }
  }

  /**
   * Loses the packets one way between the victim and one, two or all of the other members not
   * faulted yet (claimed meanwhile, as a partial split's): the victim's to them, or theirs to
   * it, while the other direction, clients and DNS go on. False when no other member is free.
   */
  async #oneWay(victim: Slot, holdMs: number): Promise<boolean> {
    const others = this.#free().filter((s) => s !== victim);
    if (others.length === 0) return false;
    // One, two or all of them; two when there is only one: that one (seed 32006 drew 2 of 1).
    const n = Math.min(this.#rng.pick([1, 2, others.length]), others.length);
    const far: Slot[] = [];
    while (far.length < n) far.push(this.#rng.pick(others.filter((s) => !far.includes(s))));
    const outbound = this.#rng.next() < 0.5;
    for (const s of far) this.#busy.add(s);
    try {
      const cut = outbound
        ? await this.#cluster.cutOneWay([victim], far)
        : await this.#cluster.cutOneWay(far, [victim]);
      const names = far.map((s) => s.host.name).join(',');
      const name = victim.host.name;
      const what = outbound ? `${name}'s packets to ${names}` : `packets from ${names} to ${name}`;
      const back = outbound ? 'theirs to it' : 'its to them';
      const hold = `${(holdMs / 1000).toFixed(1)} s`;
      this.#record('one-way', name, `${what} lost, ${back} delivered, for ${hold}`);
      await sleep(holdMs);
      await this.#cluster.heal(cut);
      this.#record('heal-one-way', name, `${what} delivered again`);
      return true;
    } finally {
      for (const s of far) this.#busy.delete(s);
    }
  }

  /** Adds a member when at the base size, otherwise decommissions a random member. */
  async #changeMembership(): Promise<void> {
    // A decommission that did not finish by its deadline is tried again first: its name is free
    // for the next join only once it finished.
    const stuck = this.#cluster.members().find((m) => m.state === 'leaving');
    if (stuck) {
      await this.#decommission(stuck);
      return;
    }
    const members = this.#cluster.clientTargets();
    if (members.length <= this.#baseMembers) {
      try {
        const joined = await this.#cluster.join();
        // A slot that ran before is a decommissioned member's name, back with an empty directory.
        const reused = joined !== null && joined.generation > 1;
        const how = reused ? 'started empty under a decommissioned name' : 'started empty';
        if (joined) this.#record('join', joined.host.name, `${how}, added to DNS`);
        if (reused) this.#reused = true;
      } catch (err) {
        this.#record('join', '?', String(err), false);
      }
      return;
    }
    // A member being moved to a new address is left to finish: a decommission restarts a killed
    // member first, which would start it at the address it is leaving.
    const movable = members.filter((m) => !m.moving);
    if (movable.length === 0) return;
    const leaving = this.#rng.pick(movable);
    leaving.state = 'leaving'; // no new point fault picks it from now on
    this.#record('decommission', leaving.host.name, 'POST /admin/decommission');
    await this.#decommission(leaving);
  }

  async #decommission(leaving: Slot): Promise<void> {
    const name = leaving.host.name;
    const started = this.#now();
    try {
      // A fault in progress on the leaving node is undone first: it must be able to hand off.
      this.#cluster.resume(leaving);
      await this.#cluster.reconnect(leaving);
      await this.#cluster.fastLink(leaving);
      if (leaving.skewMs !== 0) this.#cluster.jumpClock(leaving, 0);
      this.#cluster.freeDisk(leaving);
      await this.#cluster.fastDisk(leaving);
      await this.#cluster.healDisk(leaving);
      await this.#cluster.restart(leaving);
      // With power loss, half the members lose power while they hand off: the decommission
      // they accepted must go on from what their disk kept (docs/chaos.md).
      // With every fault first, the first decommission's member always does.
      const rng = this.#leavingRng;
      const draw = rng.next();
      const cut = this.#everyFaultFirst && !this.#leavingCut ? true : draw < LEAVING_CUT_SHARE;
      const midway =
        this.#powerLoss && cut
          ? async (s: Slot) => {
              this.#leavingCut = true;
              await sleep(
                rng.between(LEAVING_CUT_AFTER_S[0] * 1000, LEAVING_CUT_AFTER_S[1] * 1000),
              );
              const [lo, hi] = HOLD['power-cut'];
              await this.#cutPower(s, rng.between(lo * 1000, hi * 1000), rng, 'power-cut-leaving');
            }
          : undefined;
      await this.#cluster.decommission(leaving, started + DECOMMISSION_MS, midway);
      // A lost volume it was refilling is nobody's now: its name may join again, empty, before
      // the next loss is drawn, and that new member is not the one refilling.
      if (this.#lost?.slot === leaving) this.#lost = null;
      const took = ((this.#now() - started) / 1000).toFixed(1);
      this.#record('decommissioned', name, `handed off in ${took} s, left DNS, stopped`);
    } catch (err) {
      const why = err instanceof Error ? err.message : String(err);
      this.#record('decommission', name, `not done in ${DECOMMISSION_MS / 1000} s: ${why}`, false);
    }
  }
}
