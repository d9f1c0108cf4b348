// What the operator saw of the objects it generated and cannot derive again from the spec: the
// settings ConfigMap of an earlier pod revision (its spec is gone), the random cluster secret.
// One deleted or changed by hand is put back from here. Kept for the process's lifetime (a new
// leader starts empty: what it never saw, it reports instead of guessing).

/** One KVCluster's remembered objects, by its uid. */
interface Remembered {
  /** Settings ConfigMaps by name: their data. */
  readonly configMaps: Map<string, Readonly<Record<string, string>>>;
  /** The value of the generated cluster secret the pods run with. */
  clusterSecret?: string;
}

export class Memory {
  readonly #byCluster = new Map<string, Remembered>();

  #of(uid: string): Remembered {
    let r = this.#byCluster.get(uid);
    if (!r) {
      r = { configMaps: new Map() };
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

  /** Forgets the KVClusters whose uid is not in `uids` (deleted). */
  retain(uids: ReadonlySet<string>): void {
    for (const uid of this.#byCluster.keys()) if (!uids.has(uid)) this.#byCluster.delete(uid);
  }
}
