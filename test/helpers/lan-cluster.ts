// A cluster of a, b and c in network namespaces (test/helpers/netns.ts), and the load and metrics its tests use.

import { defer } from './defer.ts';
import { createLan, ipCommand, type Lan, type LanHost, requireRoot } from './netns.ts';
import { NODE, type NodeProcess, startNodeProcess } from './node-process.ts';
import { until } from './write-log.ts';

/** The cluster secret of lanCluster's nodes (kvctl proves admin calls with it). */
export const SECRET = 'failure-detector-secret';
/** The value size writeBulk writes, and the nodes accept. */
export const VALUE_BYTES = 4 * 1024 * 1024;

function nodeArgs(host: LanHost, peers: string, extra: readonly string[]): string[] {
  return [
    ...extra,
    ...['--cluster-secret', SECRET, '--node-name', host.name, '--host', host.ip],
    ...['--port', '8081', '--http-port', '9090', '--peer-port', '7946', '--peers', peers],
    ...['--probe-interval-ms', '200', '--probe-failures', '3'],
    ...['--max-value-bytes', String(VALUE_BYTES), '--max-line-bytes', String(VALUE_BYTES + 8192)],
  ];
}

function upCount(proc: NodeProcess, member: string, msg: 'member up' | 'member down'): number {
  return proc.logs.filter((l) => l.msg === msg && l.member === member).length;
}

/**
 * Starts a, b and c in their own namespaces, each listing the others, with `extra` flags first;
 * resolves once all see all up.
 */
async function startLanCluster(
  lan: Lan,
  extra: readonly string[],
): Promise<Map<string, NodeProcess>> {
  const hosts = [...lan.hosts.values()];
  const peers = hosts.map((h) => `${h.name}=${h.ip}:7946`).join(',');
  const procs = await Promise.all(
    hosts.map((h) =>
      startNodeProcess({ command: ['ip', 'netns', 'exec', h.ns], args: nodeArgs(h, peers, extra) }),
    ),
  );
  const byName = new Map(hosts.map((h, i) => [h.name, procs[i]!]));
  await until(
    () =>
      hosts.every((h) =>
        hosts.every((o) => o === h || upCount(byName.get(h.name)!, o.name, 'member up') > 0),
      ),
    20_000,
    () => 'members did not all see each other up',
  );
  await waitLanSettled(lan, hosts);
  return byName;
}

/**
 * Waits until every node routes by one settled ring of all `hosts`, data not moving (as
 * waitSettled in cluster.ts, asked with CLUSTER from one process in the first host's namespace).
 * A node that founded a ring of itself before it heard the others holds the settled ring alone
 * for a while, and every write needs its acknowledgement until then: a test that stopped that
 * node at once saw one of its 4 writes fail (`write quorum 0/1 (b: peer_unavailable)`).
 */
async function waitLanSettled(lan: Lan, hosts: readonly LanHost[]): Promise<void> {
  const names = JSON.stringify(hosts.map((h) => h.name));
  const script = `
    const net = require('node:net');
    const ask = (ip) => new Promise((resolve, reject) => {
      const s = net.connect(8081, ip);
      let buf = '';
      s.on('data', (d) => { buf += d; const i = buf.indexOf('\\n'); if (i >= 0) { s.end(); resolve(buf.slice(0, i)); } });
      s.on('error', reject);
      s.write('CLUSTER\\n');
    });
    const settled = async (ip) => {
      const info = JSON.parse(await ask(ip));
      const ring = info.members.filter((m) => m.share > 0).map((m) => m.name);
      return !info.ring.moving && JSON.stringify(ring) === ${JSON.stringify(names)};
    };
    (async () => {
      const end = Date.now() + 30000;
      let last = '';
      for (;;) {
        const all = await Promise.all(${JSON.stringify(hosts.map((h) => h.ip))}.map(settled));
        if (all.every(Boolean)) return;
        last = JSON.stringify(all);
        if (Date.now() > end) { console.error('not settled in 30 s: ' + last); process.exit(1); }
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
  `;
  await lan.exec(hosts[0]!.name, [NODE, '-e', script], { timeout: 60_000 });
}

/**
 * Network namespaces a, b and c (removed when the test ends) and a cluster of them, started with
 * `extra` flags besides the cluster's own.
 */
export async function lanCluster(extra: readonly string[] = []) {
  requireRoot('this test');
  const lan = await createLan(['a', 'b', 'c']);
  defer(() => lan.destroy());
  const procs = await startLanCluster(lan, extra);
  return { lan, procs, a: lan.hosts.get('a')!, b: lan.hosts.get('b')! };
}

/**
 * In `host`'s namespace: PUTs of `VALUE_BYTES` values to its own node, `parallel` at a time, for
 * `seconds` (or `count` by each writer); resolves with the count of OK replies and every other
 * reply seen. With `retries`, a PUT not answered OK is sent again, up to that many times, and
 * only its last reply counts (for data a test needs in place, not load).
 */
export function writeBulk(
  lan: Lan,
  host: LanHost,
  seconds: number,
  parallel: number,
  count = 0,
  retries = 0,
) {
  const script = `
    const net = require('node:net');
    const value = 'v'.repeat(${VALUE_BYTES});
    const end = Date.now() + ${seconds * 1000};
    let ok = 0; const other = {};
    async function writer(w) {
      const s = net.connect(8081, '${host.ip}');
      await new Promise((r) => s.once('connect', r));
      let buf = '';
      let waiting = null;
      s.on('data', (d) => { buf += d; const i = buf.indexOf('\\n'); if (i >= 0 && waiting) { const line = buf.slice(0, i); buf = buf.slice(i + 1); const w = waiting; waiting = null; w(line); } });
      for (let i = 0; ${count} > 0 ? i < ${count} : Date.now() < end; i++) {
        let reply = '';
        for (let t = 0; t <= ${retries} && reply.trim() !== 'OK'; t++)
          reply = await new Promise((r) => { waiting = r; s.write('PUT big-' + w + '-' + (i % 16) + ' ' + value + '\\n'); });
        if (reply.trim() === 'OK') ok++; else other[reply.trim().slice(0, 200)] = (other[reply.trim().slice(0, 200)] || 0) + 1;
      }
      s.end();
    }
    Promise.all(Array.from({ length: ${parallel} }, (_, w) => writer(w))).then(() => {
      console.log(JSON.stringify({ ok, other }));
    });
  `;
  return lan
    .exec(host.name, [NODE, '-e', script], { timeout: (seconds + 60) * 1000 })
    .then((r) => JSON.parse(r.stdout) as { ok: number; other: Record<string, number> });
}

/**
 * In `host`'s namespace: GETs of `keys` from its node, one after the other, `rounds` times over;
 * resolves with the count of replies that were a `VALUE_BYTES` value and every other reply seen.
 */
export function readBulk(lan: Lan, host: LanHost, keys: readonly string[], rounds: number) {
  const script = `
    const net = require('node:net');
    (async () => {
      ${askLines(host)}
      let ok = 0; const other = {};
      for (let r = 0; r < ${rounds}; r++) {
        for (const key of ${JSON.stringify(keys)}) {
          const reply = (await ask('GET ' + key)).trim();
          if (reply.length === ${VALUE_BYTES}) ok++;
          else other[reply.slice(0, 200)] = (other[reply.slice(0, 200)] || 0) + 1;
        }
      }
      s.end();
      console.log(JSON.stringify({ ok, other }));
    })();
  `;
  return lan
    .exec(host.name, [NODE, '-e', script], { timeout: 600_000 })
    .then((r) => JSON.parse(r.stdout) as { ok: number; other: Record<string, number> });
}

/** The node's /metrics, fetched inside its namespace. */
export async function scrape(lan: Lan, host: LanHost): Promise<string> {
  const r = await lan.exec(host.name, ['curl', '-sf', `http://${host.ip}:9090/metrics`]);
  return r.stdout;
}

/** The value of the unlabelled `series` on `host`'s node. */
export async function gauge(lan: Lan, host: LanHost, series: string): Promise<number> {
  const line = (await scrape(lan, host)).split('\n').find((l) => l.startsWith(`${series} `));
  return Number(line?.split(' ')[1] ?? Number.NaN);
}

/**
 * Script lines (node -e) that connect `s` to `host`'s node and define `ask(line)`: sends one
 * command line and resolves with its reply line. Inside an async function.
 */
export function askLines(host: LanHost): string {
  return `
      const s = net.connect(8081, '${host.ip}');
      await new Promise((r) => s.once('connect', r));
      let buf = '';
      let waiting = null;
      s.on('data', (d) => { buf += d; const i = buf.indexOf('\\n'); if (i >= 0 && waiting) { const line = buf.slice(0, i); buf = buf.slice(i + 1); const w = waiting; waiting = null; w(line); } });
      const ask = (line) => new Promise((r) => { waiting = r; s.write(line + '\\n'); });`;
}

/**
 * Takes `host`'s link down (its interface, as the chaos nemesis's isolate does: nothing gets
 * through, and TCP resends what is unanswered further and further apart), waits until
 * `calledDown()` holds, keeps it down `ms` longer, and brings it up again; resolves with when
 * it came back (ms since the epoch). The link comes back when the test ends, whatever happened.
 */
export async function linkOutage(
  host: LanHost,
  calledDown: () => boolean,
  ms: number,
): Promise<number> {
  await ipCommand('-n', host.ns, 'link', 'set', 'eth0', 'down');
  defer(() => ipCommand('-n', host.ns, 'link', 'set', 'eth0', 'up').catch(() => {}));
  await until(calledDown, 20_000, () => `${host.name} was not called down`);
  // The outage's length is the scenario, not a wait for something.
  await new Promise((r) => setTimeout(r, ms));
  await ipCommand('-n', host.ns, 'link', 'set', 'eth0', 'up');
  return Date.now();
}

/** What smallOps saw: replies other than the expected ones, and latencies in ms. */
export interface SmallOps {
  readonly ops: number;
  readonly errors: Record<string, number>;
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
}

/**
 * In `host`'s namespace, after `delayS` seconds: one connection to its node doing a PUT of a
 * 100-byte value and a GET of it, one after the other, for `seconds`; resolves with every reply
 * that was not OK or the value, and the latency of each command.
 */
export function smallOps(lan: Lan, host: LanHost, seconds: number, delayS = 0): Promise<SmallOps> {
  const script = `
    const net = require('node:net');
    const value = 's'.repeat(100);
    setTimeout(async () => {
      ${askLines(host)}
      const end = Date.now() + ${seconds * 1000};
      const ms = []; const errors = {};
      for (let i = 0; Date.now() < end; i++) {
        for (const [cmd, want] of [['PUT small-' + i + ' ' + value, 'OK'], ['GET small-' + i, value]]) {
          const t = performance.now();
          const reply = (await ask(cmd)).trim();
          ms.push(performance.now() - t);
          if (reply !== want) errors[reply.slice(0, 60)] = (errors[reply.slice(0, 60)] || 0) + 1;
        }
      }
      s.end();
      ms.sort((x, y) => x - y);
      const at = (q) => Math.round(ms[Math.min(ms.length - 1, Math.floor(q * ms.length))]);
      console.log(JSON.stringify({ ops: ms.length, errors, p50: at(0.5), p99: at(0.99), max: at(1) }));
    }, ${delayS * 1000});
  `;
  return lan
    .exec(host.name, [NODE, '-e', script], { timeout: (delayS + seconds + 60) * 1000 })
    .then((r) => JSON.parse(r.stdout) as SmallOps);
}
