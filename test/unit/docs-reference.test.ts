// The reference pages say what the code does: every flag with its variable and default in
// docs/configuration.md, every metric the docs, alerts and dashboard name declared in the code,
// and every error code a client can receive in the protocol pages.

import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { configSchema, DEFAULTS, envName, flagName } from '../../src/config/index.ts';
import { ERROR_CODES, type ErrorCode, wireCode } from '../../src/errors/index.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const read = (path: string) => readFileSync(join(ROOT, path), 'utf8');

/** Every file under `dir` (relative to the repository) whose name ends with one of `exts`. */
function files(dir: string, exts: readonly string[]): string[] {
  return readdirSync(join(ROOT, dir), { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && exts.some((x) => e.name.endsWith(x)))
    .map((e) => join(e.parentPath, e.name).slice(ROOT.length + 1));
}

/** docs/configuration.md's table: flag -> [variable cell, default cell]. */
function configurationRows(): Map<string, [string, string]> {
  const rows = new Map<string, [string, string]>();
  for (const line of read('docs/configuration.md').split('\n')) {
    if (!line.startsWith('| `--')) continue;
    const [flags, envs, dflt] = line.split(' | ').map((c) => c.replace(/^\| /, ''));
    for (const flag of flags!.match(/--[a-z0-9-]+/g) ?? []) rows.set(flag, [envs!, dflt!]);
  }
  return rows;
}

describe('docs/configuration.md', () => {
  const rows = configurationRows();
  const keys = Object.keys(configSchema.shape) as (keyof typeof DEFAULTS)[];

  it('has a row for every option, with its variable', () => {
    for (const key of keys) {
      const row = rows.get(flagName(key));
      expect(row, `${flagName(key)} is missing from docs/configuration.md`).toBeDefined();
      expect(row![0]).toContain(`\`${envName(key)}\``);
    }
    // ...and no row for a flag the parser does not take.
    const known = new Set(keys.map((k) => flagName(k)));
    expect([...rows.keys()].filter((f) => !known.has(f))).toEqual([]);
  });

  it("gives each number, switch and fixed text's default as the code has it", () => {
    for (const key of keys) {
      const value = DEFAULTS[key];
      // The host name, and empty texts (a cell saying what empty means), are words in the table.
      if (key === 'nodeName' || value === '') continue;
      expect(rows.get(flagName(key))![1], flagName(key)).toBe(`\`${String(value)}\``);
    }
  });
});

describe('metric names in the docs, alerts and dashboard', () => {
  it('are each declared by the code', () => {
    const source = [...files('src', ['.ts']), ...files('operator', ['.ts'])].map(read).join('\n');
    const declared = new Set(source.match(/(?<=['"`])kvstore_[a-z0-9_]+(?=['"`])/g));
    const named = new Map<string, string>();
    const texts = [
      'README.md',
      ...files('docs', ['.md']),
      ...files('monitoring', ['.yaml', '.yml', '.json']),
      ...files('charts', ['.yaml', '.json']),
    ];
    for (const path of texts) {
      // `kvstore_peer_*` names a family, `kvstore_rebalance_{bytes,keys}_sent_total` two.
      for (const m of read(path).matchAll(/kvstore_[a-z0-9_]*[a-z0-9](?![a-z0-9_]*[*{])/g)) {
        named.set(m[0], path);
      }
    }
    const base = (name: string) => name.replace(/_(bucket|sum|count)$/, '');
    const unknown = [...named]
      .filter(([name]) => !declared.has(name) && !declared.has(base(name)))
      .map(([name, path]) => `${name} (${path})`);
    // Not a metric: the compose project's default network (docs/monitoring.md).
    expect(unknown.filter((u) => !u.startsWith('kvstore_default '))).toEqual([]);
  });
});

describe('error codes', () => {
  /** Codes only peers, the start-up, backups or logs use: never a reply on the client port. */
  const INTERNAL: readonly ErrorCode[] = [
    'KV_ERR_PEER_UNAVAILABLE',
    'KV_ERR_PEER_TIMEOUT',
    'KV_ERR_PEER_PROTOCOL',
    'KV_ERR_PEER_OVERLOADED',
    'KV_ERR_EXPIRED',
    'KV_ERR_WRONG_INCARNATION',
    'KV_ERR_HANDED_OFF',
    'KV_ERR_STALE_RING',
    'KV_ERR_BAD_RECORD',
    'KV_ERR_CORRUPT',
    'KV_ERR_CONFIG',
    'KV_ERR_DATA_DIR_LOCKED',
    'KV_ERR_BACKUP',
    'KV_ERR_PROTOCOL', // RESP sends Redis's own `-ERR Protocol error: ...`
    'KV_ERR_DISCOVERY', // logged by membership (`member source failed`)
  ];

  it('that a client can receive are each in docs/protocol.md or docs/redis.md', () => {
    const pages = read('docs/protocol.md') + read('docs/redis.md');
    const client = (Object.keys(ERROR_CODES) as ErrorCode[]).filter((c) => !INTERNAL.includes(c));
    const missing = client.filter((c) => !new RegExp(`\\b${wireCode(c)}\\b`).test(pages));
    expect(missing).toEqual([]);
  });

  it("in docs/protocol.md's table are each one the code has", () => {
    const text = read('docs/protocol.md');
    const table = text.slice(text.indexOf('| code | meaning |')).match(/^\| `[A-Z_0-9]+` \|/gm);
    const codes = new Set(Object.keys(ERROR_CODES).map((c) => wireCode(c as ErrorCode)));
    const rows = (table ?? []).map((row) => row.slice(3, -3));
    expect(rows.length).toBeGreaterThan(10);
    expect(rows.filter((c) => !codes.has(c))).toEqual([]);
  });
});
