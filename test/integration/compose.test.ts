// docker-compose.yml with the compose v2 plugin and the real engine: `config`, then `up -d` with the image `npm run image` builds, a node killed and restarted, `down` and `up`.

import { existsSync, mkdirSync, symlinkSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBuildScript } from '../helpers/build-script.ts';
import {
  buildImage,
  dockerResult,
  IMAGE,
  Made,
  metric,
  requireEngine,
  SEED_PLAN_REPLIES,
  seedPlanWithNc,
  uniqueName,
  VERSION,
} from '../helpers/docker.ts';
import { LineClient } from '../helpers/line-client.ts';
import { cleanup, ROOT, tempDir } from '../helpers/node-process.ts';

const NODES = ['kvstore1', 'kvstore2', 'kvstore3'];
/** Host ports the compose file publishes on 127.0.0.1: client 8081..8083, HTTP 9091..9093. */
const CLIENT = { kvstore1: 8081, kvstore2: 8082, kvstore3: 8083 } as const;
const HTTP = { kvstore1: 9091, kvstore2: 9092, kvstore3: 9093 } as const;

/** The parts of `docker compose config --format json` this test reads. */
interface ComposeService {
  image?: string;
  build?: { context: string; dockerfile: string };
  command?: string[];
  entrypoint?: string[];
  environment?: Record<string, string | null>;
  healthcheck?: { test?: string[]; disable?: boolean };
  depends_on?: Record<string, { condition: string }>;
  ports?: { target: number; published: string; host_ip?: string }[];
  volumes?: { type: string; source: string; target: string }[];
  profiles?: string[];
}
interface ComposeProject {
  name: string;
  services: Record<string, ComposeService>;
  volumes?: Record<string, unknown>;
}

let dockerConfig = '';
let project: ComposeProject;
const made = new Made();
/** This run's compose project name and image tag (both removed afterwards). */
const name = uniqueName();
const image = `${name}:${VERSION}`;

/** Runs `docker compose <args>` with the compose plugin built from the Go module proxy. */
async function compose(
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return dockerResult(['compose', ...args], {
    env: { ...process.env, DOCKER_CONFIG: dockerConfig, ...env },
  });
}

/** `docker compose config` output (KVSTORE_IMAGE unset: the file's defaults). */
async function dockerCompose(args: string[]): Promise<string> {
  const r = await compose(args, { KVSTORE_IMAGE: '' });
  if (r.code !== 0) throw new Error(`docker compose ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** The test's own project: `-p <unique name>`, the image this test built. */
async function up(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return compose(['-p', name, ...args], { KVSTORE_IMAGE: image });
}
async function ok(args: string[]): Promise<string> {
  const r = await up(args);
  if (r.code !== 0)
    throw new Error(`docker compose ${args.join(' ')} exited ${r.code}:\n${r.stderr}`);
  return r.stdout;
}

interface PsEntry {
  Service: string;
  State: string;
  Health: string;
  ExitCode: number;
}
async function ps(): Promise<Map<string, PsEntry>> {
  const out = (await ok(['ps', '--all', '--format', 'json'])).trim();
  // One JSON object per line (compose v2.21+), or one array.
  const rows: PsEntry[] = out.startsWith('[')
    ? JSON.parse(out)
    : out
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l));
  return new Map(rows.map((r) => [r.Service, r]));
}

async function healthOf(services: readonly string[]): Promise<string[]> {
  const all = await ps();
  return services.map((s) => `${s}:${all.get(s)?.Health ?? all.get(s)?.State ?? 'absent'}`);
}

async function metricsOf(node: keyof typeof HTTP): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${HTTP[node]}/metrics`);
  return res.text();
}

beforeAll(async () => {
  const stdout = await runBuildScript('test/compose/build-compose.sh', 900_000);
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
      expect(s.image, name).toBe(IMAGE);
      expect(s.ports, name).toContainEqual(
        expect.objectContaining({
          target: 8081,
          published: String(8081 + i),
          host_ip: '127.0.0.1',
        }),
      );
      expect(s.volumes, name).toEqual([
        expect.objectContaining({ type: 'volume', source: `${name}-data`, target: '/data' }),
      ]);
      expect(s.healthcheck?.test?.join(' '), name).toMatch(/^CMD kvctl .*ping$/);
      expect(s.environment?.KV_NODE_NAME, name).toBe(name);
      expect(s.environment?.KV_PEERS, name).toBe(NODES.map((n) => `${n}=${n}:7946`).join(','));
    }
    const client = project.services.client!;
    expect(client.image).toBe(IMAGE);
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

describe('docker compose up, for real', () => {
  beforeAll(async () => {
    await requireEngine();
    made.image(image);
    const built = await buildImage(image);
    if (built.code !== 0) throw new Error(`scripts/image.sh failed:\n${built.log}`);
    made.add(() => up(['down', '--volumes', '--remove-orphans', '--timeout', '5']));
  }, 1_200_000);
  afterAll(() => made.remove(), 180_000);

  /** Keys written while kvstore2 is down (through kvstore1, which keeps hints for kvstore2). */
  const hinted = Array.from({ length: 20 }, (_, i) => `hinted:${i}`);

  it('up -d: three healthy nodes, the client service passes the seed test plan, and so does nc on 8081..8083', async () => {
    await ok(['up', '--detach']);
    await expect
      .poll(() => healthOf(NODES), { timeout: 120_000, interval: 500 })
      .toEqual(NODES.map((n) => `${n}:healthy`));
    await expect
      .poll(async () => (await ps()).get('client')?.State, { timeout: 120_000, interval: 500 })
      .toBe('exited');
    const logs = await ok(['logs', '--no-color', 'client']);
    expect((await ps()).get('client')?.ExitCode, logs).toBe(0);
    expect(logs).toContain('seed test plan: passed');
    for (const n of NODES) expect(logs).toContain(`@${n}:8081`);
    expect(await seedPlanWithNc([CLIENT.kvstore1, CLIENT.kvstore2, CLIENT.kvstore3])).toEqual(
      SEED_PLAN_REPLIES,
    );
  }, 300_000);

  it('writes succeed with kvstore2 killed; started again, it catches up through hinted handoff (no client read)', async () => {
    await ok(['kill', 'kvstore2']);
    expect((await ps()).get('kvstore2')?.State).toBe('exited');
    const client = await LineClient.connect(CLIENT.kvstore1);
    try {
      for (const k of hinted) expect(await client.call(`PUT ${k} value-of-${k}`)).toBe('OK');
    } finally {
      client.close();
    }
    // kvstore1 coordinated every write and keeps one hint per key for kvstore2 (once its attempt
    // to reach kvstore2 failed), and kvstore2 stayed down meanwhile.
    await expect
      .poll(async () => metric(await metricsOf('kvstore1'), 'kvstore_hints_stored'), {
        timeout: 60_000,
        interval: 250,
      })
      .toBeGreaterThanOrEqual(hinted.length);
    expect((await ps()).get('kvstore2')?.State).toBe('exited');
    const keys1 = metric(await metricsOf('kvstore1'), 'kvstore_storage_keys');

    await ok(['start', 'kvstore2']);
    await expect
      .poll(() => healthOf(['kvstore2']), { timeout: 120_000, interval: 500 })
      .toEqual(['kvstore2:healthy']);
    // Only /metrics is read: the hints drain and kvstore2 holds every key kvstore1 holds.
    await expect
      .poll(
        async () => ({
          hints: metric(await metricsOf('kvstore1'), 'kvstore_hints_stored'),
          keys2: metric(await metricsOf('kvstore2'), 'kvstore_storage_keys'),
        }),
        { timeout: 120_000, interval: 500 },
      )
      .toEqual({ hints: 0, keys2: keys1 });
    expect(
      metric(await metricsOf('kvstore1'), 'kvstore_hints_delivered_total'),
    ).toBeGreaterThanOrEqual(hinted.length);
  }, 300_000);

  it('down, then up: every key is still there (the named volumes stay)', async () => {
    await ok(['down', '--timeout', '15']);
    expect([...(await ps()).keys()]).toEqual([]);
    await ok(['up', '--detach']);
    await expect
      .poll(() => healthOf(NODES), { timeout: 120_000, interval: 500 })
      .toEqual(NODES.map((n) => `${n}:healthy`));
    for (const node of NODES) {
      const c = await LineClient.connect(CLIENT[node as keyof typeof CLIENT]);
      try {
        for (const k of hinted)
          expect(await c.call(`GET ${k}`), `${k}@${node}`).toBe(`value-of-${k}`);
        expect(await c.call('GET session:user1')).toBe('{token:xyz123}');
      } finally {
        c.close();
      }
    }
  }, 300_000);

  it('up with a host port already taken names the port', async () => {
    await ok(['down', '--timeout', '15']);
    const taken: Server = await new Promise((res, rej) => {
      const srv = createServer().listen(CLIENT.kvstore2, '127.0.0.1', () => res(srv));
      srv.on('error', rej);
    });
    try {
      const r = await up(['up', '--detach']);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain(`127.0.0.1:${CLIENT.kvstore2}`);
      expect(r.stderr).toMatch(/address already in use/);
    } finally {
      await new Promise((res) => taken.close(res));
    }
  }, 300_000);
});
