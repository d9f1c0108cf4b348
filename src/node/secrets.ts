// Reads the secrets and certificates the configuration names, once, at start.

import { readFileSync } from 'node:fs';
import type { ConnectionOptions, TlsOptions } from 'node:tls';
import type { Config } from '../config/index.ts';
import { KvError } from '../errors/index.ts';

export interface Secrets {
  /** AUTH password; null when none is configured. */
  readonly password: string | null;
  readonly clusterSecret: string | null;
  readonly clientTls: { readonly cert: Buffer; readonly key: Buffer } | null;
  /** Mutual TLS for the peer port: server and client sides. */
  readonly peerTls: { readonly server: TlsOptions; readonly client: ConnectionOptions } | null;
}

function read(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    // `--tls-cert-file (KV_TLS_CERT_FILE)`: the flag and its variable, whichever was used.
    const env = `KV_${what.slice(2).toUpperCase().replaceAll('-', '_')}`;
    throw new KvError('KV_ERR_CONFIG', `config: cannot read ${what} (${env}) ${path}`, {
      cause: err,
    });
  }
}

function secret(inline: string, file: string, what: string): string | null {
  if (file)
    return (
      read(file, what)
        .toString('utf8')
        .replace(/\r?\n$/, '') || null
    );
  return inline || null;
}

/** Loads every configured secret file. Throws KV_ERR_CONFIG naming an unreadable one. */
export function loadSecrets(c: Config): Secrets {
  const peerTls = c.peerTlsCaFile
    ? (() => {
        const cert = read(c.peerTlsCertFile, '--peer-tls-cert-file');
        const key = read(c.peerTlsKeyFile, '--peer-tls-key-file');
        const ca = read(c.peerTlsCaFile, '--peer-tls-ca-file');
        return {
          server: { cert, key, ca, requestCert: true, rejectUnauthorized: true },
          // Peers are dialled by IP (DNS A records) or by name: the chain is verified against
          // the cluster CA, the host name is not (every peer certificate comes from that CA).
          client: { cert, key, ca, rejectUnauthorized: true, checkServerIdentity: () => undefined },
        };
      })()
    : null;
  return {
    password: secret(c.password, c.passwordFile, '--password-file'),
    clusterSecret: secret(c.clusterSecret, c.clusterSecretFile, '--cluster-secret-file'),
    clientTls: c.tlsCertFile
      ? { cert: read(c.tlsCertFile, '--tls-cert-file'), key: read(c.tlsKeyFile, '--tls-key-file') }
      : null,
    peerTls,
  };
}
