import { describe, expect, it } from 'vitest';
import { isLoopbackHost } from '../../src/node/exposure.ts';

describe('isLoopbackHost', () => {
  it('is true only for addresses no other machine reaches', () => {
    for (const h of ['localhost', 'LOCALHOST', 'kv.localhost', '127.0.0.1', '127.9.8.7', '::1'])
      expect(isLoopbackHost(h), h).toBe(true);
    expect(isLoopbackHost('::ffff:127.0.0.1')).toBe(true);
    for (const h of ['0.0.0.0', '::', '10.0.0.1', '::ffff:10.0.0.1', 'kvstore-0', '128.0.0.1'])
      expect(isLoopbackHost(h), h).toBe(false);
  });
});
