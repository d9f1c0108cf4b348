// A client-node informer that restarts with backoff after list/watch errors, so a watch error
// never stops the operator; it keeps a cache of the watched objects.

import {
  type KubeConfig,
  type KubernetesListObject,
  type KubernetesObject,
  makeInformer,
} from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { Backoff, type BackoffOptions } from './backoff.ts';
import { errorMessage } from './kube.ts';

export type InformerEvent = 'add' | 'update' | 'delete';

export interface InformerOptions<T extends KubernetesObject> {
  /** For logs and metrics, e.g. `statefulsets`. */
  readonly name: string;
  readonly kubeConfig: KubeConfig;
  /** Watch path, e.g. `/apis/apps/v1/statefulsets` or `/apis/apps/v1/namespaces/x/statefulsets`. */
  readonly path: string;
  /** Lists the same objects as `path` watches (same namespace and selector). */
  readonly list: () => Promise<KubernetesListObject<T>>;
  readonly labelSelector?: string;
  readonly onEvent: (event: InformerEvent, obj: T) => void;
  readonly backoff: BackoffOptions;
  readonly logger: Logger;
  /** Called each time the informer is restarted after an error. */
  readonly onRestart?: () => void;
}

/** An informer whose start() retries until the first list succeeds and which heals itself after. */
export class RestartingInformer<T extends KubernetesObject> {
  readonly #opts: InformerOptions<T>;
  readonly #informer: ReturnType<typeof makeInformer<T>>;
  readonly #backoff: Backoff;
  #stopped = false;
  #synced = false;
  #failed = false;
  #retry: NodeJS.Timeout | undefined;
  #onSynced: (() => void) | undefined;

  constructor(opts: InformerOptions<T>) {
    this.#opts = opts;
    this.#backoff = new Backoff(opts.backoff);
    this.#informer = makeInformer<T>(opts.kubeConfig, opts.path, opts.list, opts.labelSelector);
    for (const ev of ['add', 'update', 'delete'] as const) {
      this.#informer.on(ev, (obj) => opts.onEvent(ev, obj));
    }
    this.#informer.on('error', (err) => this.#failedWith(err));
  }

  /** True once a list has succeeded. */
  get synced(): boolean {
    return this.#synced;
  }

  /** Starts listing and watching; resolves after the first successful list (or on stop()). */
  start(): Promise<void> {
    this.#stopped = false;
    const synced = new Promise<void>((resolve) => {
      this.#onSynced = resolve;
    });
    void this.#run();
    return synced;
  }

  async #run(): Promise<void> {
    if (this.#stopped) return;
    this.#failed = false;
    try {
      await this.#informer.start();
    } catch (err) {
      this.#failedWith(err);
      return;
    }
    if (this.#failed || this.#stopped) return;
    this.#backoff.reset();
    this.#synced = true;
    this.#onSynced?.();
  }

  #failedWith(err: unknown): void {
    this.#failed = true;
    if (this.#stopped || this.#retry) return;
    const delay = this.#backoff.next();
    this.#opts.logger.warn(
      {
        informer: this.#opts.name,
        delayMs: delay,
        attempt: this.#backoff.attempts,
        err: errorMessage(err),
      },
      'watch failed; restarting',
    );
    this.#retry = setTimeout(() => {
      this.#retry = undefined;
      this.#opts.onRestart?.();
      void this.#run();
    }, delay);
  }

  get(name: string, namespace?: string): T | undefined {
    return this.#informer.get(name, namespace);
  }

  list(namespace?: string): T[] {
    return [...this.#informer.list(namespace)];
  }

  /** Stops watching; the cache keeps its last content. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#retry);
    this.#retry = undefined;
    this.#onSynced?.();
    await this.#informer.stop();
  }
}
