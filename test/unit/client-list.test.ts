// CLIENT LIST's text is made once per snapshot of the connections (protocol/resp-inspect.ts):
// the calls that share a snapshot (one event-loop turn's, server.ts) share its rendering.

import { describe, expect, it } from 'vitest';
import type { ClientInfo, Reply, RespContext } from '../../src/protocol/index.ts';
import { clientList } from '../../src/protocol/resp-inspect.ts';
import { respContext } from '../helpers/resp-context.ts';

const LIMITS = { maxKeyBytes: 16, maxValueBytes: 32, maxScanKeys: 100 };
const b = (s: string) => Buffer.from(s, 'latin1');

/** `n` clients whose `addr` (read for their line only) counts how often a line was made of them. */
function counted(n: number): { list: ClientInfo[]; reads: () => number } {
  let reads = 0;
  const list = Array.from({ length: n }, (_, i) => {
    const info: ClientInfo = {
      id: i + 1,
      get addr() {
        reads++;
        return `127.0.0.1:${40000 + i}`;
      },
      laddr: '127.0.0.1:8081',
      name: null,
      ageSeconds: 1,
      idleSeconds: 0,
      multi: -1,
      lastCommand: 'get',
      proto: 2,
      libName: null,
      libVer: null,
    };
    return info;
  });
  return { list, reads: () => reads };
}

function withClients(list: () => readonly ClientInfo[]): RespContext {
  return { ...respContext(LIMITS), clients: { list, kill: () => false } };
}

const text = (r: Reply) => (r.type === 'value' ? r.value.toString('latin1') : JSON.stringify(r));

describe('CLIENT LIST', () => {
  it('makes the text of one snapshot once, whatever the number of calls', () => {
    const { list, reads } = counted(100);
    const ctx = withClients(() => list);
    const first = clientList([b('CLIENT'), b('LIST')], ctx);
    expect(reads()).toBe(100);
    for (let i = 0; i < 50; i++) expect(clientList([b('CLIENT'), b('LIST')], ctx)).toBe(first);
    expect(reads()).toBe(100);
    expect(text(first).split('\n').filter(Boolean)).toHaveLength(100);
    expect(text(first)).toMatch(/^id=1 addr=127\.0\.0\.1:40000 /);
  });

  it('makes it again for a new snapshot, and filters from the snapshot', () => {
    let snap = counted(3);
    const ctx = withClients(() => snap.list);
    const before = text(clientList([b('CLIENT'), b('LIST')], ctx));
    snap = counted(2);
    const after = text(clientList([b('CLIENT'), b('LIST')], ctx));
    expect(before.split('\n').filter(Boolean)).toHaveLength(3);
    expect(after.split('\n').filter(Boolean)).toHaveLength(2);
    const one = text(clientList([b('CLIENT'), b('LIST'), b('ID'), b('2')], ctx));
    expect(one).toMatch(/^id=2 addr=127\.0\.0\.1:40001 .*\n$/);
  });

  it("takes a new snapshot when the caller's own name changed since (SETNAME; LIST in one pipeline)", () => {
    const old = counted(8).list; // id 7 is this session, named nothing yet
    const fresh = counted(8).list.map((c) => (c.id === 7 ? { ...c, addr: c.addr, name: 'me' } : c));
    const asked: boolean[] = [];
    const ctx = withClients(() => old);
    ctx.clients.list = (f?: boolean) => {
      asked.push(f === true);
      return f === true ? fresh : old;
    };
    ctx.session.name = 'me';
    expect(text(clientList([b('CLIENT'), b('LIST')], ctx))).toContain(
      'id=7 addr=127.0.0.1:40006 laddr=127.0.0.1:8081 fd=-1 name=me ',
    );
    expect(asked).toEqual([false, true]);
  });
});
