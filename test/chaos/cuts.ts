// Which links the nemesis has cut, counted per split: overlapping splits share a link, and the
// link comes back only when the last split holding it heals. The neighbour-table changes that
// make and remove a cut run one at a time, in the order the counts changed, so a heal's removal
// never overtakes the next split's cut of the same link (or the reverse).

/** One direction of a link: traffic from `from` to `to` (host names). */
export type Link = readonly [from: string, to: string];

/** Makes (`cut` true) or removes a cut of one link: the neighbour-table change. */
export type LinkChange = (link: Link, cut: boolean) => Promise<void>;

export class LinkCuts {
  readonly #change: LinkChange;
  readonly #held = new Map<string, number>();
  #queue: Promise<void> = Promise.resolve();

  constructor(change: LinkChange) {
    this.#change = change;
  }

  /** Host names `from` cannot reach now. */
  cutFrom(from: string): string[] {
    return [...this.#held.keys()]
      .map((k) => JSON.parse(k) as [string, string])
      .filter(([f]) => f === from)
      .map(([, to]) => to);
  }

  /** Cuts every link in `links` (already cut ones stay cut, one more split holds them). */
  async cut(links: readonly Link[]): Promise<void> {
    const done = links.map((link) => {
      const key = JSON.stringify(link);
      this.#held.set(key, (this.#held.get(key) ?? 0) + 1);
      return this.#run(link, true);
    });
    await Promise.all(done);
  }

  /** Gives back the links one `cut` call took, except those another split still holds. */
  async heal(links: readonly Link[]): Promise<void> {
    const done: Promise<void>[] = [];
    for (const link of links) {
      const key = JSON.stringify(link);
      const n = this.#held.get(key) ?? 0;
      if (n > 1) this.#held.set(key, n - 1);
      else if (n === 1) {
        this.#held.delete(key);
        done.push(this.#run(link, false));
      } // n === 0: healAll gave it back already
    }
    await Promise.all(done);
  }

  /** Gives back every link out of `from`, whichever split cut it. */
  async healFrom(from: string): Promise<void> {
    const links = this.cutFrom(from).map((to) => [from, to] as const);
    for (const link of links) this.#held.delete(JSON.stringify(link));
    await Promise.all(links.map((link) => this.#run(link, false)));
  }

  #run(link: Link, cut: boolean): Promise<void> {
    const next = this.#queue.then(() => this.#change(link, cut));
    this.#queue = next.catch(() => {});
    return next;
  }
}
