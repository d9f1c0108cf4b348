import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { adminAuthorization, checkAdminAuthorization } from '../../src/auth/index.ts';
// The console's own script, as the browser loads it.
// @ts-expect-error: a plain JavaScript asset without type declarations
import * as page from '../../src/console/assets/hmac.js';

const js = page as {
  sha256(b: Uint8Array): Uint8Array;
  adminAuthorization(secret: string, method: string, path: string, now?: number): string;
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
    for (const secret of ['s', 'x'.repeat(64), 'y'.repeat(200), 'pässwörd-🔑']) {
      const header = js.adminAuthorization(secret, 'GET', '/admin/console', 1_700_000_000_000);
      expect(header).toBe(adminAuthorization(secret, 'GET', '/admin/console', 1_700_000_000_000));
      const now = js.adminAuthorization(secret, 'GET', '/admin/console');
      expect(checkAdminAuthorization(secret, now, 'GET', '/admin/console')).toBe(true);
      expect(checkAdminAuthorization(`${secret}!`, now, 'GET', '/admin/console')).toBe(false);
    }
  });
});
