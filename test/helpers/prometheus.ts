// A real Prometheus (Debian's `prometheus`) scraping test nodes with the compose configuration.

import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
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

/** Prometheus's line once it listens (2.x logfmt and 3.x slog alike): the port it was given. */
const LISTENING = /msg="Listening on".*\baddress=(?:\[[^\]]*\]|[^\s:]+):(\d+)/;

/**
 * The port a Prometheus started with `--web.listen-address=<host>:0` (and at least info logs)
 * listens on, read from its stderr: the kernel picked it at the bind, so no other process can
 * hold it (a port picked before the start and bound later could be taken in between, and a
 * readiness check then asked whatever took it). Rejects when it exits or says nothing in `ms`.
 */
export function listeningPort(child: ChildProcess, ms = 60_000): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    let seen = '';
    const done = (err: Error | null, port = 0) => {
      clearTimeout(timer);
      child.stderr!.off('data', onData);
      child.off('exit', onExit);
      if (err === null) resolve(port);
      else reject(err);
    };
    const onData = (d: Buffer) => {
      seen = (seen + d.toString()).slice(-20_000);
      const m = LISTENING.exec(seen);
      if (m !== null) done(null, Number(m[1]));
    };
    const onExit = () => done(new Error(`prometheus exited before listening:\n${seen}`));
    const timer = setTimeout(
      () => done(new Error(`prometheus did not say where it listens in ${ms} ms:\n${seen}`)),
      ms,
    );
    child.stderr!.on('data', onData);
    child.once('exit', onExit);
  });
}

/**
 * Starts Prometheus on a loopback port the kernel picks (listeningPort) with monitoring/prometheus.yml, its targets replaced
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
  const child = spawn(
    'prometheus',
    [
      `--config.file=${join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      '--web.listen-address=127.0.0.1:0',
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
  const port = await listeningPort(child).catch(async (err: unknown) => {
    await stop();
    throw err;
  });
  const api = `http://127.0.0.1:${port}`;
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
