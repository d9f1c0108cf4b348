// docker-compose.yml: `docker compose config` accepts it, and its topology runs as processes in network namespaces named after the services.

import { type ChildProcess, execFile } from 'node:child_process';
import { existsSync, mkdirSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execForm, last, readDockerfile, stageEnv, symlinks } from '../helpers/dockerfile.ts';
import { createLan, type Lan, requireRoot } from '../helpers/netns.ts';
import { cleanup, NODE, ROOT, tempDir } from '../helpers/node-process.ts';

const run = promisify(execFile);
const NODES = ['kvstore1', 'kvstore2', 'kvstore3'];

/** The parts of `docker compose config --format json` this test reads. */
interface ComposeService {
  image?: string;
  build?: { context: string; dockerfile: string };
  command?: string[];
  entrypoint?: string[];
  environment?: Record<string, string | null>;
  healthcheck?: { test?: string[]; disable?: boolean };
  depends_on?: Record<string, { condition: string }>;
  ports?: { target: number; published: string }[];
  volumes?: { type: string; source: string; target: string }[];
  profiles?: string[];
}
interface ComposeProject {
  name: string;
  services: Record<string, ComposeService>;
  volumes?: Record<string, unknown>;
}

/** Runs `docker compose <args>` with the compose plugin built from the Go module proxy. */
async function dockerCompose(args: string[]): Promise<string> {
  const { stdout } = await run('docker', ['compose', ...args], {
    cwd: ROOT,
    env: { ...process.env, DOCKER_CONFIG: dockerConfig },
    maxBuffer: 16 * 1024 * 1024,
  });
  return stdout;
}

let dockerConfig = '';
let project: ComposeProject;

beforeAll(async () => {
  const { stdout } = await run(join(ROOT, 'test/compose/build-compose.sh'), [], {
    timeout: 900_000,
  });
  dockerConfig = tempDir('kvstore-docker-config-');
  mkdirSync(join(dockerConfig, 'cli-plugins'));
  symlinkSync(stdout.trim(), join(dockerConfig, 'cli-plugins/docker-compose'));
  project = JSON.parse(
    await dockerCompose(['--profile', 'monitoring', 'config', '--format', 'json']),
  ) as ComposeProject;
}, 900_000);
afterAll(cleanup);

describe('docker compose config', () => {
  it('accepts the file, with and without the monitoring profile', async () => {
    const plain = (await dockerCompose(['config', '--services'])).trim().split('\n').sort();
    expect(plain).toEqual([...NODES, 'client'].sort());
    expect(Object.keys(project.services).sort()).toEqual([...NODES, 'client', 'prometheus'].sort());
    await dockerCompose(['config', '--quiet']);
  });

  it('runs kvstore1..3 from the Dockerfile, client ports 8081..8083, volumes, healthchecks, membership', () => {
    for (const [i, name] of NODES.entries()) {
      const s = project.services[name]!;
      expect(s.build?.dockerfile, name).toBe('Dockerfile');
      expect(s.image, name).toBe('kvstore:local');
      expect(s.ports, name).toContainEqual(
        expect.objectContaining({ target: 8081, published: String(8081 + i) }),
      );
      expect(s.volumes, name).toEqual([
        expect.objectContaining({ type: 'volume', source: `${name}-data`, target: '/data' }),
      ]);
      expect(s.healthcheck?.test?.join(' '), name).toMatch(/^CMD kvctl .*ping$/);
      expect(s.environment?.KV_NODE_NAME, name).toBe(name);
      expect(s.environment?.KV_PEERS, name).toBe(NODES.map((n) => `${n}=${n}:7946`).join(','));
    }
    const client = project.services.client!;
    expect(client.image).toBe('kvstore:local');
    expect(client.command).toEqual(['node', 'scripts/seed-test-plan.ts']);
    for (const n of NODES) expect(client.depends_on?.[n]?.condition).toBe('service_healthy');
  });

  it('scrapes every node from the optional prometheus service with the repo rules', () => {
    const p = project.services.prometheus!;
    expect(p.profiles).toEqual(['monitoring']);
    const mounts = (p.volumes ?? []).map((v) => v.source.replace(`${ROOT}/`, ''));
    expect(mounts).toEqual(
      expect.arrayContaining(['monitoring/prometheus.yml', 'monitoring/prometheus-rules.yaml']),
    );
    for (const m of mounts.filter((x) => x.startsWith('monitoring/')))
      expect(existsSync(join(ROOT, m)), m).toBe(true);
  });
});

describe('the compose topology in network namespaces', () => {
  let lan: Lan | null = null;
  const children: ChildProcess[] = [];

  afterAll(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await lan?.destroy();
  });

  /** The image as the containers see it: ENV, the bin links on PATH, WORKDIR (the repo's files). */
  function imageEnv(): { env: Record<string, string>; entrypoint: string[] } {
    const runtime = readDockerfile(ROOT).stages.at(-1)!;
    const bin = tempDir('kvstore-compose-bin-');
    for (const l of symlinks(runtime)) {
      symlinkSync(
        l.target.replace(/^\/app\//, `${ROOT}/`),
        join(bin, l.link.replace('/usr/local/bin/', '')),
      );
    }
    symlinkSync(NODE, join(bin, 'node'));
    // Outside a container tini is not PID 1; as a child subreaper it behaves the same (no warning).
    const env = {
      ...stageEnv(runtime),
      PATH: `${bin}:/usr/local/bin:/usr/bin:/bin`,
      TINI_SUBREAPER: '1',
    };
    return { env, entrypoint: execForm(last(runtime, 'ENTRYPOINT')) };
  }

  /** A service's container environment: the image's, then the compose file's; /data per node. */
  function serviceEnv(name: string, image: Record<string, string>): Record<string, string> {
    const env: Record<string, string> = { ...image };
    for (const [k, v] of Object.entries(project.services[name]!.environment ?? {}))
      env[k] = v ?? '';
    if (env.KV_DATA_DIR === '/data') env.KV_DATA_DIR = tempDir(`kvstore-compose-${name}-`);
    return env;
  }

  function output(child: ChildProcess): () => string {
    let out = '';
    child.stdout?.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-20_000)));
    child.stderr?.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-20_000)));
    return () => out;
  }

  function exited(child: ChildProcess, ms: number, out: () => string): Promise<number | string> {
    return new Promise((res, rej) => {
      if (child.exitCode !== null || child.signalCode !== null)
        return res(child.exitCode ?? child.signalCode!);
      const t = setTimeout(() => rej(new Error(`still running after ${ms} ms:\n${out()}`)), ms);
      child.once('exit', (code, signal) => {
        clearTimeout(t);
        res(code ?? signal ?? -1);
      });
    });
  }

  it('starts kvstore1..3 by service name, waits for their healthchecks, and the client passes the seed test plan', async () => {
    requireRoot('compose-topology.test.ts');
    lan = await createLan([...NODES, 'client']);
    const image = imageEnv();
    const logs = new Map<string, () => string>();
    for (const name of NODES) {
      const s = project.services[name]!;
      const argv = [...(s.entrypoint ?? image.entrypoint), ...(s.command ?? [])];
      const child = lan.spawn(name, argv, {
        cwd: ROOT,
        env: serviceEnv(name, image.env),
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      children.push(child);
      logs.set(name, output(child));
    }
    // depends_on: service_healthy -> each node's own healthcheck command passes inside its namespace.
    for (const name of Object.keys(project.services.client!.depends_on ?? {})) {
      const [kind, ...test] = project.services[name]!.healthcheck!.test!;
      expect(kind).toBe('CMD');
      const deadline = Date.now() + 30_000;
      for (;;) {
        const ok = await lan
          .exec(name, test, { cwd: ROOT, env: serviceEnv(name, image.env), timeout: 10_000 })
          .then(
            (r) => r.stdout.trim() === 'PONG',
            () => false,
          );
        if (ok) break;
        if (Date.now() > deadline) throw new Error(`${name} never healthy:\n${logs.get(name)!()}`);
        await new Promise((r) => setTimeout(r, 250));
      }
    }
    const s = project.services.client!;
    const client = lan.spawn('client', [...(s.entrypoint ?? image.entrypoint), ...s.command!], {
      cwd: ROOT,
      env: serviceEnv('client', image.env),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(client);
    const out = output(client);
    const code = await exited(client, 90_000, out);
    const nodeLogs = NODES.map((n) => `--- ${n}\n${logs.get(n)!().slice(-3000)}`).join('\n');
    expect(code, `${out()}\n${nodeLogs}`).toBe(0);
    expect(out()).toContain('seed test plan: passed');
    // The plan read each key through another node: every node answered by its service name.
    for (const n of NODES) expect(out()).toContain(`@${n}:8081`);

    // `docker compose down`: SIGTERM to each container's PID 1 (tini), which the node turns into a clean exit.
    for (const [i, name] of NODES.entries()) {
      children[i]!.kill('SIGTERM');
      expect(await exited(children[i]!, 30_000, logs.get(name)!), name).toBe(0);
    }
  }, 180_000);
});
