// What the operator saw of the objects it generated and cannot derive again from the spec: the
// settings ConfigMap of an earlier pod revision (its spec is gone), the random cluster secret.
// One deleted or changed by hand is put back from here. Also which pods' claims it marked joined
// (claims.ts), so each is patched once. Kept for the process's lifetime (a new leader starts
// empty: what it never saw, it reports instead of guessing).

/** One KVCluster's remembered objects, by its uid. */
interface Remembered {
  /** Settings ConfigMaps by name: their data. */
  readonly configMaps: Map<string, Readonly<Record<string, string>>>;
  /** The value of the generated cluster secret the pods run with. */
  clusterSecret?: string;
  /** Pods (by uid) whose claims were marked joined (claims.ts). */
  readonly joined: Set<string>;
}

export class Memory {
  readonly #byCluster = new Map<string, Remembered>();

  #of(uid: string): Remembered {
    let r = this.#byCluster.get(uid);
    if (!r) {
      r = { configMaps: new Map(), joined: new Set() };
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

  /** Forgets the KVClusters whose uid is not in `uids` (deleted). */
  retain(uids: ReadonlySet<string>): void {
    for (const uid of this.#byCluster.keys()) if (!uids.has(uid)) this.#byCluster.delete(uid);
  }
}
