// The node's state documents: each key read through its schema, never trusted as stored.

import { describe, expect, it } from 'vitest';
import {
  readStateDoc,
  STATE_DOCS,
  type StateKey,
  type StateStore,
  validStateDoc,
} from '../../src/storage/index.ts';

function store(docs: Record<string, unknown>): StateStore {
  return {
    readState: (name) => docs[name],
    writeState: async (name, value) => {
      docs[name] = value;
    },
  };
}

const GOOD: Record<StateKey, unknown> = {
  'settled-ring': {
    epoch: 3,
    members: ['a', 'b', 'c'],
    incarnations: { a: '00ff00ff00ff00ff' },
    // b handed its data off to ring 1f2e...: a node started again keeps that (it never saw b).
    lost: ['b', 'c'],
    handedOff: { b: '1f2e3d4c5b6a7980' },
    // c said it runs again after its hand-off: no record made from this one keeps it again.
    takenBack: ['c'],
  },
  'dns-names': { '10.0.0.1': 'kv-0', '::1': 'kv-1' },
  status: 'decommissioning',
  incarnation: '0123456789abcdef',
  'stream:rebalance': { ringId: 'r1:r2', after: 'a2V5', done: false },
  'stream:decommission': null,
  restore: 'b1',
  'taken-out': { droppedAt: 1_796_000_000_000 },
};

const BAD: Record<StateKey, unknown> = {
  'settled-ring': { epoch: -1, members: ['a'], incarnations: {} },
  'dns-names': ['10.0.0.1'],
  status: 'sleeping',
  incarnation: 'not-hex',
  'stream:rebalance': { ringId: 'r1', after: 7, done: false },
  'stream:decommission': 'cursor',
  restore: 12,
  'taken-out': { droppedAt: -1 },
};

describe('state documents', () => {
  it('lists every key with a schema, and reads each valid document as written', () => {
    expect(Object.keys(GOOD).sort()).toEqual(Object.keys(STATE_DOCS).sort());
    const s = store({ ...GOOD });
    for (const key of Object.keys(GOOD) as StateKey[]) {
      expect(readStateDoc(s, key)).toEqual(GOOD[key]);
      expect(validStateDoc(key, GOOD[key])).toBe(true);
    }
  });

  it('reads a malformed document as absent, and verify calls it invalid', () => {
    const s = store({ ...BAD });
    for (const key of Object.keys(BAD) as StateKey[]) {
      expect(readStateDoc(s, key)).toBeUndefined();
      expect(validStateDoc(key, BAD[key])).toBe(false);
    }
    expect(readStateDoc(store({}), 'status')).toBeUndefined();
    expect(validStateDoc('no-such-key', 1)).toBeNull();
  });

  it('reads the member list older versions saved as the settled ring', () => {
    expect(readStateDoc(store({ 'settled-ring': ['a', 'b'] }), 'settled-ring')).toEqual(['a', 'b']);
  });

  it('leaves out DNS names that are not an IP and a node name; verify flags the document', () => {
    const doc = { '10.0.0.1': 'kv-0', 'not-an-ip': 'kv-1', '10.0.0.2': '-bad-', '10.0.0.3': 7 };
    expect(readStateDoc(store({ 'dns-names': doc }), 'dns-names')).toEqual({ '10.0.0.1': 'kv-0' });
    expect(validStateDoc('dns-names', doc)).toBe(false);
  });
});
