// Smoke test of the real test control plane: version, /readyz, RBAC, scheduling onto kwok nodes, garbage collection, helm.

import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { KWOK_NODE_LABEL } from './fake-nodes.ts';
import { helmVersion, kubernetesVersion } from './tools.ts';
import { useControlPlane } from './use-control-plane.ts';

interface PodList {
  items: {
    metadata: { name: string; deletionTimestamp?: string };
    spec: { nodeName?: string };
    status: { phase?: string; conditions?: { type: string; status: string }[] };
  }[];
}

describe('test control plane', () => {
  const k = useControlPlane({ nodes: 2 });

  it('serves the built Kubernetes version to the built kubectl', async () => {
    const v = JSON.parse(await k().kubectl(['version', '-o', 'json'])) as {
      clientVersion: { gitVersion: string };
      serverVersion: { gitVersion: string; major: string; minor: string };
    };
    expect(v.serverVersion.gitVersion).toBe(kubernetesVersion());
    expect(v.clientVersion.gitVersion).toBe(kubernetesVersion());
    expect(`v${v.serverVersion.major}.${v.serverVersion.minor}`).toBe(
      kubernetesVersion().split('.').slice(0, 2).join('.'),
    );
  });

  it('is ready and listens on loopback', async () => {
    expect((await k().kubectl(['get', '--raw', '/readyz'])).trim()).toBe('ok');
    expect(k().server).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
  });

  it('authorizes with RBAC', async () => {
    const r = await k().kubectlResult(
      ['auth', 'can-i', 'create', 'pods', '--as=system:serviceaccount:default:default'],
      { allowFailure: true },
    );
    expect(r.stdout.trim()).toBe('no');
    expect((await k().kubectl(['auth', 'can-i', '*', '*'])).trim()).toBe('yes');
  });

  it('schedules StatefulSet pods onto kwok nodes, makes them Ready, and garbage-collects them', async () => {
    const ns = 'smoke';
    await k().kubectl(['create', 'namespace', ns]);
    await k().kubectl(['apply', '-n', ns, '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'apps/v1',
        kind: 'StatefulSet',
        metadata: { name: 'web' },
        spec: {
          replicas: 2,
          serviceName: 'web',
          selector: { matchLabels: { app: 'web' } },
          template: {
            metadata: { labels: { app: 'web' } },
            spec: {
              nodeSelector: { [KWOK_NODE_LABEL.key]: KWOK_NODE_LABEL.value },
              tolerations: [
                { key: 'kwok.x-k8s.io/node', operator: 'Exists', effect: 'NoSchedule' },
              ],
              containers: [{ name: 'web', image: 'example.invalid/web:1' }],
            },
          },
        },
      }),
    });
    await k().kubectl(['rollout', 'status', '-n', ns, 'statefulset/web', '--timeout=180s'], {
      timeoutMs: 200_000,
    });
    const pods = JSON.parse(
      await k().kubectl(['get', 'pods', '-n', ns, '-l', 'app=web', '-o', 'json']),
    ) as PodList;
    expect(pods.items.map((p) => p.metadata.name).sort()).toEqual(['web-0', 'web-1']);
    for (const p of pods.items) {
      expect(p.spec.nodeName).toMatch(/^kwok-node-\d$/);
      expect(p.status.phase).toBe('Running');
      expect(p.status.conditions?.find((c) => c.type === 'Ready')?.status).toBe('True');
    }

    // Background deletion: the garbage collector deletes the pods, kwok finishes them.
    await k().kubectl(['delete', '-n', ns, 'statefulset/web', '--cascade=background']);
    await k().kubectl(
      ['wait', '-n', ns, '--for=delete', 'pod', '-l', 'app=web', '--timeout=120s'],
      { timeoutMs: 140_000 },
    );
    const left = JSON.parse(await k().kubectl(['get', 'pods', '-n', ns, '-o', 'json'])) as PodList;
    expect(left.items).toEqual([]);
    await k().kubectl(['delete', 'namespace', ns, '--wait=false']);
  }, 360_000);

  it('runs the built helm against the control plane', async () => {
    expect((await k().helm(['version', '--short'])).trim()).toMatch(
      new RegExp(`^${helmVersion().replace(/\./g, '\\.')}`),
    );
    const chart = join(k().dir, 'smoke-chart');
    await mkdir(join(chart, 'templates'), { recursive: true });
    await writeFile(
      join(chart, 'Chart.yaml'),
      'apiVersion: v2\nname: smoke\nversion: 0.1.0\ntype: application\n',
    );
    await writeFile(
      join(chart, 'templates', 'configmap.yaml'),
      'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-cm\ndata:\n  greeting: {{ .Values.greeting | quote }}\n',
    );
    await writeFile(join(chart, 'values.yaml'), 'greeting: hello\n');
    await k().helm(['install', 'smoke', chart, '-n', 'default', '--wait', '--timeout=60s']);
    expect(
      await k().kubectl(['get', 'configmap', 'smoke-cm', '-o', 'jsonpath={.data.greeting}']),
    ).toBe('hello');
    expect(await k().helm(['list', '-n', 'default', '-q'])).toContain('smoke');
    await k().helm(['uninstall', 'smoke', '-n', 'default', '--wait']);
  }, 120_000);
});
