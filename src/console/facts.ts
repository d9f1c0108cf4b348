// What the console says about this node: version, uptime, data directory, storage figures, config.

import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Registry } from 'prom-client';

const VERSION = (
  JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  }
).version;

/** Config keys whose values are never shown (passwords, secrets, tokens); file paths are. */
const SECRET = /(password|secret|token)$/i;

/** The config with every secret value replaced by `(set)` or `(not set)`. */
export function redactConfig(config: Readonly<Record<string, unknown>>): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(config).map(([k, v]) => [k, SECRET.test(k) ? (v ? '(set)' : '(not set)') : v]),
  );
}

/** Bytes of the files under `dir` (not following links); unreadable entries count 0. */
export function dirBytes(dir: string, depth = 4): number {
  let total = 0;
  let entries: import('node:fs').Dirent[];
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.isDirectory() && depth > 0) total += dirBytes(p, depth - 1);
    else if (e.isFile()) {
      try {
        total += statSync(p).size;
      } catch {
        // Gone meanwhile (a WAL segment dropped): not counted.
      }
    }
  }
  return total;
}

/**
 * The node's storage figures from its own metrics (`kvstore_storage_*`, `kvstore_wal_*`): a value
 * per series, histograms as their count and sum.
 */
async function storageFigures(registry: Registry): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const m of await registry.getMetricsAsJSON()) {
    if (!/^kvstore_(storage|wal)_/.test(m.name)) continue;
    for (const v of m.values as {
      value: number;
      labels: Record<string, string | number>;
      metricName?: string;
    }[]) {
      const name = v.metricName ?? m.name;
      if (name.endsWith('_bucket')) continue;
      const labels = Object.entries(v.labels)
        .map(([k, l]) => `${k}="${l}"`)
        .join(',');
      out[labels ? `${name}{${labels}}` : name] = v.value;
    }
  }
  return out;
}

export interface NodeFacts {
  readonly name: string;
  readonly version: string;
  readonly node: string;
  readonly startedAt: string;
  readonly uptimeSeconds: number;
  readonly dataDir: string;
  readonly dataDirBytes: number;
  readonly storage: Record<string, number>;
  readonly config: Record<string, unknown>;
}

export async function nodeFacts(
  name: string,
  dataDir: string,
  config: Readonly<Record<string, unknown>>,
  registry: Registry,
): Promise<NodeFacts> {
  const uptime = process.uptime();
  return {
    name,
    version: VERSION,
    node: process.version,
    startedAt: new Date(Date.now() - uptime * 1000).toISOString(),
    uptimeSeconds: Math.round(uptime),
    dataDir,
    dataDirBytes: dirBytes(dataDir),
    storage: await storageFigures(registry),
    config: redactConfig(config),
  };
}
