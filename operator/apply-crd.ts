// `kvstore-operator apply-crd --file F`: server-side applies a CustomResourceDefinition and waits until it is Established (the chart's pre-upgrade hook Job runs it).

import { readFileSync } from 'node:fs';
import {
  ApiextensionsV1Api,
  type KubernetesObject,
  PatchStrategy,
  setHeaderOptions,
} from '@kubernetes/client-node';
import { z } from 'zod';
import { defaultsOf, formatHelp, parseOptions } from '../src/config/index.ts';
import { KvError } from '../src/errors/index.ts';
import { errorMessage, type Kube, statusCode } from './runtime/index.ts';

/**
 * Every option: its schema, `.default()` (overridden by `--kebab-name value` or
 * `KVSTORE_CRD_UPPER_SNAKE`) and `.describe()` (its line in --help).
 */
const options = {
  /** The CRD manifest, JSON (the chart renders it so); required. */
  file: z.string().default('').describe('the CRD manifest, JSON (required)'),
  /** Kubeconfig file; empty uses $KUBECONFIG, ~/.kube/config, or the in-cluster service account. */
  kubeconfig: z
    .string()
    .default('')
    .describe('kubeconfig file (empty: $KUBECONFIG, ~/.kube/config, in-cluster)'),
  /**
   * Field manager of the apply. `helm`, the manager Helm 4 installs `crds/` with, so the hook
   * and `helm install` own the CRD's fields together and a field a newer chart drops is removed.
   */
  fieldManager: z.string().min(1).default('helm').describe('field manager of the apply'),
  /** How long to wait for the API server to report the CRD Established. */
  timeoutMs: z.coerce
    .number()
    .int()
    .positive()
    .default(60_000)
    .describe('wait this long for the CRD to be Established'),
};

const schema = z.object(options);

export type ApplyCrdOptions = z.output<typeof schema>;

/** The defaults, as --help shows them and loading starts from. */
export const APPLY_CRD_DEFAULTS = defaultsOf(options);

export function applyCrdHelp(): string {
  return formatHelp({
    intro: [
      'Usage: kvstore-operator apply-crd --file <crd.json> [options]',
      '',
      'Server-side applies one CustomResourceDefinition (conflicts forced: this manager owns the',
      'fields it sets) and waits until the API server reports it Established. The chart runs it',
      'as its pre-upgrade hook Job.',
    ],
    shape: options,
    envPrefix: 'KVSTORE_CRD',
    flagWidth: 22,
    envWidth: 27,
  });
}

export function loadApplyCrdOptions(
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
):
  | { readonly kind: 'options'; readonly options: ApplyCrdOptions }
  | { readonly kind: 'help' | 'error'; readonly text: string } {
  const r = parseOptions({
    schema,
    defaults: APPLY_CRD_DEFAULTS,
    envPrefix: 'KVSTORE_CRD',
    module: 'config',
    argv,
    env,
  });
  if (r.kind === 'help') return { kind: 'help', text: applyCrdHelp() };
  if (r.kind === 'error') return r;
  if (r.value.file === '') {
    return { kind: 'error', text: 'config: --file (KVSTORE_CRD_FILE): the CRD file is required' };
  }
  return { kind: 'options', options: r.value };
}

interface Crd extends KubernetesObject {
  spec?: { names?: { plural?: string } };
  status?: { conditions?: { type: string; status: string; message?: string }[] };
}

/**
 * The CRD in `file`, checked to be one apiextensions.k8s.io/v1 CustomResourceDefinition. JSON,
 * kept as plain data: client-node's YAML loader turns built-in kinds into its model classes,
 * whose field names (`_default`, `x_kubernetes_validations`) are not the API's.
 */
export function readCrd(file: string): Crd {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new KvError('KV_ERR_CONFIG', `config: cannot read --file ${file}`, { cause: err });
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new KvError('KV_ERR_CONFIG', `config: --file ${file} is not JSON: ${why}`, {
      cause: err,
    });
  }
  const crd = doc as Crd | null;
  if (
    crd?.apiVersion !== 'apiextensions.k8s.io/v1' ||
    crd.kind !== 'CustomResourceDefinition' ||
    !crd.metadata?.name
  ) {
    throw new KvError(
      'KV_ERR_CONFIG',
      `config: --file ${file} is not an apiextensions.k8s.io/v1 CustomResourceDefinition with a name`,
    );
  }
  return crd;
}

/** Why the CRD is not Established yet, or null once it is. */
function notEstablished(crd: Crd | null): string | null {
  if (!crd) return 'not found';
  const conditions = crd.status?.conditions ?? [];
  const established = conditions.find((c) => c.type === 'Established');
  if (established?.status === 'True') return null;
  const names = conditions.find((c) => c.type === 'NamesAccepted');
  if (names?.status === 'False') return `names not accepted: ${names.message ?? ''}`;
  return established?.message ?? 'not Established yet';
}

/**
 * Applies `crd` (server-side apply, forced, as `fieldManager`), then waits until it is
 * Established, so that objects of the new schema can be written right after. Resolves with the
 * CRD's generation; rejects (KV_ERR_INTERNAL, `crd: ...`) on an API error or the timeout.
 */
export async function applyCrd(
  kube: Kube,
  crd: Crd,
  opts: { readonly fieldManager: string; readonly timeoutMs: number; readonly pollMs?: number },
): Promise<number> {
  const name = crd.metadata?.name ?? '';
  // The raw API (body `any`, sent as given): KubernetesObjectApi would serialize the CRD through
  // client-node's models and drop every key they name differently (`default`, `x-kubernetes-*`).
  const api = kube.kubeConfig.makeApiClient(ApiextensionsV1Api);
  // Apply only what the file says: never a resourceVersion, status or managedFields from a dump.
  const { status: _status, ...body } = crd;
  const { resourceVersion: _rv, managedFields: _mf, ...metadata } = crd.metadata ?? {};
  let applied: Crd;
  try {
    applied = await api.patchCustomResourceDefinition(
      { name, body: { ...body, metadata }, fieldManager: opts.fieldManager, force: true },
      setHeaderOptions('Content-Type', PatchStrategy.ServerSideApply),
    );
  } catch (err) {
    throw new KvError('KV_ERR_INTERNAL', `crd: cannot apply ${name}: ${errorMessage(err)}`, {
      cause: err,
    });
  }
  const deadline = Date.now() + opts.timeoutMs;
  let why = notEstablished(applied);
  while (why !== null) {
    if (Date.now() >= deadline) {
      throw new KvError(
        'KV_ERR_INTERNAL',
        `crd: ${name} not Established after ${opts.timeoutMs} ms: ${why}`,
      );
    }
    await new Promise((r) => setTimeout(r, opts.pollMs ?? 500));
    try {
      why = notEstablished(await api.readCustomResourceDefinition({ name }));
    } catch (err) {
      why = statusCode(err) === 404 ? 'not found' : errorMessage(err);
    }
  }
  return applied.metadata?.generation ?? 0;
}
