import { describe, expect, it } from 'vitest';
import { KvError } from '../../src/errors/index.ts';
import type { Command, Reply } from '../../src/protocol/index.ts';
import { execQueued, MAX_QUEUED, Transaction } from '../../src/server/transaction.ts';

const b = (s: string) => Buffer.from(s);
const put = (k: string, v = 'v'): Command => ({ type: 'put', key: b(k), value: b(v) });

describe('Transaction', () => {
  it('queues until its bounds, then refuses and is failed (EXEC will abort)', () => {
    const tx = new Transaction(64 + 64 + 10);
    expect(tx.add({ kind: 'command', cmd: put('a') })).toEqual({ type: 'status', text: 'QUEUED' });
    expect(tx.failed).toBe(false);
    const over = tx.add({ kind: 'command', cmd: put('b', 'x'.repeat(20)) });
    expect(over).toMatchObject({ type: 'error', code: 'KV_ERR_LIMIT_EXCEEDED' });
    expect(tx.failed).toBe(true);
    expect(tx.take()).toHaveLength(1);
    expect(MAX_QUEUED).toBeGreaterThan(1000);
  });

  it('an error reply queued (a refused command) fails the transaction', () => {
    const tx = new Transaction(1 << 20);
    const err: Reply = { type: 'error', code: 'KV_ERR_NOT_ATOMIC', message: 'x' };
    expect(tx.add({ kind: 'reply', reply: err })).toBe(err);
    expect(tx.failed).toBe(true);
  });
});

describe('execQueued', () => {
  it('runs in order, one after another; after a failure the rest are not run', async () => {
    const ran: string[] = [];
    let running = 0;
    const run = async (cmd: Command): Promise<Reply> => {
      expect(running).toBe(0); // never two at once
      running++;
      await new Promise((r) => setImmediate(r));
      running--;
      const key = cmd.type === 'put' ? cmd.key.toString() : '?';
      ran.push(key);
      if (key === 'fail') throw new KvError('KV_ERR_UNAVAILABLE', 'replication: write quorum 1/2');
      return { type: 'ok' };
    };
    const failure = (err: unknown): Reply => ({
      type: 'error',
      code: (err as KvError).code,
      message: (err as KvError).message,
    });
    const reply = await execQueued(
      [
        { kind: 'command', cmd: put('a') },
        { kind: 'reply', reply: { type: 'status', text: 'hi' } },
        { kind: 'command', cmd: put('fail') },
        { kind: 'command', cmd: put('c') },
      ],
      run,
      failure,
    );
    expect(ran).toEqual(['a', 'fail']);
    expect(reply).toMatchObject({
      type: 'array',
      items: [
        { type: 'ok' },
        { type: 'status', text: 'hi' },
        { type: 'error', code: 'KV_ERR_UNAVAILABLE' },
        {
          type: 'error',
          code: 'KV_ERR_NOT_RUN',
          message: 'server: not run, because command 3 of this EXEC failed before it',
        },
      ],
    });
  });
});
