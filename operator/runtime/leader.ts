// Leader election on a coordination.k8s.io Lease: one operator process reconciles at a time.

import { type CoordinationV1Api, type V1Lease, V1MicroTime } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { errorMessage, statusCode } from './kube.ts';

export interface LeaderOptions {
  readonly api: CoordinationV1Api;
  readonly namespace: string;
  readonly name: string;
  /** This process's identity in the Lease (unique per process). */
  readonly identity: string;
  /** How long a holder's claim lasts without renewal (rounded up to whole seconds in the Lease). */
  readonly leaseDurationMs: number;
  /** A leader that could not renew for this long stops leading (must be < leaseDurationMs). */
  readonly renewDeadlineMs: number;
  /** Time between attempts to acquire or renew. */
  readonly retryPeriodMs: number;
  readonly logger: Logger;
  readonly onStartedLeading: () => void;
  /** Awaited on stop() before the Lease is released, so two leaders never overlap. */
  readonly onStoppedLeading: () => void | Promise<void>;
}

/**
 * Campaigns for the Lease, renews it while leading, and releases it on stop(). Expiry is judged
 * by the local clock from when this process last saw the record change (like client-go), so
 * clock skew between processes does not matter.
 */
export class LeaderElector {
  readonly #o: LeaderOptions;
  #leader = false;
  #stopped = false;
  #observed = '';
  #observedAt = 0;
  #lastRenew = 0;
  #wake: (() => void) | undefined;
  #loop: Promise<void> | undefined;

  constructor(opts: LeaderOptions) {
    this.#o = opts;
  }

  get isLeader(): boolean {
    return this.#leader;
  }

  /** Starts campaigning in the background. */
  start(): void {
    this.#loop ??= this.#run();
  }

  async #run(): Promise<void> {
    while (!this.#stopped) {
      const ok = await this.#tryAcquireOrRenew().catch((err: unknown) => {
        this.#o.logger.warn({ lease: this.#o.name, err: errorMessage(err) }, 'lease call failed');
        return false;
      });
      if (this.#stopped) break;
      this.#update(ok);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, this.#o.retryPeriodMs);
        this.#wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
  }

  #update(renewed: boolean): void {
    const now = Date.now();
    if (renewed) this.#lastRenew = now;
    if (renewed && !this.#leader) {
      this.#leader = true;
      this.#o.logger.info({ lease: this.#o.name }, 'leading');
      this.#o.onStartedLeading();
    } else if (!renewed && this.#leader && now - this.#lastRenew >= this.#o.renewDeadlineMs) {
      this.#leader = false;
      this.#o.logger.warn({ lease: this.#o.name }, 'lost the lease');
      void this.#o.onStoppedLeading();
    }
  }

  #leaseSeconds(): number {
    return Math.max(1, Math.ceil(this.#o.leaseDurationMs / 1000));
  }

  async #tryAcquireOrRenew(): Promise<boolean> {
    const { api, namespace, name, identity } = this.#o;
    const lease = await api.readNamespacedLease({ name, namespace }).catch((err: unknown) => {
      if (statusCode(err) === 404) return null;
      throw err;
    });
    const now = new V1MicroTime();
    if (lease === null) {
      const spec = { holderIdentity: identity, leaseDurationSeconds: this.#leaseSeconds() };
      const body = {
        metadata: { name, namespace },
        spec: { ...spec, acquireTime: now, renewTime: now, leaseTransitions: 0 },
      };
      return this.#write(() => api.createNamespacedLease({ namespace, body }));
    }
    const spec = lease.spec ?? {};
    this.#observe(spec);
    const holder = spec.holderIdentity ?? '';
    const held = holder !== '' && holder !== identity;
    const durationMs = (spec.leaseDurationSeconds ?? this.#leaseSeconds()) * 1000;
    if (held && Date.now() < this.#observedAt + durationMs) return false;
    const next: V1Lease = {
      ...lease,
      spec: {
        ...spec,
        holderIdentity: identity,
        leaseDurationSeconds: this.#leaseSeconds(),
        renewTime: now,
        ...(holder === identity
          ? {}
          : { acquireTime: now, leaseTransitions: (spec.leaseTransitions ?? 0) + 1 }),
      },
    };
    return this.#write(() => api.replaceNamespacedLease({ name, namespace, body: next }));
  }

  #observe(spec: NonNullable<V1Lease['spec']>): void {
    const record = JSON.stringify([spec.holderIdentity, spec.renewTime, spec.leaseTransitions]);
    if (record !== this.#observed) {
      this.#observed = record;
      this.#observedAt = Date.now();
    }
  }

  /** Runs a create/replace; a conflict (someone else wrote first) is a lost round, not an error. */
  async #write(call: () => Promise<V1Lease>): Promise<boolean> {
    try {
      await call();
      return true;
    } catch (err) {
      if (statusCode(err) === 409) return false;
      throw err;
    }
  }

  /** Stops campaigning; a leader releases the Lease so another process takes over at once. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#wake?.();
    await this.#loop;
    if (!this.#leader) return;
    this.#leader = false;
    await this.#o.onStoppedLeading();
    await this.#release().catch((err: unknown) =>
      this.#o.logger.warn({ lease: this.#o.name, err: errorMessage(err) }, 'lease release failed'),
    );
  }

  async #release(): Promise<void> {
    const { api, namespace, name, identity } = this.#o;
    const lease = await api.readNamespacedLease({ name, namespace });
    if (lease.spec?.holderIdentity !== identity) return;
    const now = new V1MicroTime();
    const spec = {
      ...lease.spec,
      holderIdentity: undefined,
      leaseDurationSeconds: 1,
      renewTime: now,
    };
    await api.replaceNamespacedLease({ name, namespace, body: { ...lease, spec } });
    this.#o.logger.info({ lease: name }, 'lease released');
  }
}
