import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  AdminGuard,
  adminAuthorization,
  bodySha256,
  EMPTY_BODY_SHA256,
} from '../../src/auth/index.ts';
// The console's own script, as the browser loads it.
// @ts-expect-error: a plain JavaScript asset without type declarations
import * as page from '../../src/console/assets/hmac.js';

const js = page as {
  sha256(b: Uint8Array): Uint8Array;
  EMPTY_BODY_SHA256: string;
  adminAuthorization(
    secret: string,
    method: string,
    target: string,
    nonce: string,
    nc: number,
    body?: string,
  ): string;
};

describe("console's HMAC (plain JavaScript for browsers without crypto.subtle)", () => {
  it('hashes like node:crypto at every length around the block boundaries', () => {
    for (const n of [0, 1, 55, 56, 63, 64, 65, 119, 120, 1000]) {
      const bytes = Uint8Array.from({ length: n }, (_, i) => (i * 7 + n) & 0xff);
      expect(Buffer.from(js.sha256(bytes)).toString('hex')).toBe(
        createHash('sha256').update(bytes).digest('hex'),
      );
    }
  });

  it("makes the node's admin proof for short, long and non-ASCII secrets", () => {
    expect(js.EMPTY_BODY_SHA256).toBe(EMPTY_BODY_SHA256);
    for (const secret of ['s', 'x'.repeat(64), 'y'.repeat(200), 'pässwörd-🔑']) {
      const node = new AdminGuard(secret);
      const nonce = node.issue();
      const target = '/admin/owners?key=%ff%20k';
      const header = js.adminAuthorization(secret, 'GET', target, nonce, 7);
      const bodySha = EMPTY_BODY_SHA256;
      expect(header).toBe(
        adminAuthorization(secret, { method: 'GET', target, nonce, nc: 7, bodySha256: bodySha }),
      );
      expect(node.check('GET', target, header)).toEqual({ ok: true, bodySha256: bodySha });
      expect(node.check('GET', target, header)).toEqual({ ok: false, stale: true });
      const other = js.adminAuthorization(`${secret}!`, 'GET', target, nonce, 8);
      expect(node.check('GET', target, other)).toEqual({ ok: false, stale: false });
      const body = bodySha256('{"id":"x"}');
      const post = js.adminAuthorization(secret, 'POST', '/admin/restore/end', nonce, 9, body);
      expect(node.check('POST', '/admin/restore/end', post)).toEqual({
        ok: true,
        bodySha256: body,
      });
    }
  });
});
