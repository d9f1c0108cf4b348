// Proofs of the cluster secret for the HTTP port's admin calls that cannot be used twice: the node
// hands out nonces, each call signs one with a counter and the whole request (method, path with
// its query, the SHA-256 of its body), and the node accepts each nonce and counter once.

/**
 * node:crypto, loaded at the first call: a node that never needs it does not load it (with
 * OpenSSL's set-up, about 1 MiB of RSS; docs/memory.md).
 */
const nodeCrypto = () => process.getBuiltinModule('node:crypto');

/** The Authorization scheme of the node's HTTP admin endpoints when a cluster secret is set. */
export const ADMIN_AUTH_SCHEME = 'KVSTORE-HMAC';

/** `GET` here (no proof needed) answers `{"nonce": "..."}` (`null` from a node without a secret). */
export const ADMIN_NONCE_PATH = '/admin/nonce';

/** How long a nonce is accepted after the node issued it (by the node's own monotonic clock). */
export const ADMIN_NONCE_TTL_MS = 5 * 60_000;

/** Nonces a node remembers the counters of at most (beyond: the oldest used are forgotten). */
export const ADMIN_MAX_NONCES = 10_000;

/**
 * How far below the highest counter used with a nonce a counter not used yet is still accepted:
 * parallel calls sharing one nonce may arrive out of order (an anti-replay window, as IPsec's).
 */
export const ADMIN_COUNTER_WINDOW = 128;

/** SHA-256 (hex) of an empty body: what a GET or a POST without a body signs. */
export const EMPTY_BODY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

/** SHA-256 (hex) of a request body. */
export function bodySha256(body: Buffer | string | undefined): string {
  if (body === undefined || body.length === 0) return EMPTY_BODY_SHA256;
  return nodeCrypto().createHash('sha256').update(body).digest('hex');
}

/** What one admin proof covers. `target` is the request target as sent: path and query. */
export interface AdminRequest {
  readonly method: string;
  readonly target: string;
  readonly nonce: string;
  /** 1, 2, 3...: the caller's count of calls made with this nonce. */
  readonly nc: number;
  readonly bodySha256: string;
}

function adminMac(secret: string, r: AdminRequest): Buffer {
  return nodeCrypto()
    .createHmac('sha256', secret)
    .update(`kvstore-admin-2:${r.method} ${r.target}:${r.nonce}:${r.nc}:${r.bodySha256}`)
    .digest();
}

/**
 * The Authorization header of one admin call:
 * `KVSTORE-HMAC nonce=<nonce>,nc=<counter>,body=<sha256 hex>,mac=<hex>`, the mac an HMAC-SHA256
 * keyed with the cluster secret of `kvstore-admin-2:<METHOD> <target>:<nonce>:<nc>:<body>`.
 */
export function adminAuthorization(secret: string, r: AdminRequest): string {
  const mac = adminMac(secret, r).toString('hex');
  return `${ADMIN_AUTH_SCHEME} nonce=${r.nonce},nc=${r.nc},body=${r.bodySha256},mac=${mac}`;
}

/**
 * The proof of nodes that predate nonces (`KVSTORE-HMAC t=<ms>,mac=<hex>` of
 * `kvstore-admin:<METHOD> <path>:<t>`): a client sends it only to a node whose /admin/nonce is
 * 404, during an upgrade. No node of this version accepts it (AdminGuard refuses its format), so
 * a client tricked into sending it gives nothing that works on them.
 */
export function legacyAdminAuthorization(
  secret: string,
  method: string,
  path: string,
  now = Date.now(),
): string {
  const mac = nodeCrypto()
    .createHmac('sha256', secret)
    .update(`kvstore-admin:${method} ${path}:${now}`)
    .digest('hex');
  return `${ADMIN_AUTH_SCHEME} t=${now},mac=${mac}`;
}

/** A node's 401 challenge: `KVSTORE-HMAC nonce="<nonce>"[, stale=true]`. */
export function adminChallenge(nonce: string, stale: boolean): string {
  return `${ADMIN_AUTH_SCHEME} nonce="${nonce}"${stale ? ', stale=true' : ''}`;
}

/** Reads a WWW-Authenticate challenge; null when it is not one of ours with a nonce. */
export function parseAdminChallenge(
  header: string | null | undefined,
): { nonce: string; stale: boolean } | null {
  const m = /^KVSTORE-HMAC nonce="([0-9a-f.]{1,128})"(, stale=true)?$/.exec(header ?? '');
  return m ? { nonce: m[1]!, stale: m[2] !== undefined } : null;
}

const HEADER =
  /^KVSTORE-HMAC nonce=(\d{1,15})\.([0-9a-f]{24})\.([0-9a-f]{32}),nc=([1-9]\d{0,14}),body=([0-9a-f]{64}),mac=([0-9a-f]{64})$/;

/**
 * The check: `ok` with the body's SHA-256 the proof covers (the caller compares it with the body
 * it reads before acting), or refused. `stale`: the proof was made with the secret but its nonce
 * cannot be used (too old, from another node or an earlier run of this one, or this counter was
 * used already): the caller may sign again with a new nonce.
 */
export type AdminCheck =
  | { readonly ok: true; readonly bodySha256: string }
  | { readonly ok: false; readonly stale: boolean };

/** The counters used with one nonce: the highest, and a bitmap of the window below it. */
interface Used {
  readonly issued: number;
  top: number;
  seen: bigint;
}

const WINDOW_MASK = (1n << BigInt(ADMIN_COUNTER_WINDOW)) - 1n;

export interface AdminGuardOptions {
  readonly ttlMs?: number;
  readonly maxNonces?: number;
  /** A monotonic clock in ms (default performance.now). */
  readonly now?: () => number;
}

/**
 * A node's side. Nonces are `<issued ms>.<random>.<HMAC of both under a key of this process>`:
 * only this process can make them, and issuing one keeps nothing. A nonce is remembered (its
 * counters) only once a proof with it showed the cluster secret, for as long as it is accepted,
 * and at most maxNonces of them: when full, the one used first is forgotten and every nonce
 * issued no later than it is refused from then on (stale), so forgetting never reopens one.
 */
export class AdminGuard {
  readonly #secret: string;
  /** Made at the first nonce issued or checked. */
  #key: Buffer | null = null;
  readonly #ttl: number;
  readonly #max: number;
  readonly #now: () => number;
  readonly #used = new Map<string, Used>();
  #floor = -1;

  constructor(secret: string, opts: AdminGuardOptions = {}) {
    this.#secret = secret;
    this.#ttl = opts.ttlMs ?? ADMIN_NONCE_TTL_MS;
    this.#max = opts.maxNonces ?? ADMIN_MAX_NONCES;
    this.#now = opts.now ?? (() => performance.now());
  }

  /** A new nonce. */
  issue(): string {
    const issued = Math.floor(this.#now());
    const random = nodeCrypto().randomBytes(12).toString('hex');
    return `${issued}.${random}.${this.#sign(issued, random)}`;
  }

  /** Nonces whose counters are remembered now. */
  get tracked(): number {
    return this.#used.size;
  }

  #sign(issued: number, random: string): string {
    this.#key ??= nodeCrypto().randomBytes(32);
    return nodeCrypto()
      .createHmac('sha256', this.#key)
      .update(`${issued}.${random}`)
      .digest('hex')
      .slice(0, 32);
  }

  /** Checks the Authorization header of a call of `method` to `target` (path and query as sent). */
  check(method: string, target: string, header: string | undefined): AdminCheck {
    const m = HEADER.exec(header ?? '');
    if (!m) return { ok: false, stale: false };
    const [, issuedText, random, nonceMac, ncText, body, mac] = m as unknown as string[];
    const nonce = `${issuedText}.${random}.${nonceMac}`;
    const nc = Number(ncText);
    const want = adminMac(this.#secret, { method, target, nonce, nc, bodySha256: body! });
    if (!nodeCrypto().timingSafeEqual(Buffer.from(mac!, 'hex'), want))
      return { ok: false, stale: false };
    // The caller knows the secret: from here a refusal is a stale nonce or a used counter.
    const issued = Number(issuedText);
    const now = this.#now();
    const mine = nodeCrypto().timingSafeEqual(
      Buffer.from(nonceMac!, 'hex'),
      Buffer.from(this.#sign(issued, random!), 'hex'),
    );
    if (!mine || issued > now || now - issued > this.#ttl) return { ok: false, stale: true };
    let used = this.#used.get(nonce);
    if (used === undefined) {
      if (issued <= this.#floor) return { ok: false, stale: true };
      this.#makeRoom(now);
      used = { issued, top: 0, seen: 0n };
      this.#used.set(nonce, used);
    }
    if (!take(used, nc)) return { ok: false, stale: true };
    return { ok: true, bodySha256: body! };
  }

  /** Drops nonces past their time; when still full, forgets the one used first. */
  #makeRoom(now: number): void {
    for (const [nonce, u] of this.#used) {
      if (now - u.issued <= this.#ttl) break;
      this.#used.delete(nonce);
    }
    if (this.#used.size < this.#max) return;
    for (const [nonce, u] of this.#used) {
      if (now - u.issued > this.#ttl) this.#used.delete(nonce);
    }
    while (this.#used.size >= this.#max) {
      const [nonce, u] = this.#used.entries().next().value as [string, Used];
      this.#used.delete(nonce);
      this.#floor = Math.max(this.#floor, u.issued);
    }
  }
}

/** Marks counter `nc` used; false when it was, or is below the window. */
function take(u: Used, nc: number): boolean {
  if (nc > u.top) {
    const shift = nc - u.top;
    u.seen = shift >= ADMIN_COUNTER_WINDOW ? 1n : ((u.seen << BigInt(shift)) | 1n) & WINDOW_MASK;
    u.top = nc;
    return true;
  }
  const back = u.top - nc;
  if (back >= ADMIN_COUNTER_WINDOW) return false;
  const bit = 1n << BigInt(back);
  if ((u.seen & bit) !== 0n) return false;
  u.seen |= bit;
  return true;
}
