// The operator's Kubernetes API calls: server-side apply with one field manager, status, reads.

import {
  ApiException,
  AppsV1Api,
  CoordinationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  type KubeConfig,
  type KubernetesObject,
  KubernetesObjectApi,
  PatchStrategy,
  PolicyV1Api,
  setHeaderOptions,
} from '@kubernetes/client-node';

/** The one field manager of every object the operator applies. */
export const FIELD_MANAGER = 'kvstore-operator';

/** HTTP status of a failed API call, if it was one. */
export function statusCode(err: unknown): number | undefined {
  return err instanceof ApiException ? err.code : undefined;
}

/** The apiserver's own message (ApiException.body is the raw response text), else the error's. */
export function errorMessage(err: unknown): string {
  if (err instanceof ApiException) {
    const body: unknown = err.body;
    if (typeof body === 'string') {
      try {
        const parsed = JSON.parse(body) as { message?: unknown };
        if (typeof parsed.message === 'string') return parsed.message;
      } catch {
        // not JSON: fall through to the raw text
      }
      return `HTTP ${err.code}: ${body.slice(0, 300)}`;
    }
    return `HTTP ${err.code}`;
  }
  return err instanceof Error ? err.message : String(err);
}

function orNullOn404<T>(p: Promise<T>): Promise<T | null> {
  return p.catch((err: unknown) => {
    if (statusCode(err) === 404) return null;
    throw err;
  });
}

/** KubernetesObjectApi with its discovery lookup made public (it is protected upstream). */
class ObjectApi extends KubernetesObjectApi {
  /** The resource of `kind` in `apiVersion`, or undefined; rejects (404) when the group is unknown. */
  lookup(apiVersion: string, kind: string) {
    return this.resource(apiVersion, kind);
  }
}

/** Identifies one object for read and delete. */
export interface ObjectRef {
  readonly apiVersion: string;
  readonly kind: string;
  readonly namespace: string;
  readonly name: string;
}

export interface DeleteOptions {
  /** Leave the object's dependents (a StatefulSet's pods) in place, without their owner. */
  readonly orphan?: boolean;
  /** Delete only the object with this uid (a conflict, 409, if the name has another now). */
  readonly uid?: string;
}

/** Typed API clients made from one KubeConfig, plus the calls the controller needs. */
export class Kube {
  readonly kubeConfig: KubeConfig;
  readonly objects: ObjectApi;
  readonly core: CoreV1Api;
  readonly apps: AppsV1Api;
  readonly custom: CustomObjectsApi;
  readonly coordination: CoordinationV1Api;
  readonly policy: PolicyV1Api;

  constructor(kc: KubeConfig) {
    this.kubeConfig = kc;
    this.objects = kc.makeApiClient(ObjectApi);
    this.core = kc.makeApiClient(CoreV1Api);
    this.apps = kc.makeApiClient(AppsV1Api);
    this.custom = kc.makeApiClient(CustomObjectsApi);
    this.coordination = kc.makeApiClient(CoordinationV1Api);
    this.policy = kc.makeApiClient(PolicyV1Api);
  }

  /** Server-side apply of `obj` (force: the operator owns every field it sets); `dryRun`: checked, not stored. */
  apply<T extends KubernetesObject>(obj: T, opts: { dryRun?: boolean } = {}): Promise<T> {
    return this.objects.patch(
      obj,
      undefined,
      opts.dryRun ? 'All' : undefined,
      FIELD_MANAGER,
      true,
      PatchStrategy.ServerSideApply,
    );
  }

  /** Server-side apply of a custom object's status subresource. */
  async applyStatus(ref: ObjectRef & { readonly plural: string }, status: unknown): Promise<void> {
    const [group, version] = ref.apiVersion.split('/') as [string, string];
    const body = {
      apiVersion: ref.apiVersion,
      kind: ref.kind,
      metadata: { name: ref.name, namespace: ref.namespace },
      status,
    };
    const options = setHeaderOptions('Content-Type', PatchStrategy.ServerSideApply);
    await this.custom.patchNamespacedCustomObjectStatus(
      {
        group,
        version,
        namespace: ref.namespace,
        plural: ref.plural,
        name: ref.name,
        body,
        fieldManager: FIELD_MANAGER,
        force: true,
      },
      options,
    );
  }

  /** The object, or null when it does not exist. */
  read<T extends KubernetesObject>(ref: ObjectRef): Promise<T | null> {
    const header = {
      apiVersion: ref.apiVersion,
      kind: ref.kind,
      metadata: { name: ref.name, namespace: ref.namespace },
    };
    return orNullOn404(this.objects.read<T>(header));
  }

  /** Deletes the object; false when it did not exist. */
  async delete(ref: ObjectRef, opts: DeleteOptions = {}): Promise<boolean> {
    const header = {
      apiVersion: ref.apiVersion,
      kind: ref.kind,
      metadata: { name: ref.name, namespace: ref.namespace },
    };
    // One DeleteOptions body: the apiserver reads query parameters only when there is none.
    const body = {
      ...(opts.orphan ? { propagationPolicy: 'Orphan' } : {}),
      ...(opts.uid ? { preconditions: { uid: opts.uid } } : {}),
    };
    const deleted = this.objects.delete(
      header,
      undefined,
      undefined,
      undefined,
      undefined,
      undefined,
      Object.keys(body).length > 0 ? body : undefined,
    );
    return (await orNullOn404(deleted)) !== null;
  }

  /** Whether the apiserver serves `kind` in `apiVersion` (discovery; e.g. a CRD is installed). */
  async serves(apiVersion: string, kind: string): Promise<boolean> {
    try {
      return (await this.objects.lookup(apiVersion, kind)) !== undefined;
    } catch (err) {
      if (statusCode(err) === 404) return false;
      throw err;
    }
  }
}
