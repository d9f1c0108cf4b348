// Chaos run options (command line) and the seeded random generator every decision comes from.

export interface ChaosOptions {
  /** How long the workload and the nemesis run, in seconds. */
  readonly durationS: number;
  /** Members at the start (3..5); one more slot exists for the member the nemesis adds. */
  readonly nodes: number;
  /** Concurrent clients, each doing one operation at a time. */
  readonly clients: number;
  readonly seed: number;
  /** Keys k00..k<n-1>: few, so that operations conflict. */
  readonly keys: number;
  /** Seconds of quiet (healed, no load) before the final reads. */
  readonly quietS: number;
  /** Seconds from one membership change's end to the next (a join or a decommission). */
  readonly membershipEveryS: number;
  /** Point faults at the same time (each on its own node). */
  readonly maxFaults: number;
  /** Keep the work directory (node logs, history.json) instead of removing it. */
  readonly keep: boolean;
  /** Runs of consecutive seeds (seed, seed + 1, ...), stopping at the first that fails. */
  readonly seeds: number;
  /**
   * Go on past durationS (faults, membership changes, clients), at most REUSE_EXTRA_S more, until
   * a decommissioned member's name has joined again with an empty data directory.
   */
  readonly reuseName: boolean;
  /**
   * Adds the fault `lose-volume`: a member killed and started again on a new, empty data
   * directory under its name (a lost disk or PVC), only while no earlier loss is still being
   * refilled (otherwise the draw is a plain kill), so that one member's data is missing at a time.
   */
  readonly loseVolumes: boolean;
  /**
   * Adds the fault `slow-link`: a member's link limited to 128 kbit/s to 2 Mbit/s and losing 2 to
   * 20% of its packets, both ways, for 3 to 12 s (a gray failure: slow, not cut).
   */
  readonly slowLinks: boolean;
  /**
   * Adds the fault `clock-jump`: a member's wall clock stepped 1, 2 or 5 s ahead or back (beyond
   * --max-clock-offset-ms) for 1 to 8 s, then back in step, as NTP stepping a clock does.
   */
  readonly clockJumps: boolean;
  /**
   * Adds the fault `disk-full`: a member's data directory (each on a small tmpfs of its own then)
   * filled until less than --min-free-disk-bytes is free, for 2 to 10 s, then freed.
   */
  readonly fullDisks: boolean;
  /**
   * Adds the fault `power-cut`: every data directory is on powerlossfs (test/powerloss/go), and a
   * member is killed, loses what it wrote but did not sync (all of it, or all but a seeded 50 or
   * 90% of the page writes), and starts again on what its disk kept.
   */
  readonly powerLoss: boolean;
  /**
   * Adds the fault `disk-errors`: every data directory on powerlossfs (as with powerLoss), and
   * every sync of a member's disk failing with EIO for 2 to 10 s (writes fail; reads go on).
   */
  readonly diskErrors: boolean;
  /**
   * Bytes of every PUT's value (its id, a dot and a filling; 0: the id alone), so that large
   * values go through hints, streams, anti-entropy and scans under the faults.
   */
  readonly valueBytes: number;
  /**
   * The first point faults are every kind enabled, once each in a seeded order, and only then
   * drawn by weight: a short run (CI's) has every kind, which weighted draws leave to chance.
   */
  readonly everyFaultFirst: boolean;
  /**
   * A member whose clock is stepped, whose disk is full or whose link is slow is, in half of
   * those faults, SIGKILLed partway through and started again while the fault holds (a host that
   * reboots with its clock off, a pod restarted on a full disk or behind a bad link): two faults
   * on one member, which the point faults (each on a member of its own) never make.
   */
  readonly restartFaulted: boolean;
  /**
   * Adds the fault `new-address`: a member killed, out of DNS for a moment, and started again on
   * its data directory at a new IP address, published in DNS before it answers there (a
   * StatefulSet pod rescheduled: a new pod IP each time).
   */
  readonly newAddresses: boolean;
  /**
   * Adds the fault `partial-split`: a member's links to one or two other members cut (both ways)
   * for 1 to 7 s while it still reaches the rest, clients and DNS: members then disagree on who
   * is up (reachability that is not transitive), which `split` (a side cut from all the others)
   * never makes.
   */
  readonly partialSplits: boolean;
  /**
   * Adds the fault `one-way`: one direction of a member's links to one, two or all other members
   * lost for 1 to 7 s, the other delivered (an asymmetric route): a peer gets requests and acts
   * on them while its answers are lost, or the reverse; every other cut loses both ways.
   */
  readonly oneWayLinks: boolean;
  /**
   * A third of the PUTs are `SETEX key <1..3 s> value`: values that expire while the faults go
   * on, checked against their expiry (a value read after it passed is `expired`; an absence after
   * it may be).
   */
  readonly expiringWrites: boolean;
  /**
   * The nodes' --read-quorum and --write-quorum (RF is 3): 2 and 2 by default; R + W must be over
   * 3 (the checker takes every read to see every acknowledged write) and W at least 2 (a lost
   * volume or a power cut may take the one copy of a write acknowledged with W = 1). R = 1 with
   * W = 3 has reads answered by one replica, the coordinator's own copy when it owns the key:
   * the ring fence's case (a node answers alone only while its ring is known current).
   */
  readonly readQuorum: number;
  readonly writeQuorum: number;
}

export const DEFAULT_OPTIONS: ChaosOptions = {
  durationS: 60,
  nodes: 3,
  clients: 8,
  seed: 1,
  keys: 30,
  quietS: 3,
  membershipEveryS: 12,
  maxFaults: 1,
  keep: false,
  seeds: 1,
  reuseName: false,
  loseVolumes: false,
  slowLinks: false,
  clockJumps: false,
  fullDisks: false,
  powerLoss: false,
  diskErrors: false,
  valueBytes: 0,
  everyFaultFirst: false,
  restartFaulted: false,
  newAddresses: false,
  partialSplits: false,
  oneWayLinks: false,
  expiringWrites: false,
  readQuorum: 2,
  writeQuorum: 2,
};

const USAGE = `Usage: npm run chaos -- [options]
  --duration-s N          workload and nemesis time in seconds (default 60)
  --nodes N               members at the start, 3..7 (default 3)
  --clients N             concurrent clients (default 8)
  --seed S                seed of the nemesis schedule and the workload (default: random)
  --keys N                size of the key space (default 30)
  --quiet-s N             quiet seconds before the final reads (default 3)
  --membership-every-s N  seconds from a join or decommission to the next (default 12)
  --max-faults N          point faults at once, each on its own node (default 1)
  --keep                  keep the work directory (node logs, history.json)
  --seeds N               run seeds S, S+1, ... S+N-1 one after another, stopping at the first
                          failure (its work directory is always kept) (default 1)
  --reuse-name            go on past --duration-s (at most 180 s more) until a decommissioned
                          member's name joined again, empty (a slow machine gets there late)
  --lose-volumes          add the fault lose-volume: a member killed and started again on a new,
                          empty data directory under its name, only while no earlier loss is
                          still being refilled (one member's data missing at a time)
  --slow-links            add the fault slow-link: a member's link slow (128 kbit/s to 2 Mbit/s)
                          and lossy (2 to 20% of packets dropped), both ways, for 3 to 12 s
  --clock-jumps           add the fault clock-jump: a member's wall clock stepped 1, 2 or 5 s
                          ahead or back for 1 to 8 s, then back in step (nodes run with a
                          steppable clock, test/helpers/skewed-clock.ts)
  --full-disks            add the fault disk-full: a member's data directory (each on a 256 MiB
                          tmpfs of its own) filled to 32 MiB free, below the nodes'
                          --min-free-disk-bytes, for 2 to 10 s, then freed
  --power-loss            add the fault power-cut: every data directory on powerlossfs (a FUSE
                          filesystem, built with Go), and a member SIGKILLed, its unsynced writes
                          dropped (all, or all but a seeded 50 or 90% of the page writes), then
                          started again on what its disk kept
  --disk-errors           add the fault disk-errors: every data directory on powerlossfs, and
                          every sync of a member's disk failing with EIO for 2 to 10 s
  --value-bytes N         bytes of every PUT's value, up to 1000000 (default: the writer's id
                          and sequence alone, a few bytes); checked whole when read back
  --every-fault-first     the first faults are every kind enabled, once each (seeded order),
                          then drawn by weight: a short run still has every kind
  --restart-faulted       half the clock jumps, full disks and slow links (with their options)
                          have their member SIGKILLed partway through and started again while
                          the fault holds: it starts with its clock off, on a full disk, or
                          behind a slow link
  --new-addresses         add the fault new-address: a member killed, out of DNS for 0.3 to 5 s,
                          then started again on its data directory at a new IP address, listed
                          in DNS before it answers there (a pod rescheduled)
  --partial-splits        add the fault partial-split: a member cut off from one or two other
                          members only, for 1 to 7 s, still reaching the rest (and clients and
                          DNS): members disagree on who is up
  --one-way-links         add the fault one-way: a member's packets to one, two or all other
                          members lost (or theirs to it) for 1 to 7 s, the other way delivered
  --expiring-writes       a third of the PUTs are SETEX with 1 to 3 s to live: values expire
                          under the faults, and none may be read once its expiry passed
  --read-quorum N         the nodes' --read-quorum, 1..3 (default 2)
  --write-quorum N        the nodes' --write-quorum, 2..3 (default 2); R + W must be over 3 (RF):
                          1 and 3 has reads answered by one replica alone`;

/** Parses argv; throws an Error with the usage text on a bad option. */
export function parseOptions(argv: readonly string[]): ChaosOptions | 'help' {
  const o: { -readonly [K in keyof ChaosOptions]: ChaosOptions[K] } = {
    ...DEFAULT_OPTIONS,
    seed: Math.floor(Math.random() * 2 ** 31),
  };
  const ints: Record<string, [keyof ChaosOptions, number, number]> = {
    '--duration-s': ['durationS', 1, 86_400],
    '--nodes': ['nodes', 3, 7],
    '--clients': ['clients', 1, 64],
    '--seed': ['seed', 0, 2 ** 31],
    '--keys': ['keys', 1, 100],
    '--quiet-s': ['quietS', 0, 600],
    '--membership-every-s': ['membershipEveryS', 1, 3600],
    '--max-faults': ['maxFaults', 1, 5],
    '--seeds': ['seeds', 1, 10_000],
    '--value-bytes': ['valueBytes', 0, 1_000_000],
    '--read-quorum': ['readQuorum', 1, 3],
    '--write-quorum': ['writeQuorum', 2, 3],
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--help' || arg === '-h') return 'help';
    const flags: Record<
      string,
      | 'keep'
      | 'reuseName'
      | 'loseVolumes'
      | 'slowLinks'
      | 'clockJumps'
      | 'fullDisks'
      | 'powerLoss'
      | 'diskErrors'
      | 'everyFaultFirst'
      | 'restartFaulted'
      | 'newAddresses'
      | 'partialSplits'
      | 'oneWayLinks'
      | 'expiringWrites'
    > = {
      '--keep': 'keep',
      '--reuse-name': 'reuseName',
      '--lose-volumes': 'loseVolumes',
      '--slow-links': 'slowLinks',
      '--clock-jumps': 'clockJumps',
      '--full-disks': 'fullDisks',
      '--power-loss': 'powerLoss',
      '--disk-errors': 'diskErrors',
      '--every-fault-first': 'everyFaultFirst',
      '--restart-faulted': 'restartFaulted',
      '--new-addresses': 'newAddresses',
      '--partial-splits': 'partialSplits',
      '--one-way-links': 'oneWayLinks',
      '--expiring-writes': 'expiringWrites',
    };
    const on = Object.hasOwn(flags, arg) ? flags[arg] : undefined;
    if (on !== undefined) {
      o[on] = true;
      continue;
    }
    const [flag, inline] = arg.includes('=') ? arg.split('=', 2) : [arg, undefined];
    const spec = flag !== undefined && Object.hasOwn(ints, flag) ? ints[flag] : undefined;
    const raw = inline ?? argv[++i];
    const n = Number(raw);
    if (!spec || !Number.isInteger(n) || n < spec[1] || n > spec[2]) {
      const why = spec ? `${flag} takes an integer ${spec[1]}..${spec[2]}` : `unknown ${arg}`;
      throw new Error(`chaos: ${why}\n${USAGE}`);
    }
    (o as Record<string, unknown>)[spec[0]] = n;
  }
  if (o.readQuorum + o.writeQuorum <= 3) {
    throw new Error(
      `chaos: --read-quorum ${o.readQuorum} and --write-quorum ${o.writeQuorum} do not overlap on 3 replicas (R + W must be over 3)\n${USAGE}`,
    );
  }
  return o;
}

export { USAGE };

/** A small deterministic generator (mulberry32) with the helpers the run needs. */
export class Rng {
  #state: number;

  constructor(seed: number) {
    this.#state = seed >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    this.#state = (this.#state + 0x6d2b79f5) >>> 0;
    let t = this.#state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /**
   * Another generator seeded from this one's state, without advancing it: draws for a new kind
   * of event that leave the schedule of the draws already made from this one as it was.
   */
  branch(salt: number): Rng {
    return new Rng(this.#state ^ salt);
  }

  /** Integer in [min, max]. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  /** Uniform in [min, max). */
  between(min: number, max: number): number {
    return min + this.next() * (max - min);
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('rng: pick from nothing');
    return items[Math.floor(this.next() * items.length)]!;
  }

  /** A name by weight: `{ put: 4, get: 3 }`. */
  weighted<K extends string>(weights: Readonly<Record<K, number>>): K {
    const entries = Object.entries(weights) as [K, number][];
    let r = this.next() * entries.reduce((s, [, w]) => s + w, 0);
    for (const [k, w] of entries) {
      r -= w;
      if (r < 0) return k;
    }
    return entries[entries.length - 1]![0];
  }

  /** A new generator derived from this one (so one consumer's draws do not shift another's). */
  fork(): Rng {
    return new Rng(Math.floor(this.next() * 2 ** 32));
  }
}
