// The controller: informers on KVClusters and the objects they own feed a work queue of reconciles.

import type {
  KubernetesListObject,
  KubernetesObject,
  V1StatefulSet,
} from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { GROUP, type Phase, PLURAL, VERSION } from '../api/v1alpha1/index.ts';
import type { OperatorMetrics } from '../metrics.ts';
import {
  type BackoffOptions,
  errorMessage,
  type Kube,
  RestartingInformer,
  runWorkers,
  WorkQueue,
} from '../runtime/index.ts';
import type { ControllerContext, ControllerSettings } from './context.ts';
import { createEventRecorder, Warnings } from './events.ts';
import { Memory } from './memory.ts';
import { CLUSTER_LABEL, type KVClusterObject, keyOf, MANAGED_BY, splitKey } from './names.ts';
import type { NodeAdmin } from './node-admin.ts';
import { reconcile } from './reconcile.ts';

export interface ControllerOptions {
  readonly kube: Kube;
  readonly admin: NodeAdmin;
  readonly logger: Logger;
  readonly metrics: OperatorMetrics;
  readonly settings: ControllerSettings;
  /** Watch only this namespace ('' = all). */
  readonly namespace: string;
  readonly workers: number;
  /** Name of this process in Events (reportingInstance). */
  readonly identity: string;
  /** Backoff of failed reconciles and of informer restarts. */
  readonly backoff: BackoffOptions;
}

const MANAGED_SELECTOR = `app.kubernetes.io/managed-by=${MANAGED_BY}`;

/** One leadership term's worth of controller: start() once, stop() once. */
export class Controller {
  readonly #o: ControllerOptions;
  readonly #queue: WorkQueue;
  readonly #clusters: RestartingInformer<KVClusterObject & { metadata?: { name?: string } }>;
  readonly #statefulSets: RestartingInformer<V1StatefulSet>;
  /** Services, ConfigMaps, Secrets, PodDisruptionBudgets: a change or deletion reconciles their owner. */
  readonly #owned: readonly RestartingInformer<KubernetesObject>[];
  readonly #ctx: ControllerContext;
  #workers: Promise<void> | undefined;

  constructor(o: ControllerOptions) {
    this.#o = o;
    this.#queue = new WorkQueue({ backoff: o.backoff, onDepth: (d) => o.metrics.setQueueDepth(d) });
    this.#ctx = {
      kube: o.kube,
      admin: o.admin,
      events: createEventRecorder(o.kube, o.identity, o.logger),
      logger: o.logger,
      settings: o.settings,
      now: () => new Date(),
      warned: new Warnings(),
      memory: new Memory(),
    };
    this.#clusters = this.#clusterInformer();
    this.#statefulSets = this.#statefulSetInformer();
    this.#owned = this.#ownedInformers();
  }

  #clusterInformer(): RestartingInformer<KVClusterObject> {
    const { kube, namespace } = this.#o;
    const base = `/apis/${GROUP}/${VERSION}`;
    const list = () =>
      (namespace
        ? kube.custom.listNamespacedCustomObject({
            group: GROUP,
            version: VERSION,
            namespace,
            plural: PLURAL,
          })
        : kube.custom.listClusterCustomObject({
            group: GROUP,
            version: VERSION,
            plural: PLURAL,
          })) as Promise<KubernetesListObject<KVClusterObject>>;
    return new RestartingInformer<KVClusterObject>({
      ...this.#informerCommon('kvclusters'),
      path: namespace ? `${base}/namespaces/${namespace}/${PLURAL}` : `${base}/${PLURAL}`,
      list,
      onEvent: (_ev, obj) => {
        const m = obj.metadata;
        if (m?.name && m.namespace) this.#queue.add(keyOf(m.namespace, m.name));
      },
    });
  }

  #statefulSetInformer(): RestartingInformer<V1StatefulSet> {
    const { kube, namespace } = this.#o;
    return this.#ownedInformer<V1StatefulSet>('statefulsets', '/apis/apps/v1', () =>
      namespace
        ? kube.apps.listNamespacedStatefulSet({ namespace, labelSelector: MANAGED_SELECTOR })
        : kube.apps.listStatefulSetForAllNamespaces({ labelSelector: MANAGED_SELECTOR }),
    );
  }

  /**
   * The other owned kinds whose loss stops the cluster at once: deleted by hand (or changed),
   * each was made again only at the next resync (30 s by default), meanwhile a deleted headless
   * Service took the nodes' DNS away and a deleted ConfigMap kept restarting pods from starting
   * (what controller-runtime's Owns() does). The generated cluster Secret too: deleted or changed
   * by hand, it is put back with the pods' value at once, before a pod restarts without it or
   * with another value (RBAC cannot limit list and watch to labelled Secrets; the apiserver
   * filters by label, so only the operator's own are sent and cached).
   */
  #ownedInformers(): RestartingInformer<KubernetesObject>[] {
    const { kube, namespace } = this.#o;
    const labelSelector = MANAGED_SELECTOR;
    return [
      this.#ownedInformer('services', '/api/v1', () =>
        namespace
          ? kube.core.listNamespacedService({ namespace, labelSelector })
          : kube.core.listServiceForAllNamespaces({ labelSelector }),
      ),
      this.#ownedInformer('configmaps', '/api/v1', () =>
        namespace
          ? kube.core.listNamespacedConfigMap({ namespace, labelSelector })
          : kube.core.listConfigMapForAllNamespaces({ labelSelector }),
      ),
      this.#ownedInformer('secrets', '/api/v1', () =>
        namespace
          ? kube.core.listNamespacedSecret({ namespace, labelSelector })
          : kube.core.listSecretForAllNamespaces({ labelSelector }),
      ),
      this.#ownedInformer('poddisruptionbudgets', '/apis/policy/v1', () =>
        namespace
          ? kube.policy.listNamespacedPodDisruptionBudget({ namespace, labelSelector })
          : kube.policy.listPodDisruptionBudgetForAllNamespaces({ labelSelector }),
      ),
    ] as RestartingInformer<KubernetesObject>[];
  }

  /** An informer on the operator's objects of one kind; an event reconciles the KVCluster named by its label. */
  #ownedInformer<T extends KubernetesObject>(
    plural: string,
    groupPath: string,
    list: () => Promise<KubernetesListObject<T>>,
  ): RestartingInformer<T> {
    const { namespace } = this.#o;
    return new RestartingInformer<T>({
      ...this.#informerCommon(plural),
      path: namespace ? `${groupPath}/namespaces/${namespace}/${plural}` : `${groupPath}/${plural}`,
      list,
      labelSelector: MANAGED_SELECTOR,
      onEvent: (_ev, obj) => {
        const cluster = obj.metadata?.labels?.[CLUSTER_LABEL];
        const ns = obj.metadata?.namespace;
        if (cluster && ns) this.#queue.add(keyOf(ns, cluster));
      },
    });
  }

  #informerCommon(name: string) {
    const { kube, logger, backoff, metrics } = this.#o;
    return {
      name,
      kubeConfig: kube.kubeConfig,
      backoff,
      logger,
      onRestart: () => metrics.watchRestarted(name),
    };
  }

  /** The informers of owned objects. */
  #informers(): RestartingInformer<KubernetesObject>[] {
    return [this.#statefulSets as RestartingInformer<KubernetesObject>, ...this.#owned];
  }

  /** Starts the informers and, once KVClusters are listed, the workers. */
  async start(): Promise<void> {
    await Promise.all([this.#clusters.start(), ...this.#informers().map((i) => i.start())]);
    if (this.#queue.isShutdown) return;
    this.#workers = runWorkers(
      this.#queue,
      this.#o.workers,
      (key) => this.#handle(key),
      (key, err, retryMs) =>
        this.#o.logger.warn({ key, retryMs, err: errorMessage(err) }, 'reconcile failed'),
    );
    this.#o.logger.info({ namespace: this.#o.namespace || '*' }, 'controller started');
  }

  get synced(): boolean {
    return this.#clusters.synced && this.#informers().every((i) => i.synced);
  }

  async #handle(key: string) {
    const { namespace, name } = splitKey(key);
    const obj = this.#clusters.get(name, namespace);
    if (!obj) {
      // Deleted: its warnings go with it.
      const uids = this.#clusters.list().map((c) => c.metadata?.uid);
      const live = new Set(uids.filter((u) => u !== undefined));
      this.#ctx.warned.retain(live);
      this.#ctx.memory.retain(live);
      return undefined;
    }
    const started = process.hrtime.bigint();
    const seconds = () => Number(process.hrtime.bigint() - started) / 1e9;
    try {
      const result = await reconcile(this.#ctx, obj);
      this.#o.metrics.reconciled('success', seconds());
      return result;
    } catch (err) {
      this.#o.metrics.reconciled('error', seconds());
      throw err;
    } finally {
      this.#countPhases();
    }
  }

  #countPhases(): void {
    const counts = new Map<Phase, number>();
    for (const c of this.#clusters.list()) {
      const p = c.status?.phase;
      if (p) counts.set(p, (counts.get(p) ?? 0) + 1);
    }
    this.#o.metrics.setPhases(counts);
  }

  /** Stops informers and waits for running reconciles to finish. */
  async stop(): Promise<void> {
    this.#queue.shutdown();
    await Promise.all([this.#clusters.stop(), ...this.#informers().map((i) => i.stop())]);
    await this.#workers;
    this.#o.logger.info({}, 'controller stopped');
  }
}
