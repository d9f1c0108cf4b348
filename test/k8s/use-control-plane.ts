// The test-file fixture for the real control plane: one per file, started before its tests, stopped after its other afterAll hooks.

import { afterAll, beforeAll } from 'vitest';
import { type ControlPlane, type StartOptions, startControlPlane } from './control-plane-lib.ts';

/**
 * A cold tool cache means building Kubernetes (and for `node: true` containerd) from source:
 * tens of minutes on two cores. With the cache warm, start-up takes seconds.
 */
export const START_TIMEOUT_MS = 60 * 60_000;

/**
 * Starts one control plane for the calling test file (or describe block) in a beforeAll hook
 * and stops it in an afterAll hook; call it before registering hooks that use it. beforeAll
 * hooks run in the order registered, so the file's own set-up runs after the start; afterAll
 * hooks run last registered first (vitest's `sequence.hooks: 'stack'`, set in
 * vitest.config.ts), so the stop runs after the file's own tear-down. Returns an accessor that
 * throws when the control plane did not start.
 */
export function useControlPlane(opts: StartOptions = {}): () => ControlPlane {
  let cp: ControlPlane | undefined;
  beforeAll(async () => {
    cp = await startControlPlane(opts);
  }, START_TIMEOUT_MS);
  afterAll(async () => {
    await cp?.stop();
  }, 120_000);
  return () => {
    if (!cp) throw new Error('control plane did not start');
    return cp;
  };
}
