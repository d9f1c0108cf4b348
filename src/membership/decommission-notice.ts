// A member that finished its decommission tells every other member, which probes it at once.

import { setTimeout as sleep } from 'node:timers/promises';
import { KvError } from '../errors/index.ts';
import type { Logger } from '../observability/index.ts';
import type { MemberView } from './manager.ts';
import { NODE_NAME } from './sources.ts';

/**
 * How long a member waits for the others' acknowledgements of its notice, in all (they are told
 * in parallel): one that is down or cut off is not waited for longer.
 */
export const NOTICE_WAIT_MS = 2000;

/**
 * Pause before a notice that could not be sent is sent again: a connection in its backoff (the
 * member restarted or was cut off a moment ago) fails a request at once, without trying.
 */
const RETRY_MS = 100;

/**
 * The sender's name in the body of the notice (METHODS.decommissioned, `{ n: name }`). Throws
 * KV_ERR_PEER_PROTOCOL for anything else. The name is only whom to probe: the notice itself
 * proves nothing (see Membership.probeMember).
 */
export function readDecommissionedNotice(body: unknown): string {
  const n = (body as { n?: unknown } | null)?.n;
  // --node-name's bounds.
  if (typeof n !== 'string' || n.length > 253 || !NODE_NAME.test(n)) {
    throw new KvError('KV_ERR_PEER_PROTOCOL', 'membership: malformed decommissioned notice');
  }
  return n;
}

export interface NoticeOptions {
  /** Every member this node knows (Membership.members): all but this node are told. */
  readonly members: readonly MemberView[];
  /** Sends the notice to one member; resolves with its acknowledgement. */
  readonly send: (member: MemberView) => Promise<unknown>;
  /** Why now, for the log: `hand-off done`, `stopping`. */
  readonly why: string;
  /** Default NOTICE_WAIT_MS. */
  readonly waitMs?: number;
  /** The pause before an unreachable member is tried again; default RETRY_MS. */
  readonly retryMs?: number;
  readonly logger: Logger;
}

/**
 * Tells every other member that this node is decommissioned, all at once, and resolves when each
 * acknowledged or refused, or after `waitMs`, whichever is first; never rejects. A notice that
 * could not reach its member (KV_ERR_PEER_UNAVAILABLE: no connection, or one in its backoff) is
 * sent again every `retryMs` (RETRY_MS) until then. A member of an older version answers
 * KV_ERR_UNKNOWN_COMMAND (its probes see the status as before): not sent again. Logs `told the
 * members this node is decommissioned` with the members that did not acknowledge, and why.
 */
export async function tellDecommissioned(o: NoticeOptions): Promise<void> {
  const others = o.members.filter((m) => !m.self);
  if (others.length === 0) return;
  const started = performance.now();
  const deadline = started + (o.waitMs ?? NOTICE_WAIT_MS);
  const retryMs = o.retryMs ?? RETRY_MS;
  const unacknowledged = new Set(others.map((m) => m.name));
  const failed = new Map<string, string>();
  const abort = new AbortController();
  const tell = async (m: MemberView): Promise<void> => {
    for (;;) {
      try {
        await o.send(m);
        unacknowledged.delete(m.name);
        failed.delete(m.name);
        return;
      } catch (err) {
        failed.set(m.name, err instanceof Error ? err.message : String(err));
        const again = err instanceof KvError && err.code === 'KV_ERR_PEER_UNAVAILABLE';
        if (!again || performance.now() + retryMs >= deadline) return;
        await sleep(retryMs, undefined, { signal: abort.signal }).catch(() => {});
        if (abort.signal.aborted) return;
      }
    }
  };
  let timer: NodeJS.Timeout | undefined;
  const waited = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, Math.max(0, deadline - performance.now()));
  });
  await Promise.race([Promise.all(others.map(tell)), waited]);
  clearTimeout(timer);
  abort.abort();
  o.logger.info(
    {
      why: o.why,
      members: others.length,
      acknowledged: others.length - unacknowledged.size,
      unacknowledged: [...unacknowledged].sort(),
      // fromEntries: a member named `__proto__` stays an own property.
      failed: Object.fromEntries([...failed].filter(([n]) => unacknowledged.has(n))),
      ms: Math.round(performance.now() - started),
    },
    'told the members this node is decommissioned',
  );
}
