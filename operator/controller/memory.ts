// What the operator saw of the objects it generated and cannot derive again from the spec: the
// settings ConfigMap of an earlier pod revision (its spec is gone), the random cluster secret.
// One deleted or changed by hand is put back from here. Also which pods' claims it marked joined
// (claims.ts), so each is patched once; and, per pod name, when a pod of that name was last made
// and since when it is missing (blockers.ts). Kept for the process's lifetime (a new leader starts
// empty: what it never saw, it reports instead of guessing).

/** A pod the StatefulSet keeps that does not exist, as this operator has seen it (observePods). */
export interface MissingPod {
  readonly name: string;
  /**
   * How long this operator has seen it missing (ms; 0 the first time); Infinity when it was
   * missing the first time this process looked at the cluster (a new leader: not known).
   */
  readonly missingForMs: number;
  /** When a pod of that name was last seen made (its creationTimestamp, ms), if ever. */
  readonly lastMadeAtMs?: number;
}

/** One KVCluster's remembered objects, by its uid. */
interface Remembered {
  /** Settings ConfigMaps by name: their data. */
  readonly configMaps: Map<string, Readonly<Record<string, string>>>;
  /** The value of the generated cluster secret the pods run with. */
  clusterSecret?: string;
  /** Pods (by uid) whose claims were marked joined (claims.ts). */
  readonly joined: Set<string>;
  /** By pod name: the latest creation seen of a pod of that name, since when none is seen. */
  readonly pods: Map<string, { madeAtMs?: number; missingSinceMs?: number }>;
  /** observePods was called for it (after that a pod missing is newly missing). */
  podsSeen?: boolean;
}

export class Memory {
  readonly #byCluster = new Map<string, Remembered>();

  #of(uid: string): Remembered {
    let r = this.#byCluster.get(uid);
    if (!r) {
      r = { configMaps: new Map(), joined: new Set(), pods: new Map() };
      this.#byCluster.set(uid, r);
    }
    return r;
  }

  rememberConfigMap(uid: string, name: string, data: Readonly<Record<string, string>>): void {
    this.#of(uid).configMaps.set(name, { ...data });
  }

  configMap(uid: string, name: string): Readonly<Record<string, string>> | undefined {
    return this.#byCluster.get(uid)?.configMaps.get(name);
  }

  /** Drops the ConfigMaps of KVCluster `uid` not named in `keep` (pruned: no revision uses them). */
  keepConfigMaps(uid: string, keep: ReadonlySet<string>): void {
    const maps = this.#byCluster.get(uid)?.configMaps;
    for (const name of maps?.keys() ?? []) if (!keep.has(name)) maps?.delete(name);
  }

  rememberClusterSecret(uid: string, value: string): void {
    this.#of(uid).clusterSecret = value;
  }

  clusterSecret(uid: string): string | undefined {
    return this.#byCluster.get(uid)?.clusterSecret;
  }

  /** Whether pod `podUid`'s claim was marked joined. */
  joined(uid: string, podUid: string): boolean {
    return this.#byCluster.get(uid)?.joined.has(podUid) ?? false;
  }

  rememberJoined(uid: string, podUid: string): void {
    this.#of(uid).joined.add(podUid);
  }

  /** Forgets the pods of KVCluster `uid` not in `podUids` (gone). */
  keepJoined(uid: string, podUids: ReadonlySet<string>): void {
    const joined = this.#byCluster.get(uid)?.joined;
    for (const p of joined ?? []) if (!podUids.has(p)) joined?.delete(p);
  }

  /**
   * Notes, at `nowMs`, the pods of KVCluster `uid` there (with their creation times) and the
   * names kept but missing; returns each missing one with how long it has been seen missing
   * (0 the first time; Infinity for one missing the first time this process looks at the
   * cluster: a new leader does not wait again for what its predecessor saw) and when a pod of
   * that name was last seen made. Other names are forgotten.
   */
  observePods(
    uid: string,
    nowMs: number,
    present: readonly { readonly name: string; readonly createdAtMs: number }[],
    missing: readonly string[],
  ): MissingPod[] {
    const r = this.#of(uid);
    const pods = r.pods;
    // Missing when first looked at (a new leader): for as long as anyone knows.
    const since = r.podsSeen ? nowMs : Number.NEGATIVE_INFINITY;
    r.podsSeen = true;
    const seen = new Map<string, { madeAtMs?: number; missingSinceMs?: number }>();
    for (const p of present) {
      const made = Math.max(p.createdAtMs, pods.get(p.name)?.madeAtMs ?? 0);
      seen.set(p.name, { madeAtMs: made });
    }
    const found = missing.map((name) => {
      const was = pods.get(name);
      const missingSinceMs = was?.missingSinceMs ?? since;
      seen.set(name, { ...was, missingSinceMs });
      const made = was?.madeAtMs !== undefined ? { lastMadeAtMs: was.madeAtMs } : {};
      return { name, missingForMs: nowMs - missingSinceMs, ...made };
    });
    pods.clear();
    for (const [name, v] of seen) pods.set(name, v);
    return found;
  }

  /** Forgets the KVClusters whose uid is not in `uids` (deleted). */
  retain(uids: ReadonlySet<string>): void {
    for (const uid of this.#byCluster.keys()) if (!uids.has(uid)) this.#byCluster.delete(uid);
  }
}
