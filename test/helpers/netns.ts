// Private test networks: one network namespace per host on a bridge, each with its own /etc/hosts; removed with every process in them.

import { type ChildProcess, execFile, type SpawnOptions, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface LanHost {
  /** The host name others resolve (the compose service name). */
  readonly name: string;
  /** The network namespace, unique per run: kvt-<random>-<name>. */
  readonly ns: string;
  readonly ip: string;
  /** The switch's namespace and the host's port on the bridge (the veth end facing the host). */
  readonly switchNs: string;
  readonly switchPort: string;
}

/** Running commands in the hosts of a network, also from a process that did not create it. */
export interface LanAccess {
  readonly hosts: ReadonlyMap<string, LanHost>;
  /** Starts `argv` inside the host's namespace (`ip netns exec`, which also binds its /etc/hosts). */
  spawn(host: string, argv: readonly string[], opts?: SpawnOptions): ChildProcess;
  /**
   * Runs `argv` inside the host's namespace to completion; rejects on a non-zero exit. Its output
   * may be large (a script's record of every request: execFile's default 1 MiB bound failed a
   * test that ran fast), up to 256 MiB.
   */
  exec(
    host: string,
    argv: readonly string[],
    opts?: { env?: NodeJS.ProcessEnv; cwd?: string; timeout?: number },
  ): Promise<{ stdout: string; stderr: string }>;
}

export interface Lan extends LanAccess {
  /** Kills every process in the namespaces, deletes them and their hosts files. Idempotent. */
  destroy(): Promise<void>;
}

/** Fails clearly when the test cannot manage namespaces (it needs root; it never skips). */
export function requireRoot(test: string): void {
  if (process.getuid?.() !== 0) {
    throw new Error(`${test} needs root to create network namespaces (ip netns); run it as root`);
  }
}

/** iproute2's `ip`, by absolute path: callers pass environments whose PATH lacks sbin. */
const IP =
  ['/usr/sbin/ip', '/sbin/ip', '/usr/bin/ip', '/bin/ip'].find((p) => existsSync(p)) ?? 'ip';

async function ip(...args: string[]): Promise<void> {
  await run(IP, args);
}

/**
 * Creates hosts `names` on a private /24 in 10.0.0.0/8 that exists only inside the namespaces:
 * a bridge in a switch namespace `kvt-<random>-net`, and per host a namespace with a veth to it
 * (eth0), loopback up, and /etc/netns/<ns>/hosts naming every host. Nothing is added to the
 * host's own network namespace. On failure the partial network is removed before rethrowing.
 */
export async function createLan(names: readonly string[]): Promise<Lan> {
  const prefix = `kvt-${randomBytes(3).toString('hex')}`;
  const subnet = `10.${1 + Math.floor(Math.random() * 254)}.${1 + Math.floor(Math.random() * 254)}`;
  const sw = `${prefix}-net`;
  const hosts = new Map<string, LanHost>(
    names.map((name, i) => [
      name,
      {
        name,
        ns: `${prefix}-${name}`,
        ip: `${subnet}.${i + 2}`,
        switchNs: sw,
        switchPort: `v${i}`,
      },
    ]),
  );
  const created: string[] = [];
  const etcNetnsExisted = existsSync('/etc/netns');

  const destroy = async (): Promise<void> => {
    for (const ns of created) {
      const pids = await run(IP, ['netns', 'pids', ns]).then(
        (r) => r.stdout.split(/\s+/).filter(Boolean),
        () => [],
      );
      for (const pid of pids) {
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch {
          // already gone
        }
      }
      await ip('netns', 'del', ns).catch(() => {});
      rmSync(`/etc/netns/${ns}`, { recursive: true, force: true });
    }
    created.length = 0;
    if (!etcNetnsExisted) {
      try {
        rmdirSync('/etc/netns');
      } catch {
        // not empty (another run's namespaces) or already gone
      }
    }
  };

  try {
    await ip('netns', 'add', sw);
    created.push(sw);
    await ip('-n', sw, 'link', 'add', 'br0', 'type', 'bridge');
    await ip('-n', sw, 'link', 'set', 'br0', 'up');
    const hostsFile = [
      '127.0.0.1 localhost',
      ...[...hosts.values()].map((h) => `${h.ip} ${h.name}`),
      '',
    ].join('\n');
    for (const h of hosts.values()) {
      await ip('netns', 'add', h.ns);
      created.push(h.ns);
      mkdirSync(`/etc/netns/${h.ns}`, { recursive: true });
      writeFileSync(`/etc/netns/${h.ns}/hosts`, hostsFile);
      const port = h.switchPort;
      await ip(
        '-n',
        sw,
        'link',
        'add',
        port,
        'type',
        'veth',
        'peer',
        'name',
        'eth0',
        'netns',
        h.ns,
      );
      await ip('-n', sw, 'link', 'set', port, 'master', 'br0', 'up');
      await ip('-n', h.ns, 'addr', 'add', `${h.ip}/24`, 'dev', 'eth0');
      await ip('-n', h.ns, 'link', 'set', 'eth0', 'up');
      await ip('-n', h.ns, 'link', 'set', 'lo', 'up');
    }
  } catch (err) {
    await destroy();
    throw err;
  }

  return { ...attachLan([...hosts.values()]), destroy };
}

/**
 * Access to the hosts of a network created elsewhere (by createLan in a parent process, which
 * passes `lan.hosts` on). Works from inside any namespace: `ip netns exec` enters the target.
 */
export function attachLan(hosts: readonly LanHost[]): LanAccess {
  const byName = new Map(hosts.map((h) => [h.name, h]));
  const nsOf = (host: string): string => {
    const h = byName.get(host);
    if (!h) throw new Error(`netns: no host ${host}`);
    return h.ns;
  };
  return {
    hosts: byName,
    spawn: (host, argv, opts = {}) => spawn(IP, ['netns', 'exec', nsOf(host), ...argv], opts),
    exec: (host, argv, opts = {}) =>
      run(IP, ['netns', 'exec', nsOf(host), ...argv], { maxBuffer: 256 * 1024 * 1024, ...opts }),
  };
}

/** `ip` with `args` (e.g. `['-n', ns, 'link', 'set', 'eth0', 'down']`); rejects on failure. */
export async function ipCommand(...args: string[]): Promise<void> {
  await ip(...args);
}

/** `tc` and `iptables`, by absolute path (see IP). */
const TC = ['/usr/sbin/tc', '/sbin/tc', '/usr/bin/tc'].find((p) => existsSync(p)) ?? 'tc';
const IPTABLES =
  ['/usr/sbin/iptables', '/sbin/iptables', '/usr/bin/iptables'].find((p) => existsSync(p)) ??
  'iptables';

/**
 * Makes `host`'s link slow, both ways, or (`slow` null) fast again: each direction limited to
 * `rateKbit` (a token bucket, `tc qdisc tbf`, queueing up to 400 ms, then dropping) and losing
 * `lossPct` % of its packets at random (iptables `statistic`), so TCP stalls for its
 * retransmission timeouts (200 ms and more). This kernel has no netem (sch_netem), so no fixed
 * delay or reordering: queueing and retransmissions make the delay and the jitter. The egress of
 * the host's eth0 shapes what it sends, the egress of its bridge port what it receives. Idempotent.
 */
export async function shapeLink(
  host: LanHost,
  slow: { readonly rateKbit: number; readonly lossPct: number } | null,
): Promise<void> {
  const ends = [
    [host.ns, 'eth0'],
    [host.switchNs, host.switchPort],
  ] as const;
  // Undone first, so a shape replaces another and a heal after a heal does nothing.
  for (const [ns, dev] of ends) {
    await run(IP, ['netns', 'exec', ns, TC, 'qdisc', 'del', 'dev', dev, 'root']).catch(() => {});
  }
  await run(IP, ['netns', 'exec', host.ns, IPTABLES, '-w', '-F']);
  if (slow === null) return;
  const rate = `${slow.rateKbit}kbit`;
  for (const [ns, dev] of ends) {
    const tbf = ['qdisc', 'add', 'dev', dev, 'root', 'tbf', 'rate', rate];
    await run(IP, ['netns', 'exec', ns, TC, ...tbf, 'burst', '8kb', 'latency', '400ms']);
  }
  const p = String(slow.lossPct / 100);
  for (const chain of [
    ['INPUT', '-i', 'eth0'],
    ['OUTPUT', '-o', 'eth0'],
  ]) {
    const drop = ['-m', 'statistic', '--mode', 'random', '--probability', p, '-j', 'DROP'];
    await run(IP, ['netns', 'exec', host.ns, IPTABLES, '-w', '-A', ...chain, ...drop]);
  }
}
