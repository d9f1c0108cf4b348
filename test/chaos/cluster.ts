// The chaos cluster: kvstore processes in their own network namespaces, members listed by a test DNS server.

import { execFile } from 'node:child_process';
import { createWriteStream, mkdirSync, rmSync, statfsSync, type WriteStream } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { adminCall } from '../../src/admin/index.ts';
import { EXIT_STORAGE_FAILED } from '../../src/lifecycle/index.ts';
import { startDnsServer, type TestDnsServer } from '../helpers/dns-server.ts';
import { ipCommand, type LanHost, shapeLink } from '../helpers/netns.ts';
import { type NodeProcess, startNodeProcess } from '../helpers/node-process.ts';
import { type CutReport, PowerlossDisk } from '../helpers/powerloss.ts';
import { setClockSkew, skewedClockFile } from '../helpers/skewed-clock.ts';
import { type Link, LinkCuts } from './cuts.ts';

/** The headless-Service-like name whose A records list the members. */
export const SERVICE = 'kvstore.chaos.test';
export const CLIENT_PORT = 8081;
export const HTTP_PORT = 9090;
/**
 * Every member runs with this cluster secret, as a KVCluster does by default: peer connections
 * authenticate (challenge and response) through every kill, pause and cut, and the harness's own
 * admin calls and final reads prove it too.
 */
export const CLUSTER_SECRET = 'chaos-cluster-secret';
export const PEER_PORT = 7946;
/**
 * With `--full-disks`: each data directory is on a tmpfs of its own this large, and a full disk
 * leaves DISK_LEFT_BYTES free: below the nodes' --min-free-disk-bytes (64 MiB by default), so
 * they refuse writes, and above what LMDB and the log need to finish what they started.
 */
const DISK_BYTES = 256 * 1024 * 1024;
const DISK_LEFT_BYTES = 32 * 1024 * 1024;
const run = promisify(execFile);
/**
 * A node's exit on a failed sync of LMDB's file comes with its next commit (about a second) after
 * the sync failed; one this long after the disk healed is still the disk's.
 */
const DISK_EXIT_GRACE_MS = 3000;
/** newAddress's addresses start here in the /24 (createLan's hosts are .2 to .10). */
const FIRST_NEW_ADDRESS = 100;
/** A MAC no interface has: a neighbour entry pointing at it silently drops the traffic. */
const NOWHERE = '02:00:00:00:de:ad';

/** idle: no process, not in DNS; member: in DNS; leaving: being decommissioned. */
export type SlotState = 'idle' | 'member' | 'leaving';

export interface Slot {
  /** Its host; its address changes with newAddress (a pod back on a new IP). */
  host: LanHost;
  state: SlotState;
  /** Out of DNS while a member (newAddress: between its old address and its new one). */
  unlisted: boolean;
  /** Being moved to a new address (killed, readdressed, started): no decommission picks it. */
  moving: boolean;
  /** The running process; null when idle or killed. */
  proc: NodeProcess | null;
  dataDir: string;
  /**
   * The directory its data directory's disk lives in: with small disks a tmpfs (the ballast of
   * fillDisk beside), with power loss powerlossfs's store and mount point (`mnt/data` the data).
   */
  diskDir: string;
  /** Its powerlossfs disk (`--power-loss`), mounted while it runs; null otherwise. */
  disk: PowerlossDisk | null;
  generation: number;
  paused: boolean;
  isolated: boolean;
  /** Its link is slow and lossy (slowLink) until fastLink. */
  slowed: boolean;
  /** How far its wall clock is off (jumpClock), in ms; 0 when in step. */
  skewMs: number;
  /** Its data directory's file system is full (fillDisk) until freeDisk. */
  diskFull: boolean;
  /** Every sync of its powerlossfs disk waits (slowDisk) until fastDisk or a power cut. */
  diskSlow: boolean;
  /** Every sync of its powerlossfs disk fails with EIO (failDisk) until healDisk or a power cut. */
  diskErrors: boolean;
  /** When its disk last stopped failing (healDisk, a power cut), on the run's clock; 0: never. */
  diskHealedAt: number;
  /**
   * Its node exited with EXIT_STORAGE_FAILED while its disk failed (or just after): the node's
   * own decision on a failed sync of LMDB's file, not a crash. The nemesis restarts it once the
   * disk works again (as a kubelet would); takeStorageExit() reads and clears it.
   */
  storageExited: boolean;
}

/** What the nodes run on: clocks the harness can step, data directories on small disks. */
export interface ClusterSetup {
  /** Nodes start with a clock jumpClock can step (`--clock-jumps`). */
  readonly steppableClocks?: boolean;
  /** Each data directory is a tmpfs of DISK_BYTES that fillDisk can fill (`--full-disks`). */
  readonly smallDisks?: boolean;
  /**
   * powerlossfs's binary: each data directory is on a powerlossfs disk of its own, which
   * powerCut cuts (`--power-loss`). With small disks too, the disk's backing files are on the
   * tmpfs, so that filling the tmpfs fills it.
   */
  readonly powerlossfs?: string;
  /** The nodes' --read-quorum and --write-quorum (their defaults, 2 and 2, when absent). */
  readonly quorums?: { readonly read: number; readonly write: number };
}

/** A node process that exited without the run asking it to. */
export interface Crash {
  readonly node: string;
  readonly t: number;
  readonly exit: number | string;
  readonly stderr: string;
}

export class ChaosCluster {
  readonly slots: Slot[];
  readonly crashes: Crash[] = [];
  readonly #dns: TestDnsServer;
  readonly #workDir: string;
  readonly #now: () => number;
  readonly #logs = new Map<string, WriteStream>();
  readonly #expectedExit = new Set<NodeProcess>();
  readonly #stderr = new Map<NodeProcess, string>();
  readonly #starting = new Map<Slot, Promise<void>>();
  /** Links cut by splits (a neighbour entry pointing nowhere in the sender's namespace). */
  readonly #cuts = new LinkCuts((link, cut) => this.#neighbour(link, cut));
  /** Nodes start with a clock the harness can step (jumpClock): with `--clock-jumps` only. */
  readonly #steppableClocks: boolean;
  /** Data directories are on tmpfs mounts of their own (fillDisk): with `--full-disks` only. */
  readonly #smallDisks: boolean;
  readonly #mounts: string[] = [];
  /** powerlossfs's binary: data directories on disks that lose power (powerCut), or null. */
  readonly #powerlossfs: string | null;
  /** The nodes' --read-quorum and --write-quorum, or null for their defaults. */
  readonly #quorums: { readonly read: number; readonly write: number } | null;
  /** Power cuts in progress (kill, cut, the disk mounted again): a restart waits for them. */
  readonly #powerCuts = new Map<Slot, Promise<unknown>>();
  /** Addresses newAddress gave so far: each new one is `<subnet>.<FIRST_NEW_ADDRESS + n>`, never reused. */
  #newAddresses = 0;

  private constructor(
    slots: Slot[],
    dns: TestDnsServer,
    workDir: string,
    now: () => number,
    setup: ClusterSetup,
  ) {
    this.slots = slots;
    this.#dns = dns;
    this.#workDir = workDir;
    this.#now = now;
    this.#steppableClocks = setup.steppableClocks ?? false;
    this.#smallDisks = setup.smallDisks ?? false;
    this.#powerlossfs = setup.powerlossfs ?? null;
    this.#quorums = setup.quorums ?? null;
  }

  /** Starts the DNS server on `ctl` (this process's namespace) and the first `n` members. */
  static async start(
    hosts: readonly LanHost[],
    ctl: LanHost,
    n: number,
    workDir: string,
    now: () => number,
    setup: ClusterSetup = {},
  ): Promise<ChaosCluster> {
    const dns = await startDnsServer(ctl.ip);
    const slots = hosts.map((host) => ({
      host,
      state: 'idle' as SlotState,
      unlisted: false,
      moving: false,
      proc: null,
      dataDir: '',
      diskDir: '',
      disk: null,
      generation: 0,
      paused: false,
      isolated: false,
      slowed: false,
      skewMs: 0,
      diskFull: false,
      diskSlow: false,
      diskErrors: false,
      diskHealedAt: 0,
      storageExited: false,
    }));
    const cluster = new ChaosCluster(slots, dns, workDir, now, setup);
    for (const s of slots.slice(0, n)) s.state = 'member';
    cluster.#publish();
    await Promise.all(slots.slice(0, n).map((s) => cluster.#spawn(s, true)));
    return cluster;
  }

  /** Members (in DNS), leaving ones included. */
  members(): Slot[] {
    return this.slots.filter((s) => s.state !== 'idle');
  }

  /** Members clients may send to (not leaving); killed ones too: clients do not know. */
  clientTargets(): Slot[] {
    return this.slots.filter((s) => s.state === 'member');
  }

  /** Members a point fault may hit: running, not leaving, not already faulted. */
  healthy(): Slot[] {
    return this.clientTargets().filter(
      (s) =>
        s.proc !== null &&
        !s.paused &&
        !s.isolated &&
        !s.slowed &&
        s.skewMs === 0 &&
        !s.diskFull &&
        !s.diskSlow &&
        !s.diskErrors &&
        this.#cuts.cutFrom(s.host.name).length === 0,
    );
  }

  get dnsAddress(): string {
    return `${this.#dns.host}:${this.#dns.port}`;
  }

  async kill(s: Slot): Promise<void> {
    const proc = s.proc;
    if (!proc) return;
    this.#expectedExit.add(proc);
    s.proc = null;
    s.paused = false;
    await proc.stop('SIGKILL');
  }

  /**
   * The power goes on the slot's machine: SIGKILL, then its disk loses what was not synced (each
   * unsynced page write kept with probability `keep`, drawn with `seed`) and is mounted again,
   * as the machine coming back. restart() then starts it on what the disk kept (a restart
   * meanwhile, as a decommission's, waits for the disk).
   */
  async powerCut(s: Slot, seed: number, keep: number): Promise<CutReport> {
    const disk = s.disk;
    if (!disk) throw new Error('chaos: disks lose power only with --power-loss');
    // Killed first: the process sees no failing disk, it just stops, as when the power goes.
    const cut = this.kill(s).then(async () => {
      const report = await disk.cut(seed, keep);
      await disk.unmount();
      await disk.mount(); // a new powerlossfs process: fast again
      s.diskSlow = false;
      if (s.diskErrors) s.diskHealedAt = this.#now();
      s.diskErrors = false;
      return report;
    });
    this.#powerCuts.set(s, cut);
    try {
      return await cut;
    } finally {
      this.#powerCuts.delete(s);
    }
  }

  /**
   * Makes every sync of the slot's disk wait `ms` (a degraded disk): an O_DSYNC write is
   * durable only when its call returns, so a power cut meanwhile takes back what was in flight.
   */
  async slowDisk(s: Slot, ms: number): Promise<void> {
    if (!s.disk) throw new Error('chaos: disks are slow only with --power-loss');
    s.diskSlow = true;
    await s.disk.slow(ms);
  }

  /** Undoes slowDisk (a disk not mounted, as during a power cut, is fast once mounted again). */
  async fastDisk(s: Slot): Promise<void> {
    if (!s.diskSlow) return;
    await s.disk?.slow(0).catch(() => {});
    s.diskSlow = false;
  }

  /** Makes every sync of the slot's disk fail with EIO (writes fail, reads go on) until healDisk. */
  async failDisk(s: Slot): Promise<void> {
    if (!s.disk) throw new Error('chaos: disks fail only with --disk-errors');
    s.diskErrors = true;
    await s.disk.errors(true);
  }

  /** Undoes failDisk. */
  async healDisk(s: Slot): Promise<void> {
    if (!s.diskErrors) return;
    await s.disk?.errors(false).catch(() => {});
    s.diskErrors = false;
    s.diskHealedAt = this.#now();
  }

  /** Whether the slot's node exited by its own decision on its failing disk (and clears it). */
  takeStorageExit(s: Slot): boolean {
    const exited = s.storageExited;
    s.storageExited = false;
    return exited;
  }

  /** Starts the slot's process again on its data directory (once, when called concurrently). */
  async restart(s: Slot): Promise<void> {
    await this.#powerCuts.get(s)?.catch(() => {});
    const pending = this.#starting.get(s);
    if (pending) return pending;
    if (s.proc !== null || s.state === 'idle') return;
    const start = this.#spawn(s, false).finally(() => this.#starting.delete(s));
    this.#starting.set(s, start);
    return start;
  }

  /**
   * Starts a killed member on a new, empty data directory under its name (its volume lost; the
   * old directory stays in the work directory). False when it was started meanwhile (a
   * decommission restarts a killed member first) or is not a member any more.
   */
  async restartEmpty(s: Slot): Promise<boolean> {
    await this.#powerCuts.get(s)?.catch(() => {});
    if (this.#starting.has(s) || s.proc !== null || s.state === 'idle') return false;
    const start = this.#spawn(s, true).finally(() => this.#starting.delete(s));
    this.#starting.set(s, start);
    await start;
    return true;
  }

  /**
   * A killed member's pod comes back on a new IP, as a StatefulSet pod rescheduled does: its old
   * address leaves DNS at once (the pod deleted), its namespace gets a new address after `goneMs`
   * (the new pod scheduled), which is published at once (`publishNotReadyAddresses`), and the
   * process starts on its data directory after that, so peers resolve an address that answers
   * nothing for as long as the start takes. Returns the new address.
   */
  async newAddress(s: Slot, goneMs: number): Promise<string> {
    s.unlisted = true;
    this.#publish();
    await new Promise((r) => setTimeout(r, goneMs));
    const n = FIRST_NEW_ADDRESS + this.#newAddresses++;
    if (n > 254) throw new Error('chaos: no address left for a new one');
    const ip = `${s.host.ip.split('.').slice(0, 3).join('.')}.${n}`;
    await ipCommand('-n', s.host.ns, 'addr', 'flush', 'dev', 'eth0');
    await ipCommand('-n', s.host.ns, 'addr', 'add', `${ip}/24`, 'dev', 'eth0');
    s.host = { ...s.host, ip };
    s.unlisted = false;
    this.#publish();
    return ip;
  }

  pause(s: Slot): void {
    if (s.proc?.child.pid === undefined) return;
    process.kill(s.proc.child.pid, 'SIGSTOP');
    s.paused = true;
  }

  resume(s: Slot): void {
    if (s.paused && s.proc?.child.pid !== undefined) process.kill(s.proc.child.pid, 'SIGCONT');
    s.paused = false;
  }

  /** Cuts the slot's link: no peer, client or DNS traffic in or out. */
  async isolate(s: Slot): Promise<void> {
    await ipCommand('-n', s.host.ns, 'link', 'set', 'eth0', 'down');
    s.isolated = true;
  }

  async reconnect(s: Slot): Promise<void> {
    if (!s.isolated) return;
    await ipCommand('-n', s.host.ns, 'link', 'set', 'eth0', 'up');
    s.isolated = false;
  }

  /** Makes the slot's link slow and lossy both ways (peers, clients, DNS): see shapeLink. */
  async slowLink(s: Slot, rateKbit: number, lossPct: number): Promise<void> {
    s.slowed = true;
    await shapeLink(s.host, { rateKbit, lossPct });
  }

  async fastLink(s: Slot): Promise<void> {
    if (!s.slowed) return;
    await shapeLink(s.host, null);
    s.slowed = false;
  }

  /**
   * Steps the slot's wall clock to `ms` off the host's (0: back in step), as NTP stepping a
   * clock or a VM resumed with a stale one; the process reads it within CLOCK_FILE_POLL_MS. It
   * stays so across restarts (the host's clock, not the process's).
   */
  jumpClock(s: Slot, ms: number): void {
    if (!this.#steppableClocks)
      throw new Error('chaos: clocks are steppable only with --clock-jumps');
    setClockSkew(this.#clockFile(s), ms);
    s.skewMs = ms;
  }

  /**
   * Fills the file system of the slot's data directory (a tmpfs of its own) until DISK_LEFT_BYTES
   * are free, as another process filling a shared disk does: the node refuses writes.
   */
  async fillDisk(s: Slot): Promise<number> {
    if (!this.#smallDisks) throw new Error('chaos: disks fill only with --full-disks');
    const fs = s.diskDir;
    const st = statfsSync(fs);
    const bytes = Math.max(0, st.bavail * st.bsize - DISK_LEFT_BYTES);
    s.diskFull = true;
    await run('fallocate', ['-l', String(bytes), join(fs, 'ballast')]);
    return bytes;
  }

  /** Frees what fillDisk took. */
  freeDisk(s: Slot): void {
    if (!s.diskFull) return;
    rmSync(join(s.diskDir, 'ballast'), { force: true });
    s.diskFull = false;
  }

  #clockFile(s: Slot): string {
    return join(this.#workDir, `${s.host.name}.clock-skew`);
  }

  /**
   * Drops all traffic between the two groups (both ways); clients and DNS still reach both.
   * Returns the links cut, for heal().
   */
  async split(a: readonly Slot[], b: readonly Slot[]): Promise<Link[]> {
    const links: Link[] = [];
    for (const x of a) {
      for (const y of b) links.push([x.host.name, y.host.name], [y.host.name, x.host.name]);
    }
    await this.#cuts.cut(links);
    return links;
  }

  /**
   * Drops the traffic from every member of `from` to every member of `to`, one way: the other
   * way, clients and DNS still get through. Returns the links cut, for heal().
   */
  async cutOneWay(from: readonly Slot[], to: readonly Slot[]): Promise<Link[]> {
    const links = from.flatMap((x) => to.map((y): Link => [x.host.name, y.host.name]));
    await this.#cuts.cut(links);
    return links;
  }

  /** Gives back the links one split took, except those another split still holds. */
  async heal(links: readonly Link[]): Promise<void> {
    await this.#cuts.heal(links);
  }

  /** Removes every cut out of the slot, whichever split made it. */
  async unsplit(s: Slot): Promise<void> {
    await this.#cuts.healFrom(s.host.name);
  }

  /** Points `from`'s neighbour entry for `to` nowhere (cut), or deletes it (the next packet resolves it again). */
  async #neighbour([from, to]: Link, cut: boolean): Promise<void> {
    const ns = this.#slot(from).host.ns;
    const ip = this.#slot(to).host.ip;
    if (cut) {
      await ipCommand(
        '-n',
        ns,
        'neigh',
        'replace',
        ip,
        'lladdr',
        NOWHERE,
        'nud',
        'permanent',
        'dev',
        'eth0',
      );
      return;
    }
    try {
      await ipCommand('-n', ns, 'neigh', 'del', ip, 'dev', 'eth0');
    } catch (err) {
      // Already gone is fine; any other failure would leave the link cut for good.
      if (!/No such file or directory|Cannot find/i.test(String(err))) throw err;
    }
  }

  #slot(name: string): Slot {
    const s = this.slots.find((x) => x.host.name === name);
    if (!s) throw new Error(`chaos: no slot ${name}`);
    return s;
  }

  /** Undoes every fault: resumes, reconnects, removes cuts, restarts killed members. */
  async healAll(): Promise<void> {
    for (const s of this.slots) {
      this.resume(s);
      await this.reconnect(s);
      await this.unsplit(s);
      await this.fastLink(s);
      if (s.skewMs !== 0) this.jumpClock(s, 0);
      this.freeDisk(s);
      await this.fastDisk(s);
      await this.healDisk(s);
    }
    // A member that cannot start again is in `crashes` (a node-failure in the summary), and the
    // run goes on to its checks rather than stopping here.
    await Promise.all(this.members().map((s) => this.restart(s).catch(() => {})));
  }

  /** Adds a member on an idle slot with an empty data directory; null when none is idle. */
  async join(): Promise<Slot | null> {
    const s = this.slots.find((x) => x.state === 'idle');
    if (!s) return null;
    s.state = 'member';
    this.#publish();
    await this.#spawn(s, true);
    return s;
  }

  /**
   * Decommissions a member: the node hands its data off and reports `decommissioned`, then it
   * leaves DNS and is stopped (SIGTERM). Throws when it does not finish by `deadline` (ms on the
   * run clock); the slot stays `leaving` then, and may be finished by calling this again.
   * `midway` runs once, when the member first reports `decommissioning` (the chaos's power cut
   * while it hands off); the poll goes on after it.
   */
  async decommission(
    s: Slot,
    deadline: number,
    midway?: (s: Slot) => Promise<void>,
  ): Promise<void> {
    s.state = 'leaving';
    const target = adminTarget(s);
    let status = '';
    let midwayDone = midway === undefined;
    while (status !== 'decommissioned') {
      if (this.#now() > deadline) throw new Error(`${s.host.name} is still '${status}'`);
      if (status === 'decommissioning' && !midwayDone) {
        // Inline, so the SIGTERM below never races it: once it returns the member runs again.
        midwayDone = true;
        await midway?.(s);
      }
      const method = status === '' ? 'POST' : 'GET';
      const res = await adminCall(target, method, '/admin/decommission').catch(() => null);
      if (res?.status === 409) {
        throw new Error(`${s.host.name} refused: ${JSON.stringify(res.body)}`);
      }
      if (res && res.status >= 200 && res.status < 300) {
        status = (res.body as { status: string }).status;
      }
      if (status !== 'decommissioned') await new Promise((r) => setTimeout(r, 200));
    }
    s.state = 'idle';
    this.#publish();
    const proc = s.proc;
    s.proc = null;
    if (proc) {
      this.#expectedExit.add(proc);
      const code = await proc.stop('SIGTERM');
      if (code !== 0) this.#crash(s, proc, code);
    }
  }

  /** The node's CLUSTER answer over its HTTP port; null when it does not answer. */
  async info(s: Slot): Promise<NodeInfo | null> {
    try {
      const res = await adminCall(adminTarget(s), 'GET', '/admin/cluster');
      return res.status === 200 ? (res.body as NodeInfo) : null;
    } catch {
      return null;
    }
  }

  /** Stops every process (SIGKILL), the DNS server, and closes the log files. */
  async destroy(): Promise<void> {
    for (const s of this.slots) {
      this.resume(s);
      await this.kill(s);
    }
    await this.#dns.close();
    for (const log of this.#logs.values()) log.end();
    // The disks' files stay in the work directory (kept with --keep): unmounted only.
    for (const s of this.slots) await s.disk?.unmount();
    for (const dir of this.#mounts) {
      await run('umount', ['-l', dir]).catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    }
  }

  #publish(): void {
    this.#dns.setA(
      SERVICE,
      this.members()
        .filter((s) => !s.unlisted)
        .map((s) => s.host.ip),
    );
  }

  async #spawn(s: Slot, fresh: boolean): Promise<void> {
    if (fresh) await this.#newDataDir(s, `${s.host.name}.${++s.generation}`);
    let log = this.#logs.get(s.host.name);
    if (!log) {
      log = createWriteStream(join(this.#workDir, `${s.host.name}.log`), { flags: 'a' });
      this.#logs.set(s.host.name, log);
    }
    if (this.#steppableClocks && s.skewMs === 0) setClockSkew(this.#clockFile(s), 0);
    const clock = this.#steppableClocks ? skewedClockFile(this.#clockFile(s)) : [];
    const proc = await startNodeProcess({
      dataDir: s.dataDir,
      command: ['ip', 'netns', 'exec', s.host.ns, ...clock],
      args: nodeArgs(s.host, this.dnsAddress, this.#quorums),
    }).catch((err: unknown) => {
      this.crashes.push({ node: s.host.name, t: this.#now(), exit: 'start', stderr: String(err) });
      throw err;
    });
    for (const entry of proc.logs) log.write(`${JSON.stringify(entry)}\n`);
    proc.child.stdout!.on('data', (d: Buffer) => log.write(d));
    this.#stderr.set(proc, '');
    proc.child.stderr!.on('data', (d: Buffer) => {
      this.#stderr.set(proc, `${this.#stderr.get(proc)}${d}`.slice(-4000));
    });
    proc.child.once('exit', (code, signal) => {
      if (this.#expectedExit.has(proc)) {
        // asked for
      } else if (code === EXIT_STORAGE_FAILED && this.#diskFailing(s)) {
        // The node's own exit on a failed sync of LMDB's file (docs/storage.md): expected of a
        // failing disk, as long as the restart replays its log (the checker sees to the data).
        s.storageExited = true;
      } else this.#crash(s, proc, code ?? signal ?? -1);
      if (s.proc === proc) s.proc = null;
    });
    s.proc = proc;
  }

  /**
   * Gives the slot a new data directory: `name` in the work directory; with small disks, `data`
   * on a tmpfs of its own (the ballast beside); with power loss, `mnt/data` on a powerlossfs disk
   * of its own (its files in `disk`, on that tmpfs with small disks). A disk the slot had before
   * (a lost volume) is unmounted; its files stay.
   */
  async #newDataDir(s: Slot, name: string): Promise<void> {
    const dir = join(this.#workDir, name);
    s.diskDir = dir;
    s.dataDir = dir;
    if (!this.#smallDisks && this.#powerlossfs === null) return;
    mkdirSync(dir);
    s.dataDir = join(dir, 'data');
    if (this.#smallDisks) {
      await run('mount', ['-t', 'tmpfs', '-o', `size=${DISK_BYTES},mode=0755`, 'tmpfs', dir]);
      this.#mounts.push(dir);
    }
    if (this.#powerlossfs === null) return;
    await s.disk?.unmount();
    s.disk = await PowerlossDisk.create(this.#powerlossfs, dir);
    s.dataDir = s.disk.path('data');
    mkdirSync(s.dataDir);
    await s.disk.sync();
  }

  /** The slot's disk fails its syncs, or did until a moment ago (the exit comes just after). */
  #diskFailing(s: Slot): boolean {
    return (
      s.diskErrors || (s.diskHealedAt > 0 && this.#now() - s.diskHealedAt < DISK_EXIT_GRACE_MS)
    );
  }

  #crash(s: Slot, proc: NodeProcess, exit: number | string): void {
    const stderr = this.#stderr.get(proc) ?? '';
    this.crashes.push({ node: s.host.name, t: this.#now(), exit, stderr });
  }
}

export interface NodeInfo {
  node: string;
  status: string;
  ring: { target: string; settled: string; epoch: number; moving: boolean };
  members: { name: string; state: string; status: string | null; share: number }[];
  hints: number;
}

/** A member's HTTP port for adminCall, with the cluster secret; calls give up after 2 s. */
function adminTarget(s: Slot) {
  return { base: `http://${s.host.ip}:${HTTP_PORT}`, secret: CLUSTER_SECRET, timeoutMs: 2000 };
}

function nodeArgs(
  host: LanHost,
  dns: string,
  quorums: { readonly read: number; readonly write: number } | null,
): string[] {
  const q = quorums
    ? ['--read-quorum', `${quorums.read}`, '--write-quorum', `${quorums.write}`]
    : [];
  return [
    ...q,
    ...['--cluster-secret', CLUSTER_SECRET],
    ...['--node-name', host.name, '--host', host.ip],
    ...['--port', `${CLIENT_PORT}`, '--http-port', `${HTTP_PORT}`, '--peer-port', `${PEER_PORT}`],
    ...['--discovery', `dns:${SERVICE}`, '--dns-servers', dns, '--resolve-interval-ms', '1000'],
    ...['--probe-interval-ms', '200', '--probe-failures', '3'],
    // Collection during the run: tombstones older than 5 s go once every replica has them.
    ...['--tombstone-grace-ms', '5000', '--gc-interval-ms', '1000', '--hint-interval-ms', '500'],
  ];
}
