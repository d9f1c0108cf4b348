// The Go-built tools of the test control plane and real node: their versions, the cache, and building them with build-tools.sh.

import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { NodeTool } from './node-lib.ts';
import { run } from './processes.ts';

const HERE = dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = resolve(HERE, '..', '..');
const BUILD_SCRIPT = join(HERE, 'build-tools.sh');

/** The tools build-tools.sh builds, each a binary in the version-keyed cache. */
export const TOOLS = [
  'kube-apiserver',
  'kube-controller-manager',
  'kube-scheduler',
  'kubectl',
  'etcd',
  'kwok',
  'helm',
] as const;
export type Tool = (typeof TOOLS)[number];
/** Prometheus with the Kubernetes service discovery (Debian's has none), for the real-node test. */
export const PROMETHEUS = 'prometheus';
export type AnyTool = Tool | NodeTool | typeof PROMETHEUS;

/** The cache root: KVSTORE_K8S_CACHE, else ${XDG_CACHE_HOME:-$HOME/.cache}/kvstore-k8s. */
export function cacheDir(): string {
  return (
    process.env.KVSTORE_K8S_CACHE ??
    join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'kvstore-k8s')
  );
}

/** The module version a wrapper go.mod requires (e.g. kubernetesVersion() === 'v1.37.2'). */
export function wrapperVersion(wrapper: string, module: string): string {
  const gomod = readFileSync(join(HERE, 'go', wrapper, 'go.mod'), 'utf8');
  const escaped = module.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  const m = new RegExp(`(?:^|\\s)${escaped}\\s+(v\\d[^\\s]*)`, 'm').exec(gomod);
  if (!m?.[1]) throw new Error(`no ${module} version in test/k8s/go/${wrapper}/go.mod`);
  return m[1];
}

export function kubernetesVersion(): string {
  return wrapperVersion('kubernetes', 'k8s.io/kubernetes');
}

export function helmVersion(): string {
  return wrapperVersion('helm', 'helm.sh/helm/v4');
}

/** Builds (or finds in the cache) the tools; returns each binary's path and kwok's stage file. */
export async function buildTools<T extends AnyTool = Tool>(
  tools: readonly T[] = TOOLS as readonly AnyTool[] as readonly T[],
  progress: NodeJS.WritableStream = process.stderr,
): Promise<{ bins: Record<T, string>; kwokStages: string }> {
  const { stdout } = await run('bash', [BUILD_SCRIPT, ...tools], {
    timeoutMs: 3 * 60 * 60_000,
    stderrTo: progress,
  });
  const found = new Map<string, string>();
  for (const line of stdout.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) found.set(line.slice(0, eq), line.slice(eq + 1));
  }
  const bins = {} as Record<T, string>;
  for (const t of tools) {
    const p = found.get(t);
    if (!p) throw new Error(`build-tools.sh did not report ${t}`);
    bins[t] = p;
  }
  return { bins, kwokStages: found.get('kwok-stages') ?? '' };
}
