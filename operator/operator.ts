// The operator process: leader election decides when a Controller runs; stop() shuts down cleanly.

import type { Logger } from 'pino';
import { Controller, cachedSecretReader, createNodeAdmin } from './controller/index.ts';
import type { OperatorMetrics } from './metrics.ts';
import { type Options, RETRY_BACKOFF } from './options.ts';
import { type Kube, LeaderElector } from './runtime/index.ts';

export interface OperatorDeps {
  readonly options: Options;
  readonly kube: Kube;
  readonly logger: Logger;
  readonly metrics: OperatorMetrics;
}

/** Runs a Controller while this process leads (or always, without leader election). */
export class Operator {
  readonly #d: OperatorDeps;
  readonly #elector: LeaderElector | null;
  #controller: Controller | null = null;
  /** Leadership changes run one after another: a new term waits for the old one to stop. */
  #transitions: Promise<void> = Promise.resolve();

  constructor(d: OperatorDeps) {
    this.#d = d;
    const o = d.options;
    this.#elector = o.leaderElect
      ? new LeaderElector({
          api: d.kube.coordination,
          namespace: o.leaseNamespace,
          name: o.leaseName,
          identity: o.identity,
          leaseDurationMs: o.leaseDurationMs,
          renewDeadlineMs: o.renewDeadlineMs,
          retryPeriodMs: o.retryPeriodMs,
          logger: d.logger,
          onStartedLeading: () => this.#enqueue(() => this.#startController()),
          onStoppedLeading: () => this.#enqueue(() => this.#stopController()),
        })
      : null;
  }

  /** Ready: a standby is always ready; a leader once its informers have listed. */
  get ready(): boolean {
    return this.#controller === null ? true : this.#controller.synced;
  }

  get leading(): boolean {
    return this.#controller !== null;
  }

  start(): void {
    if (this.#elector) this.#elector.start();
    else void this.#enqueue(() => this.#startController());
  }

  #enqueue(step: () => Promise<void>): Promise<void> {
    this.#transitions = this.#transitions.then(step, step);
    return this.#transitions;
  }

  async #startController(): Promise<void> {
    const o = this.#d.options;
    this.#controller = new Controller({
      kube: this.#d.kube,
      admin: createNodeAdmin(
        o.podUrlTemplate,
        o.adminTimeoutMs,
        cachedSecretReader(this.#d.kube.core),
      ),
      logger: this.#d.logger,
      metrics: this.#d.metrics,
      settings: { clusterDomain: o.clusterDomain, pollMs: o.pollMs, resyncMs: o.resyncMs },
      namespace: o.namespace,
      workers: o.workers,
      identity: o.identity,
      backoff: RETRY_BACKOFF,
    });
    this.#d.metrics.setLeader(true);
    // Not awaited: start() waits for the first list, which retries until it works or stop().
    this.#controller
      .start()
      .catch((err: unknown) => this.#d.logger.error({ err }, 'controller failed to start'));
  }

  async #stopController(): Promise<void> {
    const c = this.#controller;
    this.#controller = null;
    this.#d.metrics.setLeader(false);
    await c?.stop();
  }

  /** Stops reconciling (waiting for running reconciles), then releases the Lease. */
  async stop(): Promise<void> {
    if (this.#elector) await this.#elector.stop();
    await this.#enqueue(() => this.#stopController());
  }
}
