// Peers prove the cluster secret to each other by challenge and response over two fresh nonces.
//
// The dialer sends `challenge` {n: its nonce}; the node answers {n: its own nonce, mac: HMAC of
// both under the secret, labelled `server`}; the dialer checks that proof (so it never sends data
// to an endpoint without the secret) and sends `auth` {mac: HMAC of both, labelled `client`}. Both
// nonces are fresh for the connection, so what a wire tap saw proves nothing on any other
// connection, to this node or another (a proof over a timestamp alone could be replayed to every
// node for its whole window). An active man in the middle can still relay a handshake: only peer
// TLS stops that.

import { KvError } from '../errors/index.ts';

/**
 * node:crypto, loaded at the first call: a node that never needs it does not load it (with
 * OpenSSL's set-up, about 1 MiB of RSS; docs/memory.md).
 */
const nodeCrypto = () => process.getBuiltinModule('node:crypto');

/** Bytes of each side's nonce. */
export const PEER_NONCE_BYTES = 32;

/** The peer methods of the handshake (replica/messages.ts lists them with the others). */
export const PEER_AUTH_METHODS = { challenge: 'challenge', auth: 'auth' } as const;

/** What a node keeps of one connection's handshake: both nonces once it answered a challenge. */
export interface PeerChallengeState {
  readonly client: Buffer;
  readonly server: Buffer;
}

type Role = 'server' | 'client';

function mac(secret: string, role: Role, client: Uint8Array, server: Uint8Array): Buffer {
  return nodeCrypto()
    .createHmac('sha256', secret)
    .update(`kvstore-peer-auth:v2:${role}:`)
    .update(client)
    .update(server)
    .digest();
}

function nonceOf(v: unknown): Buffer | null {
  return v instanceof Uint8Array && v.length === PEER_NONCE_BYTES ? Buffer.from(v) : null;
}

function macMatches(got: unknown, want: Buffer): boolean {
  return (
    got instanceof Uint8Array &&
    got.length === want.length &&
    nodeCrypto().timingSafeEqual(got, want)
  );
}

function refused(why: string): KvError {
  return new KvError('KV_ERR_NOAUTH', `replica: peer authentication failed: ${why}`);
}

/** Sends one handshake request on the connection being opened and resolves with the result. */
export type PeerAsk = (method: string, body: unknown) => Promise<unknown>;

/**
 * The dialer's side: challenge the node, check its proof, prove the secret. Rejects with
 * KV_ERR_NOAUTH when the node's proof is wrong or missing (it does not know the secret), or with
 * whatever the node answered (its NOAUTH when it refused this node's proof).
 */
export function peerHandshake(secret: string): (ask: PeerAsk) => Promise<void> {
  return async (ask) => {
    const client = nodeCrypto().randomBytes(PEER_NONCE_BYTES);
    const reply = (await ask(PEER_AUTH_METHODS.challenge, { n: client })) as {
      n?: unknown;
      mac?: unknown;
    } | null;
    const server = nonceOf(reply?.n);
    if (server === null || !macMatches(reply?.mac, mac(secret, 'server', client, server))) {
      throw refused('the peer did not prove the cluster secret');
    }
    await ask(PEER_AUTH_METHODS.auth, { mac: mac(secret, 'client', client, server) });
  };
}

/**
 * The node's answer to a `challenge`: its nonce and its proof over both. `state` is what
 * checkPeerProof needs later on the same connection. Throws KV_ERR_NOAUTH for a malformed body.
 */
export function answerPeerChallenge(
  secret: string,
  body: unknown,
): { readonly reply: { n: Buffer; mac: Buffer }; readonly state: PeerChallengeState } {
  const client = nonceOf((body as { n?: unknown } | null)?.n);
  if (client === null) throw refused('malformed challenge');
  const server = nodeCrypto().randomBytes(PEER_NONCE_BYTES);
  return {
    reply: { n: server, mac: mac(secret, 'server', client, server) },
    state: { client, server },
  };
}

/**
 * Checks an `auth` proof against the challenge answered on the same connection (`state`; null
 * when none was: refused, as is a proof of the former timestamp kind). Throws KV_ERR_NOAUTH.
 */
export function checkPeerProof(
  secret: string,
  body: unknown,
  state: PeerChallengeState | null,
): void {
  if (state === null) throw refused('no challenge on this connection');
  const got = (body as { mac?: unknown } | null)?.mac;
  if (!macMatches(got, mac(secret, 'client', state.client, state.server))) {
    throw refused('wrong proof');
  }
}
