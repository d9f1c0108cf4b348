import { describe, expect, it } from 'vitest';
import {
  type Config,
  configSchema,
  DEFAULTS,
  envName,
  flagName,
  loadConfig,
  MAX_TIMER_MS,
  MAX_VALUE_BYTES,
} from '../../src/config/index.ts';
import { DEFAULT_MAX_FRAME_BYTES } from '../../src/peer/index.ts';
import { ARG_OVERHEAD } from '../../src/protocol/resp.ts';
import { clientBufferLimitOf, respLimitsOf } from '../../src/server/server.ts';

const KEYS = Object.keys(configSchema.shape) as (keyof Config)[];

describe('loadConfig', () => {
  it('uses the defaults when nothing is given', () => {
    const r = loadConfig([], {});
    expect(r.kind).toBe('config');
    if (r.kind !== 'config') return;
    expect(r.config.port).toBe(8081);
    expect(r.config.httpPort).toBe(9090);
    expect(r.config.httpHost).toBe(DEFAULTS.host);
    expect(r.config.dataDir).toBe('./kvstore-data');
  });

  it('takes KV_* variables, and flags over them', () => {
    const r = loadConfig(['--port', '7000', '--max-key-bytes=64'], {
      KV_PORT: '6000',
      KV_HTTP_PORT: '6001',
      KV_NODE_NAME: 'kvstore-1',
    });
    if (r.kind !== 'config') throw new Error(JSON.stringify(r));
    expect(r.config).toMatchObject({
      port: 7000,
      httpPort: 6001,
      maxKeyBytes: 64,
      nodeName: 'kvstore-1',
    });
  });

  it('explains what is wrong, naming the flag and the variable', () => {
    const r = loadConfig(['--port', 'abc', '--max-key-bytes', '5000'], {});
    expect(r.kind).toBe('error');
    if (r.kind !== 'error') return;
    expect(r.text).toContain('--port (KV_PORT)');
    expect(r.text).toContain('--max-key-bytes (KV_MAX_KEY_BYTES)');
  });

  it('rejects unknown flags, missing values and a line limit too small for the value limit', () => {
    expect(loadConfig(['--nope', '1'], {})).toMatchObject({ kind: 'error' });
    expect(loadConfig(['--port'], {})).toMatchObject({ kind: 'error' });
    const r = loadConfig(['--max-value-bytes', '2000', '--max-line-bytes', '1000'], {});
    expect(r.kind === 'error' && r.text.includes('--max-line-bytes')).toBe(true);
    expect(loadConfig(['--node-name', 'bad name'], {})).toMatchObject({ kind: 'error' });
  });

  it('rejects a tombstone grace that a write still in flight could outlast', () => {
    const r = loadConfig(['--tombstone-grace-ms', '2500'], {});
    expect(r.kind === 'error' && r.text.includes('--tombstone-grace-ms')).toBe(true);
    const ok = ['--tombstone-grace-ms', '2000', '--peer-timeout-ms', '1000'];
    expect(loadConfig([...ok, '--max-clock-offset-ms', '900'], {}).kind).toBe('config');
  });

  it('takes values up to what one peer frame carries to a replica, 64 MiB - 64 KiB', () => {
    const line = ['--max-line-bytes', String(MAX_VALUE_BYTES + 8192)];
    const most = loadConfig(['--max-value-bytes', String(MAX_VALUE_BYTES), ...line], {});
    expect(most.kind === 'config' && most.config.maxValueBytes).toBe(MAX_VALUE_BYTES);
    // 70 MB was accepted: stored on the node that took the PUT, refused by every replica.
    const over = loadConfig(['--max-value-bytes', String(MAX_VALUE_BYTES + 1), ...line], {});
    expect(over.kind === 'error' && over.text).toContain('--max-value-bytes');
    expect(MAX_VALUE_BYTES + 64 * 1024).toBe(DEFAULT_MAX_FRAME_BYTES);
  });

  it('bounds every flag that feeds a timer at 2^31 - 1 ms, the longest timer Node runs', () => {
    // Past it, Node fires the timer after 1 ms: --probe-interval-ms 3000000000 probed every
    // millisecond (a lone node at 20% CPU).
    const timers = KEYS.filter((k) => /(Interval|Timeout|Speculate)Ms$/.test(k));
    expect(timers).toHaveLength(12);
    for (const key of timers) {
      const flag = flagName(key);
      // (A tombstone's grace must pass the peer timeout.)
      const grace = ['--tombstone-grace-ms', String(4 * MAX_TIMER_MS)];
      const most = loadConfig([flag, String(MAX_TIMER_MS), ...grace], {});
      expect(most.kind === 'config' && most.config[key], flag).toBe(MAX_TIMER_MS);
      const over = loadConfig([flag, String(MAX_TIMER_MS + 1), ...grace], {});
      expect(over.kind === 'error' && over.text, flag).toContain(`${flag} (`);
      expect(over.kind === 'error' && over.text, flag).toContain('the longest timer Node runs');
    }
    // Not a timer: a tombstone's age is compared with the clock, so it may be longer.
    expect(loadConfig(['--tombstone-grace-ms', String(4 * MAX_TIMER_MS)], {}).kind).toBe('config');
  });

  it('bounds the values one MGET, EXISTS or EXEC reads at 64 MiB, never below one value', () => {
    expect(DEFAULTS.maxMultiReadBytes).toBe(64 * 1024 * 1024);
    const low = loadConfig(['--max-multi-read-bytes', String(1024 * 1024 - 1)], {});
    expect(low.kind === 'error' && low.text).toContain('--max-multi-read-bytes');
  });

  it('bounds unfinished client requests at 256 MiB, at least 64 MiB and one request of any size', () => {
    const MiB = 1024 * 1024;
    expect(DEFAULTS.maxClientBufferBytes).toBe(256 * MiB);
    const r = loadConfig([], { KV_MAX_CLIENT_BUFFER_BYTES: String(64 * MiB) });
    expect(r.kind === 'config' && r.config.maxClientBufferBytes).toBe(64 * MiB);
    const low = loadConfig(['--max-client-buffer-bytes', String(64 * MiB - 1)], {});
    expect(low.kind === 'error' && low.text).toContain('--max-client-buffer-bytes');
    // What the node holds at most: the flag, raised to the largest request it accepts.
    const limit = (flag: number, args: string[] = []) => {
      const c = loadConfig(args, {});
      if (c.kind !== 'config') throw new Error(JSON.stringify(c));
      return clientBufferLimitOf(flag, respLimitsOf(c.config), c.config.maxLineBytes);
    };
    expect(limit(64 * MiB)).toBe(64 * MiB);
    expect(limit(256 * MiB)).toBe(256 * MiB);
    // 60 MiB values: a RESP request may hold two of them (MSET, or a key as long), a line one.
    const big = ['--max-value-bytes', String(60 * MiB), '--max-line-bytes', String(61 * MiB)];
    const largest = respLimitsOf({ ...DEFAULTS, maxValueBytes: 60 * MiB }).maxRequestBytes;
    expect(largest).toBe(2 * (60 * MiB + 4096) + 4 * ARG_OVERHEAD);
    expect(limit(64 * MiB, big)).toBe(largest);
    expect(limit(256 * MiB, big)).toBe(256 * MiB);
    expect(limit(256 * MiB, ['--max-line-bytes', String(300 * MiB)])).toBe(300 * MiB + 1);
  });

  it('lists every option with its variable and default in --help', () => {
    const r = loadConfig(['--help'], {});
    if (r.kind !== 'help') throw new Error('expected help');
    for (const key of KEYS) {
      expect(r.text).toContain(flagName(key));
      expect(r.text).toContain(envName(key));
    }
    expect(r.text).toContain('(default 8081)');
  });

  it('gives every option a default, a description, and names that lead back to it', () => {
    expect(KEYS.length).toBeGreaterThan(40);
    expect(Object.keys(DEFAULTS)).toEqual(KEYS);
    const fromEnv = (name: string) =>
      name
        .slice(3)
        .toLowerCase()
        .replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
    const fromFlag = (flag: string) =>
      flag.slice(2).replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
    for (const key of KEYS) {
      expect(configSchema.shape[key].description, key).toMatch(/\S/);
      expect(DEFAULTS[key], key).not.toBeUndefined();
      expect(envName(key), key).toMatch(/^KV_[A-Z0-9]+(_[A-Z0-9]+)*$/);
      expect(fromEnv(envName(key)), key).toBe(key);
      expect(fromFlag(flagName(key)), key).toBe(key);
    }
    // Each variable is read into its option: an invalid value is reported under both names.
    for (const key of KEYS.filter((k) => typeof DEFAULTS[k] === 'number')) {
      const r = loadConfig([], { [envName(key)]: 'not-a-number' });
      expect(r.kind === 'error' && r.text, key).toContain(`${flagName(key)} (${envName(key)})`);
    }
  });
});
