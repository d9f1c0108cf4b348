// The recorded history of a chaos run: every client operation with invoke/complete times and outcome.

export type OpType = 'put' | 'get' | 'remove' | 'range' | 'prefix';

/**
 * ok: PUT/REMOVE acknowledged (`OK`); value / not_found: a read's answer (REMOVE's `NOT_FOUND`
 * too); keys: a scan's answer; error: the node answered `ERR <code>` (a write may still have
 * been applied, but no later than the reply); timeout: no reply (timed out, or the connection
 * closed) so the operation is indeterminate and may take effect at any later time.
 */
export type Outcome = 'ok' | 'value' | 'not_found' | 'keys' | 'error' | 'timeout';

export interface Op {
  readonly id: number;
  /** Client id (`c3`), or `final` for the reads after the run. */
  readonly client: string;
  /** The node the client sent the operation to. */
  readonly node: string;
  readonly type: OpType;
  /** PUT/GET/REMOVE: the key; RANGE: the start; PREFIX: the prefix. */
  readonly key: string;
  /** RANGE: the inclusive end. */
  readonly end?: string;
  /** PUT: the value written (unique per write). */
  readonly value?: string;
  /** PUT sent as `SETEX key <ttlS> value` (with `--expiring-writes`): the value expires. */
  readonly ttlS?: number;
  /** Milliseconds since the run started (monotonic clock). */
  readonly inv: number;
  /** When the reply arrived (or the client gave up); null while in flight. */
  cmp: number | null;
  outcome: Outcome | null;
  /** GET: the value read (null for not_found). */
  read?: string | null;
  /** RANGE/PREFIX: the keys answered. */
  keys?: string[];
  /** error/timeout: the code (`UNAVAILABLE`, `TIMEOUT`, `CONNECTION_CLOSED`). */
  error?: string;
  /** error: the text after the node's code (`write quorum 1/2 (kv1: peer_timeout)`), which tells refusals apart. */
  detail?: string;
  /** True for the reads made after the nemesis stopped and the cluster was healed. */
  final?: boolean;
}

/** Appends operations as they are invoked and fills in their completion. */
export class History {
  readonly ops: Op[] = [];
  readonly #t0 = performance.now();

  now(): number {
    return Math.round((performance.now() - this.#t0) * 1000) / 1000;
  }

  invoke(op: Omit<Op, 'id' | 'inv' | 'cmp' | 'outcome'>): Op {
    const full: Op = { ...op, id: this.ops.length, inv: this.now(), cmp: null, outcome: null };
    this.ops.push(full);
    return full;
  }

  complete(
    op: Op,
    outcome: Outcome,
    extra: Partial<Pick<Op, 'read' | 'keys' | 'error' | 'detail'>> = {},
  ) {
    op.cmp = this.now();
    op.outcome = outcome;
    Object.assign(op, extra);
  }
}

/** True when a write may have taken effect: anything but a REMOVE that found nothing. */
export function isWrite(op: Op): boolean {
  // A REMOVE writes its tombstone whatever its read found (NOT_FOUND included).
  return op.type === 'put' || op.type === 'remove';
}

/** True when the write was acknowledged (a REMOVE's NOT_FOUND too: its tombstone was written). */
export function isAcked(op: Op): boolean {
  if (op.type === 'put') return op.outcome === 'ok';
  return op.type === 'remove' && (op.outcome === 'ok' || op.outcome === 'not_found');
}

/**
 * Latest time at which the operation may have taken effect: its reply for a definite answer
 * (ok, error, not_found, value), infinity when it never got one.
 */
export function effectiveEnd(op: Op): number {
  if (op.outcome === null || op.outcome === 'timeout' || op.cmp === null) return Infinity;
  return op.cmp;
}

/** One line per operation, for violation excerpts. */
export function formatOp(op: Op): string {
  const t = (ms: number | null) => (ms === null ? '?' : (ms / 1000).toFixed(3));
  const what =
    op.type === 'put'
      ? op.ttlS !== undefined
        ? `SETEX ${op.key} ${op.ttlS} ${op.value}`
        : `PUT ${op.key} ${op.value}`
      : op.type === 'range'
        ? `RANGE ${op.key} ${op.end}`
        : `${op.type.toUpperCase()} ${op.key}`;
  let result: string = op.outcome ?? 'pending';
  if (op.outcome === 'value') result = `value ${op.read}`;
  if (op.outcome === 'keys') result = `[${(op.keys ?? []).join(' ')}]`;
  if (op.outcome === 'error' || op.outcome === 'timeout') result = `${op.outcome} ${op.error}`;
  const final = op.final ? ' (final)' : '';
  return `#${op.id} [${t(op.inv)}..${t(op.cmp)}] ${op.client}@${op.node} ${what} -> ${result}${final}`;
}
