// console: the read-only web console at `/` on the HTTP port, and the admin views it reads.

import { readFileSync } from 'node:fs';
import type { Registry } from 'prom-client';
import { ADMIN_PATHS, type OwnersView } from '../admin/index.ts';
import { KvError } from '../errors/index.ts';
import { type AdminRoute, queryBytes, type StaticPage } from '../observability/index.ts';
import { validateBinaryKey } from '../protocol/index.ts';
import { nodeFacts } from './facts.ts';
import { TrafficHistory } from './history.ts';

export { dirBytes, redactConfig } from './facts.ts';
export type { TrafficPoint } from './history.ts';

/** What the console asks of the cluster (node/cluster.ts provides it). */
export interface ConsoleCluster {
  info(): unknown;
  rings(): unknown;
  owners(key: Buffer): { settled: string[]; target: string[] };
}

export interface ConsoleOptions {
  readonly name: string;
  readonly dataDir: string;
  /** The config in force; secret values are redacted before they are shown. */
  readonly config: Readonly<Record<string, unknown>>;
  readonly maxKeyBytes: number;
  readonly registry: Registry;
  readonly cluster: ConsoleCluster;
}

export interface NodeConsole {
  /** `GET /admin/console` (everything the page shows) and `GET /admin/owners?key=`. */
  readonly routes: Readonly<Record<string, AdminRoute>>;
  /** `/` and its script and style: no data, served without authorization. */
  readonly pages: Readonly<Record<string, StaticPage>>;
  stop(): void;
}

const asset = (name: string) => readFileSync(new URL(`./assets/${name}`, import.meta.url), 'utf8');

/** The console's pages and routes; samples traffic until stop(). */
export function createConsole(o: ConsoleOptions): NodeConsole {
  const history = new TrafficHistory(o.registry);
  const pages: Record<string, StaticPage> = {
    '/': { type: 'text/html; charset=utf-8', body: asset('index.html') },
    '/console.js': { type: 'text/javascript; charset=utf-8', body: asset('console.js') },
    '/console.css': { type: 'text/css; charset=utf-8', body: asset('console.css') },
    '/hmac.js': { type: 'text/javascript; charset=utf-8', body: asset('hmac.js') },
  };
  const routes: Record<string, AdminRoute> = {
    [`GET ${ADMIN_PATHS.console}`]: async () => ({
      status: 200,
      body: {
        time: new Date().toISOString(),
        facts: await nodeFacts(o.name, o.dataDir, o.config, o.registry),
        cluster: o.cluster.info(),
        rings: o.cluster.rings(),
        traffic: await history.points(),
      },
    }),
    // The key is the exact bytes of ?key= (percent-escapes are bytes, not UTF-8: `%ff` is the
    // byte 0xff), so keys written over RESP that are not UTF-8 can be looked up too.
    [`GET ${ADMIN_PATHS.owners}`]: ({ rawQuery }) => {
      const key = queryBytes(rawQuery, 'key');
      if (key === null) return { status: 400, body: { error: 'console: ?key= is required' } };
      try {
        const raw = validateBinaryKey(key, {
          maxKeyBytes: o.maxKeyBytes,
          maxValueBytes: 0,
          maxScanKeys: 0,
        });
        const body: OwnersView = {
          key: raw.toString('utf8'),
          keyHex: raw.toString('hex'),
          ...o.cluster.owners(raw),
        };
        return { status: 200, body };
      } catch (err) {
        if (!(err instanceof KvError)) throw err;
        return { status: 400, body: { error: err.message } };
      }
    },
  };
  return { routes, pages, stop: () => history.stop() };
}
