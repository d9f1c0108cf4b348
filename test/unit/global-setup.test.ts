import { describe, expect, it } from 'vitest';
import { checkNode } from '../global-setup.ts';

describe('the Node check before any test', () => {
  it('passes on the pinned Node (this one) and stops any other with how to run the tests', () => {
    expect(() => checkNode()).not.toThrow();
    expect(() => checkNode('20.20.2')).toThrow(
      /^tests run on the pinned Node 24\.\d+\.\d+ .*not Node 20\.20\.2 .*`npm run test:local`/,
    );
  });
});
