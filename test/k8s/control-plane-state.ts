// A running control plane as another process sees it: the state file `k8s:up` writes, and stopping or probing from it.

import { createHash } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { type NodeState, stopNode } from './node-lib.ts';
import { run, stopComponents } from './processes.ts';
import { cacheDir, REPO_ROOT } from './tools.ts';

/** What a state file holds; enough for another process to use or stop the control plane. */
export interface ControlPlaneState {
  readonly dir: string;
  readonly kubeconfig: string;
  readonly server: string;
  readonly binDir: string;
  readonly version: string;
  readonly pids: Record<string, number>;
  readonly env: Record<string, string>;
  /** The real node, when started with `node: true`. */
  readonly node?: NodeState;
}

/** Where `k8s:up` records the running control plane; one per clone (cache dirs are shared). */
export function stateFile(): string {
  const id = createHash('sha256').update(REPO_ROOT).digest('hex').slice(0, 12);
  return process.env.KVSTORE_K8S_STATE ?? join(cacheDir(), `control-plane-${id}.json`);
}

export function stateOf(cp: ControlPlaneState): ControlPlaneState {
  const { dir, kubeconfig, server, binDir, version, pids, env, node } = cp;
  return { dir, kubeconfig, server, binDir, version, pids, env, node };
}

/** Stops a control plane recorded in a state file (possibly started by another process). */
export async function stopFromState(state: ControlPlaneState): Promise<void> {
  try {
    if (state.node) await stopNode(state.node);
  } finally {
    await stopComponents(state.pids);
  }
  await rm(state.dir, { recursive: true, force: true, maxRetries: 3 });
}

/** Whether the apiserver of a recorded control plane answers /readyz. */
export async function isReady(state: ControlPlaneState): Promise<boolean> {
  const r = await run(
    join(state.binDir, 'kubectl'),
    ['--kubeconfig', state.kubeconfig, 'get', '--raw', '/readyz', '--request-timeout=5s'],
    { allowFailure: true, timeoutMs: 10_000 },
  ).catch(() => undefined);
  return r?.code === 0 && r.stdout.trim() === 'ok';
}
