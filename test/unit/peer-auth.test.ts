import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  answerPeerChallenge,
  checkPeerProof,
  PEER_NONCE_BYTES,
  type PeerChallengeState,
  peerHandshake,
} from '../../src/auth/index.ts';

/** Runs the dialer's handshake against the node's side in memory; returns what was asked. */
async function handshake(dialer: string, node: string) {
  const asked: { method: string; body: unknown }[] = [];
  let state: PeerChallengeState | null = null;
  await peerHandshake(dialer)(async (method, body) => {
    asked.push({ method, body });
    if (method === 'challenge') {
      const answer = answerPeerChallenge(node, body);
      state = answer.state;
      return answer.reply;
    }
    checkPeerProof(node, body, state);
    return { ok: true };
  });
  return { asked, state: state as PeerChallengeState | null };
}

describe('peer challenge and response', () => {
  it('authenticates both ways with the same secret', async () => {
    const { asked } = await handshake('swordfish', 'swordfish');
    expect(asked.map((a) => a.method)).toEqual(['challenge', 'auth']);
  });

  it('a proof is good on its own connection only', async () => {
    const first = await handshake('swordfish', 'swordfish');
    const proof = first.asked[1]!.body;
    expect(() => checkPeerProof('swordfish', proof, first.state)).not.toThrow();
    // Another connection: the node's nonce is new, so the seen proof does not match.
    const other = answerPeerChallenge('swordfish', first.asked[0]!.body).state;
    expect(() => checkPeerProof('swordfish', proof, other)).toThrow(/wrong proof/);
    expect(() => checkPeerProof('swordfish', proof, null)).toThrow(/no challenge/);
  });

  it('the dialer sends no proof to a node without the secret', async () => {
    await expect(handshake('swordfish', 'guess')).rejects.toMatchObject({
      code: 'KV_ERR_NOAUTH',
      message: expect.stringContaining('did not prove the cluster secret'),
    });
  });

  it('refuses malformed challenges and proofs', () => {
    for (const body of [null, {}, { n: 'x' }, { n: randomBytes(PEER_NONCE_BYTES - 1) }]) {
      expect(() => answerPeerChallenge('s', body)).toThrow(/malformed challenge/);
    }
    const { state } = answerPeerChallenge('s', { n: randomBytes(PEER_NONCE_BYTES) });
    for (const body of [
      null,
      {},
      { mac: 'x' },
      { mac: randomBytes(31) },
      { mac: randomBytes(32) },
    ]) {
      expect(() => checkPeerProof('s', body, state)).toThrow(/wrong proof/);
    }
  });
});
