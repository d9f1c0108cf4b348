// skaffold.yaml checked by skaffold itself (built from the Go module proxy by scripts/build-skaffold.sh):
// strict parsing and profiles (`skaffold diagnose`), `skaffold render` of the Helm release with a
// given image, compared with the chart, and `skaffold build` with the local Docker engine.
//
// No cluster here: nothing is deployed. `skaffold render` runs `helm template` (Helm 3: skaffold
// v2 does not drive Helm 4) with skaffold as post-renderer.

import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { docker, Made, requireEngine, uniqueName, VERSION } from '../helpers/docker.ts';
import { type Json, ROOT } from './operator-fixtures.ts';
import { run } from './processes.ts';
import { buildTools } from './tools.ts';

const exec = promisify(execFile);
// A cold cache builds skaffold (about 12 minutes on 2 cores) and Helm 3 (about 5).
const BUILD_TIMEOUT_MS = 60 * 60_000;
const IMAGE = 'registry.example/kvstore:dev1';

let skaffold = '';
let helm4 = '';
let home = '';
let env: NodeJS.ProcessEnv = {};

const made = new Made();

/** Runs skaffold in the repository (where skaffold.yaml is) with a throw-away HOME. */
async function sk(args: string[], allowFailure = false, timeout = 120_000) {
  try {
    const r = await exec(skaffold, args, { cwd: ROOT, env, maxBuffer: 64 << 20, timeout });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const err = e as { code?: number; stdout?: string; stderr?: string };
    if (!allowFailure) throw new Error(`skaffold ${args.join(' ')}: ${err.stderr ?? e}`);
    return { code: err.code ?? 1, stdout: err.stdout ?? '', stderr: err.stderr ?? '' };
  }
}

function objects(text: string): Json[] {
  return parseAllDocuments(text)
    .map((d) => d.toJS() as Json)
    .filter((o) => o !== null);
}

beforeAll(async () => {
  const built = await run('bash', [join(ROOT, 'scripts/build-skaffold.sh')], {
    timeoutMs: BUILD_TIMEOUT_MS,
    stderrTo: process.stderr,
  });
  const paths = new Map(
    built.stdout
      .trim()
      .split('\n')
      .map((l) => l.split('=') as [string, string]),
  );
  skaffold = paths.get('skaffold') ?? '';
  const helm3 = paths.get('helm3') ?? '';
  helm4 = (await buildTools(['helm'])).bins.helm;
  home = await mkdtemp(join(tmpdir(), 'kvstore-skaffold-'));
  env = {
    ...process.env,
    HOME: home,
    PATH: `${dirname(helm3)}:${process.env.PATH ?? ''}`,
    SKAFFOLD_UPDATE_CHECK: 'false',
    KUBECONFIG: join(home, 'no-kubeconfig'),
  };
  await sk(['config', 'set', '--global', 'collect-metrics', 'false']);
}, BUILD_TIMEOUT_MS);

afterAll(async () => {
  await made.remove();
  if (home) await rm(home, { recursive: true, force: true });
}, 300_000);

describe('skaffold.yaml', () => {
  it('parses strictly at the newest schema skaffold knows', async () => {
    const file = parse(await readFile(join(ROOT, 'skaffold.yaml'), 'utf8')) as Json;
    const schemas = (await sk(['schema', 'list'])).stdout.trim().split('\n');
    expect(file.apiVersion).toBe(schemas.at(-1));
    const config = parse((await sk(['diagnose', '--yaml-only'])).stdout) as Json;
    expect(config.build.artifacts).toEqual([
      {
        image: 'kvstore',
        context: ROOT,
        custom: {
          buildCommand: 'scripts/image.sh',
          dependencies: { dockerfile: { path: 'Dockerfile' } },
        },
      },
    ]);
    const release = config.deploy.helm.releases[0];
    expect(release).toMatchObject({
      name: 'kvstore',
      chartPath: join(ROOT, 'charts/kvstore'),
      namespace: 'kvstore-system',
    });
    for (const key of ['image.repository', 'cluster.image.repository'])
      expect(release.setValueTemplates[key]).toBe('{{.IMAGE_REPO_kvstore}}');
    for (const key of ['image.tag', 'cluster.image.tag'])
      expect(release.setValueTemplates[key]).toBe('{{.IMAGE_TAG_kvstore}}');
    expect(config.portForward).toEqual([
      expect.objectContaining({
        resourceType: 'service',
        resourceName: 'kvstore',
        namespace: 'kvstore-system',
        port: 8081,
        localPort: 8081,
      }),
    ]);
  }, 60_000);

  it('profiles kind and minikube build locally without pushing', async () => {
    for (const profile of ['kind', 'minikube']) {
      const config = parse((await sk(['diagnose', '--yaml-only', '-p', profile])).stdout) as Json;
      expect(config.build.local, profile).toMatchObject({ push: false });
    }
    const file = parse(await readFile(join(ROOT, 'skaffold.yaml'), 'utf8')) as Json;
    const activation = Object.fromEntries(
      file.profiles.map((p: Json) => [p.name, p.activation[0].kubeContext]),
    );
    expect(activation).toEqual({ kind: 'kind-.*', minikube: 'minikube' });
  }, 60_000);

  it("renders the chart with the built image for the operator and the nodes, and the client Service it forwards is the KVCluster's", async () => {
    const r = await sk([
      'render',
      '--offline',
      '--digest-source=none',
      '--images',
      `kvstore=${IMAGE}`,
      '-p',
      'kind',
    ]);
    const rendered = objects(r.stdout);
    const deploy = rendered.find((o) => o.kind === 'Deployment');
    expect(deploy.spec.replicas).toBe(1);
    expect(deploy.spec.template.spec.containers[0].image).toBe(IMAGE);
    expect(deploy.spec.template.spec.containers[0].args[0]).toBe('kvstore-operator');
    const kvc = rendered.find((o) => o.kind === 'KVCluster');
    expect(kvc.spec.image).toBe(IMAGE);
    // portForward's service/kvstore:8081 is the client Service the operator names after it.
    expect(kvc.metadata.name).toBe('kvstore');
    expect(kvc.spec.ports.client).toBe(8081);

    // The same objects as the chart renders with those values.
    const { stdout } = await exec(
      helm4,
      [
        'template',
        'kvstore',
        join(ROOT, 'charts/kvstore'),
        '-n',
        'kvstore-system',
        '--set',
        'image.repository=registry.example/kvstore,image.tag=dev1,operator.replicas=1',
        '--set',
        'cluster.image.repository=registry.example/kvstore,cluster.image.tag=dev1',
      ],
      { maxBuffer: 64 << 20 },
    );
    const ids = (list: Json[]) => list.map((o) => `${o.kind}/${o.metadata.name}`).sort();
    expect(ids(rendered)).toEqual(ids(objects(stdout)));
  }, 120_000);

  it('rejects an unknown field (skaffold parses strictly)', async () => {
    const text = (await readFile(join(ROOT, 'skaffold.yaml'), 'utf8')).replace(
      'push: false',
      'push: false\n        pushImages: true',
    );
    const bad = join(home, 'skaffold.yaml');
    await writeFile(bad, text);
    const r = await sk(['diagnose', '--yaml-only', '-f', bad], true);
    expect(r.code).not.toBe(0);
    expect(r.stderr + r.stdout).toMatch(/field pushImages not found/);
  }, 60_000);

  it('skaffold build builds the image with the local engine (scripts/image.sh, tagged by skaffold)', async () => {
    await requireEngine();
    const tag = uniqueName();
    const ref = made.image(`kvstore:${tag}`);
    const out = join(home, 'build.json');
    const r = await sk(
      ['build', '--tag', tag, '--push=false', '--cache-artifacts=false', '--file-output', out],
      false,
      1_200_000,
    );
    const { builds } = JSON.parse(await readFile(out, 'utf8')) as {
      builds: { imageName: string; tag: string }[];
    };
    // A local build without push: skaffold also tags the image by its ID, and deploys that tag.
    for (const b of builds) made.image(b.tag);
    const id = (await docker(['image', 'inspect', '--format', '{{.Id}}', ref])).trim();
    expect(builds).toEqual([{ imageName: 'kvstore', tag: `kvstore:${id.replace('sha256:', '')}` }]);
    expect(r.stdout + r.stderr).toContain(`[image] built ${ref}`);
    const cfg = JSON.parse(await docker(['image', 'inspect', '--format', '{{json .Config}}', ref]));
    expect(cfg.Labels['org.opencontainers.image.version']).toBe(VERSION);
    expect(cfg.Cmd).toEqual(['kvstore']);
    expect(cfg.User).toBe('1000:1000');
  }, 1_200_000);
});
