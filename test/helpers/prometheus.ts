// A real Prometheus (Debian's `prometheus`) scraping test nodes with the compose configuration.

import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { ROOT, tempDir } from './node-process.ts';

export const RULES = join(ROOT, 'monitoring/prometheus-rules.yaml');
export const COMPOSE_PROMETHEUS = join(ROOT, 'monitoring/prometheus.yml');

export interface PrometheusProcess {
  /** `http://127.0.0.1:<port>` */
  readonly api: string;
  readonly child: ChildProcess;
  /** The last 20 kB it wrote to stderr. */
  log(): string;
  /** SIGTERM, SIGKILL after 10 s; resolves once it exited. */
  stop(): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise<number>((res) => {
    const srv = createServer().listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => res(port));
    });
  });
}

/**
 * Starts Prometheus on a free loopback port with monitoring/prometheus.yml, its targets replaced
 * by `targets` (`host:port`), 1 s intervals and this repository's rules; resolves once ready.
 * Its data goes to a temporary directory that cleanup() removes.
 */
export async function startPrometheus(targets: readonly string[]): Promise<PrometheusProcess> {
  const dir = tempDir('kvstore-prom-');
  const list = targets.map((t) => `"${t}"`).join(', ');
  const config = readFileSync(COMPOSE_PROMETHEUS, 'utf8')
    .replaceAll('15s', '1s')
    .replace('/etc/prometheus/rules/*.yaml', RULES)
    .replace('"kvstore1:9090", "kvstore2:9090", "kvstore3:9090"', list);
  if (!config.includes(list)) throw new Error('prometheus.yml no longer names kvstore1..3:9090');
  writeFileSync(join(dir, 'prometheus.yml'), config);
  const api = `http://127.0.0.1:${await freePort()}`;
  const child = spawn(
    'prometheus',
    [
      `--config.file=${join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=${api.slice('http://'.length)}`,
      '--web.enable-lifecycle',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let log = '';
  child.stderr!.on('data', (d: Buffer) => {
    log = (log + d.toString()).slice(-20_000);
  });
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((res) => child.once('exit', res));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  };
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (
      await fetch(`${api}/-/ready`).then(
        (r) => r.ok,
        () => false,
      )
    )
      break;
    if (child.exitCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error(`prometheus did not become ready:\n${log}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  return { api, child, log: () => log, stop };
}

/** A dashboard expression with Grafana's variables replaced as Grafana would (all nodes). */
export function concrete(expr: string, rateInterval: string): string {
  return expr.replaceAll('$__rate_interval', rateInterval).replaceAll('$instance', '.*');
}
