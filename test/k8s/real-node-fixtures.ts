// Fixtures of the real-node tests: the kvstore image loaded into the node, `kubectl port-forward`, `nc`, and a Debian Prometheus discovering pods through the API.

import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cp as copy, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parse, stringify } from 'yaml';
import { listeningPort } from '../helpers/prometheus.ts';
import type { ControlPlane } from './control-plane-lib.ts';
import { ROOT, waitUntil } from './operator-fixtures.ts';
import { type RunResult, run } from './processes.ts';
import { buildTools, PROMETHEUS } from './tools.ts';

export const VERSION = (
  JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }
).version;
/** The image the README builds and the chart runs by default. */
export const IMAGE = `kvstore:${VERSION}`;

/** Runs a shell command with the control plane's tool environment (kubectl, helm, ctr on PATH). */
export function sh(
  cp: ControlPlane,
  script: string,
  opts: { allowFailure?: boolean; timeoutMs?: number } = {},
): Promise<RunResult> {
  return run('bash', ['-euo', 'pipefail', '-c', script], {
    env: { ...process.env, ...cp.env, PATH: `${cp.binDir}:${process.env.PATH ?? ''}` },
    allowFailure: opts.allowFailure,
    timeoutMs: opts.timeoutMs ?? 300_000,
    cwd: ROOT,
  });
}

/**
 * `npm run image`: the image from this checkout. Always run: Docker's build cache makes it a few
 * seconds when nothing changed, and an image left from older sources would test old code.
 */
export async function buildImage(): Promise<void> {
  await run('npm', ['run', 'image'], { timeoutMs: 30 * 60_000, stderrTo: process.stderr });
}

/**
 * The README's way in, with the node's containerd in place of kind (`kind load docker-image`):
 * `docker save IMAGE | ctr images import -`.
 */
export async function loadImage(cp: ControlPlane, image = IMAGE): Promise<void> {
  await sh(cp, `docker save ${image} | ctr images import -`, { timeoutMs: 600_000 });
}

/** The Helm 3 skaffold drives (scripts/build-skaffold.sh, cached by version): its path. */
export async function buildHelm3(): Promise<string> {
  const built = await run('bash', [join(ROOT, 'scripts/build-skaffold.sh')], {
    timeoutMs: 3 * 60 * 60_000,
    stderrTo: process.stderr,
  });
  const helm3 = /^helm3=(.+)$/m.exec(built.stdout)?.[1];
  if (!helm3) throw new Error(`build-skaffold.sh did not report helm3: ${built.stdout}`);
  return helm3;
}

export const CRD = 'kvclusters.kvstore.dev';

/**
 * A newer chart in `dir`: charts/kvstore whose CRD has one more printer column named `column`,
 * as a chart release that changes the schema would bring.
 */
export async function newerChart(dir: string, column: string): Promise<string> {
  await copy(join(ROOT, 'charts/kvstore'), dir, { recursive: true });
  const file = join(dir, 'crds', `${CRD}.yaml`);
  const crd = parse(readFileSync(file, 'utf8'));
  crd.spec.versions[0].additionalPrinterColumns.push({
    name: column,
    type: 'string',
    jsonPath: '.spec.image',
  });
  await writeFile(file, stringify(crd));
  return dir;
}

/** Tags an image already in the node under another tag (a "new version" for rolling upgrades). */
export async function tagImage(cp: ControlPlane, from: string, to: string): Promise<void> {
  const full = (i: string) => `docker.io/library/${i}`;
  await sh(cp, `ctr images tag --force ${full(from)} ${full(to)}`);
}

/** A running `kubectl port-forward` on a local port kubectl chose. */
export interface PortForward {
  readonly port: number;
  stop(): Promise<void>;
}

const forwards = new Set<ChildProcess>();

/** `kubectl -n ns port-forward target :remotePort` (127.0.0.1); resolves once it forwards. */
export async function portForward(
  cp: ControlPlane,
  ns: string,
  target: string,
  remotePort: number,
): Promise<PortForward> {
  const child = spawn(
    join(cp.binDir, 'kubectl'),
    [
      '--kubeconfig',
      cp.kubeconfig,
      '-n',
      ns,
      'port-forward',
      target,
      `:${remotePort}`,
      '--address',
      '127.0.0.1',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  forwards.add(child);
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const exited = new Promise<void>((r) => child.on('exit', () => r()));
  void exited.then(() => forwards.delete(child));
  const port = await new Promise<number>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const m = /Forwarding from 127\.0\.0\.1:(\d+) ->/.exec(line);
      if (m) resolve(Number(m[1]));
    });
    void exited.then(() => reject(new Error(`port-forward ${target} exited: ${stderr}`)));
  });
  return {
    port,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

export async function stopPortForwards(): Promise<void> {
  await Promise.all(
    [...forwards].map(
      (c) =>
        new Promise<void>((r) => {
          c.once('exit', () => r());
          c.kill('SIGKILL');
        }),
    ),
  );
}

/** `echo "<line>" | nc -N 127.0.0.1 <port>`, as the README does it; resolves with the reply. */
export async function nc(port: number, line: string): Promise<string> {
  const r = await run('nc', ['-N', '127.0.0.1', String(port)], {
    input: `${line}\n`,
    timeoutMs: 15_000,
  });
  return r.stdout.trim();
}

/** Prometheus with monitoring/prometheus-kubernetes.yml, outside the cluster. */
export interface Prometheus {
  readonly url: string;
  query(expr: string): Promise<{ metric: Record<string, string>; value: [number, string] }[]>;
  alerts(): Promise<{ labels: Record<string, string>; state: string }[]>;
  targets(): Promise<{ labels: Record<string, string>; health: string; lastError: string }[]>;
  stop(): Promise<void>;
}

/**
 * Starts Prometheus (build-tools.sh's: Debian's has no Kubernetes discovery) with the
 * repository's Kubernetes scrape configuration and alert rules, the admin kubeconfig for
 * discovery and fast intervals. `alertFor` shortens the `for:` of the alerts it names (a test
 * need not wait the minute a production alert waits); every other rule stays as written.
 */
export async function startPrometheus(
  cp: ControlPlane,
  dir: string,
  alertFor: Readonly<Record<string, string>> = {},
): Promise<Prometheus> {
  const { bins } = await buildTools([PROMETHEUS]);
  await mkdir(join(dir, 'data'), { recursive: true });
  const config = parse(readFileSync(join(ROOT, 'monitoring/prometheus-kubernetes.yml'), 'utf8'));
  config.global = { scrape_interval: '2s', evaluation_interval: '2s', scrape_timeout: '1s' };
  const rules = parse(readFileSync(join(ROOT, 'monitoring/prometheus-rules.yaml'), 'utf8'));
  for (const group of rules.groups) {
    for (const rule of group.rules) {
      const shorter = alertFor[rule.alert];
      if (shorter === undefined) continue;
      if (rule.for === undefined) throw new Error(`alert ${rule.alert} has no for: to shorten`);
      rule.for = shorter;
    }
  }
  await writeFile(join(dir, 'rules.yaml'), stringify(rules));
  config.rule_files = [join(dir, 'rules.yaml')];
  for (const job of config.scrape_configs) {
    for (const sd of job.kubernetes_sd_configs) sd.kubeconfig_file = cp.kubeconfig;
  }
  await writeFile(join(dir, 'prometheus.yml'), stringify(config));
  const child = spawn(
    bins.prometheus,
    [
      `--config.file=${join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      // Port 0: the kernel picks it at the bind, and the log says which (listeningPort); a port
      // picked before the start could be taken by another process before Prometheus binds it.
      '--web.listen-address=127.0.0.1:0',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let log = '';
  child.stderr?.on('data', (d: Buffer) => {
    log += d.toString();
  });
  const exited = new Promise<void>((r) => child.on('exit', () => r()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
  };
  const port = await listeningPort(child).catch(async (e: unknown) => {
    await stop();
    throw e;
  });
  const url = `http://127.0.0.1:${port}`;
  const api = async <T>(path: string): Promise<T> => {
    const res = await fetch(`${url}${path}`, { signal: AbortSignal.timeout(5_000) });
    const body = (await res.json()) as { status: string; data: T; error?: string };
    if (body.status !== 'success') throw new Error(`prometheus ${path}: ${body.error}`);
    return body.data;
  };
  try {
    await waitUntil('prometheus ready', async () => {
      if (child.exitCode !== null) throw new Error(`prometheus exited: ${log}`);
      return (await fetch(`${url}/-/ready`)).ok;
    });
  } catch (e) {
    await stop();
    throw e;
  }
  return {
    url,
    stop,
    query: async (expr) =>
      (
        await api<{ result: { metric: Record<string, string>; value: [number, string] }[] }>(
          `/api/v1/query?query=${encodeURIComponent(expr)}`,
        )
      ).result,
    alerts: async () =>
      (await api<{ alerts: { labels: Record<string, string>; state: string }[] }>('/api/v1/alerts'))
        .alerts,
    targets: async () =>
      (
        await api<{
          activeTargets: { labels: Record<string, string>; health: string; lastError: string }[];
        }>('/api/v1/targets?state=active')
      ).activeTargets,
  };
}
