// Admin proofs (src/auth/admin.ts): what a node accepts once, and what it refuses as stale.

import { describe, expect, it } from 'vitest';
import {
  ADMIN_COUNTER_WINDOW,
  AdminGuard,
  type AdminRequest,
  adminAuthorization,
  adminChallenge,
  bodySha256,
  EMPTY_BODY_SHA256,
  parseAdminChallenge,
} from '../../src/auth/index.ts';

const SECRET = 'swordfish';

/** A guard on a clock the test moves. */
function guard(opts: { ttlMs?: number; maxNonces?: number } = {}) {
  const clock = { ms: 1000 };
  const g = new AdminGuard(SECRET, { ...opts, now: () => clock.ms });
  return { g, clock };
}

function proof(r: Partial<AdminRequest> & { nonce: string; nc: number }, secret = SECRET) {
  const full: AdminRequest = {
    method: 'GET',
    target: '/admin/cluster',
    bodySha256: EMPTY_BODY_SHA256,
    ...r,
  };
  return { header: adminAuthorization(secret, full), ...full };
}

function check(g: AdminGuard, p: ReturnType<typeof proof>) {
  return g.check(p.method, p.target, p.header);
}

describe('AdminGuard', () => {
  it('accepts a proof once; a replay, another node, a changed query or body are refused', () => {
    const { g } = guard();
    const nonce = g.issue();
    const body = bodySha256(Buffer.from('records'));
    const p = proof({
      method: 'POST',
      target: '/admin/restore/batch?x=1',
      nonce,
      nc: 1,
      bodySha256: body,
    });
    expect(check(g, p)).toEqual({ ok: true, bodySha256: body });
    // The same request again: the proof was right, its counter is used.
    expect(check(g, p)).toEqual({ ok: false, stale: true });
    // Another node (another process key) never issued this nonce.
    expect(check(guard().g, p)).toEqual({ ok: false, stale: true });
    // Another query, method, or a body hash the proof does not cover: not a proof at all.
    const next = proof({ ...p, nc: 2 });
    expect(g.check('POST', '/admin/restore/batch?x=2', next.header)).toEqual({
      ok: false,
      stale: false,
    });
    expect(g.check('GET', next.target, next.header)).toEqual({ ok: false, stale: false });
    const swapped = next.header.replace(body, EMPTY_BODY_SHA256);
    expect(g.check('POST', next.target, swapped)).toEqual({ ok: false, stale: false });
    expect(check(g, proof({ nonce, nc: 3 }, 'guess'))).toEqual({ ok: false, stale: false });
    // A forged nonce with a right proof: stale, not ours.
    const forged = `${nonce.split('.')[0]}.${'0'.repeat(24)}.${'0'.repeat(32)}`;
    expect(check(g, proof({ nonce: forged, nc: 1 }))).toEqual({ ok: false, stale: true });
    for (const bad of [undefined, '', 'KVSTORE-HMAC t=1,mac=00', `${p.header} `]) {
      expect(g.check('GET', '/admin/cluster', bad)).toEqual({ ok: false, stale: false });
    }
  });

  it('takes counters out of order within the window, each once', () => {
    const { g } = guard();
    const nonce = g.issue();
    const ok = (nc: number) => check(g, proof({ nonce, nc })).ok;
    expect([5, 3, 1, 2, 4, 4, 6, 1].map(ok)).toEqual([
      true,
      true,
      true,
      true,
      true,
      false,
      true,
      false,
    ]);
    const top = 6 + ADMIN_COUNTER_WINDOW;
    expect(ok(top)).toBe(true);
    expect(ok(top - ADMIN_COUNTER_WINDOW + 1)).toBe(true); // still in the window, unused
    expect(ok(top - ADMIN_COUNTER_WINDOW)).toBe(false); // below it: refused, stale
    expect(ok(top + 1000)).toBe(true);
    expect(ok(top + 999)).toBe(true);
    expect(ok(top)).toBe(false);
  });

  it('refuses nonces past their time, and keeps state only for proved ones, bounded', () => {
    const { g, clock } = guard({ ttlMs: 60_000, maxNonces: 3 });
    const old = g.issue();
    clock.ms += 60_001;
    expect(check(g, proof({ nonce: old, nc: 1 }))).toEqual({ ok: false, stale: true });
    // Strangers minting nonces and sending wrong proofs: nothing kept.
    for (let i = 0; i < 100; i++) check(g, proof({ nonce: g.issue(), nc: 1 }, 'guess'));
    expect(g.tracked).toBe(0);
    const nonces = Array.from({ length: 4 }, () => {
      clock.ms += 1;
      return g.issue();
    });
    for (const nonce of nonces) expect(check(g, proof({ nonce, nc: 1 })).ok).toBe(true);
    expect(g.tracked).toBe(3);
    // The first was forgotten to make room: it stays refused, with every one issued before it.
    expect(check(g, proof({ nonce: nonces[0]!, nc: 2 }))).toEqual({ ok: false, stale: true });
    expect(check(g, proof({ nonce: nonces[1]!, nc: 2 })).ok).toBe(true);
    // Expired nonces leave room without raising the floor.
    clock.ms += 60_001;
    const fresh = g.issue();
    expect(check(g, proof({ nonce: fresh, nc: 1 })).ok).toBe(true);
    expect(g.tracked).toBe(1);
  });

  it('offers a new nonce in its challenge, and says when it is stale', () => {
    const { g } = guard();
    const n = g.issue();
    expect(parseAdminChallenge(adminChallenge(n, true))).toEqual({ nonce: n, stale: true });
    expect(parseAdminChallenge(adminChallenge(n, false))).toEqual({ nonce: n, stale: false });
    expect(parseAdminChallenge('KVSTORE-HMAC')).toBeNull();
    expect(parseAdminChallenge(null)).toBeNull();
  });
});
