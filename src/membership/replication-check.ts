// Whether the members agree on --replication-factor, --write-quorum and --read-quorum.

import type { Registry } from 'prom-client';
import { flagGauge, type Logger } from '../observability/index.ts';
import type { ReplicationSettings } from '../replica/index.ts';
import type { MemberView } from './manager.ts';

export interface ReplicationCheckOptions {
  readonly self: string;
  readonly settings: ReplicationSettings;
  readonly members: () => MemberView[];
  readonly logger: Logger;
  readonly registry: Registry;
}

/**
 * Every node places keys by its own --replication-factor. A member started with another one (a
 * typo, a rolling change half done) places them differently, and nothing refused it: with RF 2
 * among members of RF 3 it dropped every record it was the third owner of at each collection
 * interval (`removed records no longer owned`), so those keys had one copy fewer than the others
 * counted on; other quorums than the cluster's weaken what its reads and writes promise. So
 * every hello carries the node's settings, and after every round of probes this compares them
 * with every member's last hello (a member that is down still counts): a difference is logged
 * (error, once per change, with the differing members' settings) and
 * `kvstore_replication_settings_mismatch` is 1; while members disagree on the replication
 * factor, this node drops no record it does not own (`keepAll`).
 */
export class ReplicationCheck {
  readonly #o: ReplicationCheckOptions;
  /** The differing settings by member, as last logged; '' while every member agrees. */
  #seen = '';
  #rfDiffers = false;

  constructor(o: ReplicationCheckOptions) {
    this.#o = o;
    flagGauge(
      o.registry,
      'kvstore_replication_settings_mismatch',
      '1 while a member (its last hello) reports another --replication-factor, --write-quorum or --read-quorum than this node, else 0.',
      () => this.#seen !== '',
    );
  }

  update(): void {
    const own = this.#o.settings;
    const differing: Record<string, ReplicationSettings> = {};
    let rfDiffers = false;
    for (const m of this.#o.members()) {
      const theirs = m.hello?.replication;
      if (m.self || theirs === undefined) continue;
      if (theirs.rf !== own.rf || theirs.w !== own.w || theirs.r !== own.r) {
        differing[m.name] = theirs;
        if (theirs.rf !== own.rf) rfDiffers = true;
      }
    }
    const seen = Object.keys(differing).length === 0 ? '' : JSON.stringify(differing);
    this.#rfDiffers = rfDiffers;
    if (seen === this.#seen) return;
    this.#seen = seen;
    if (seen === '') {
      this.#o.logger.info({ self: own }, 'members agree on the replication settings again');
    } else {
      this.#o.logger.error(
        { self: own, members: differing, keepingUnowned: rfDiffers },
        'members disagree on --replication-factor, --write-quorum or --read-quorum: give every member the same',
      );
    }
  }

  /** True while a member reports another replication factor: drop nothing this node does not own. */
  keepAll(): boolean {
    return this.#rfDiffers;
  }
}
