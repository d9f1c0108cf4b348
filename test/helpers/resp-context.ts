// A RespContext for unit tests of the RESP command table: fixed server facts, no other clients.

import type { CommandLimits, RespContext, ServerFacts } from '../../src/protocol/index.ts';
import { ScanCursorTable } from '../../src/server/scan-cursors.ts';

export const TEST_FACTS: ServerFacts = {
  version: '9.9.9',
  port: 6379,
  connectedClients: 3,
  uptimeSeconds: 90000,
  totalConnections: 10,
  rejectedConnections: 0,
  totalCommands: 1234,
  opsPerSec: 56,
  netOutputBytes: 4321,
  scanRecords: 0,
  memory: { used: 2048, rss: 4096, peak: 8192 },
};

/** A fresh context (its own session, id 7, RESP2) over `limits`, sharing `cursors` when given. */
export function respContext(
  limits: CommandLimits,
  cursors = new ScanCursorTable({ max: 100, ttlMs: 60_000 }),
): RespContext {
  return {
    limits,
    session: { id: 7, name: null, libName: null, libVer: null, proto: 2, lastCommand: '' },
    server: () => TEST_FACTS,
    cursors,
    clients: { list: () => [], kill: () => false },
  };
}
