// The members that probed this node lately, and whether each said it serves: what a node whose member source never answered knows of the others.

import type { HelloRequest } from '../replica/index.ts';

/** Askers remembered at most (more is not a real cluster's): the one heard from longest ago goes. */
const MAX_CALLERS = 4096;

/**
 * A node whose member source has not answered since it started (its DNS failing) knows no
 * member, yet the members whose source lists it probe it, and each hello request says whether
 * its asker serves (HelloRequest.serving). refusalOf counts those as members that might take its
 * clients. An asker counts while its last probe is more recent than `withinMs` (the time a
 * member that stops answering takes to be called down: its probes then stop too), on the
 * monotonic clock.
 */
export class Callers {
  readonly #self: string;
  readonly #withinMs: number;
  readonly #now: () => number;
  /** By name, the least recently heard first. */
  readonly #heard = new Map<string, { readonly at: number; readonly serving: boolean }>();

  constructor(self: string, withinMs: number, now: () => number = () => performance.now()) {
    this.#self = self;
    this.#withinMs = withinMs;
    this.#now = now;
  }

  /** Notes a hello request (one without a name, from an older version or this node, is not). */
  heard(asker: HelloRequest): void {
    const { name } = asker;
    if (name === undefined || name === this.#self) return;
    this.#heard.delete(name);
    this.#heard.set(name, { at: this.#now(), serving: asker.serving === true });
    if (this.#heard.size > MAX_CALLERS) {
      const [oldest] = this.#heard.keys();
      if (oldest !== undefined) this.#heard.delete(oldest);
    }
  }

  /** How many askers heard from within `withinMs` said they serve. */
  serving(): number {
    const since = this.#now() - this.#withinMs;
    let n = 0;
    for (const h of this.#heard.values()) if (h.at >= since && h.serving) n++;
    return n;
  }
}
