// kvctl's TLS: the client settings from the arguments, and telling a TLS port from a closed one.

import { readFileSync } from 'node:fs';
import { connect } from 'node:tls';
import type { ClientTls } from '../client/index.ts';
import type { CliTls } from './args.ts';

/** A problem with kvctl's own settings (an unreadable file): one line, exit code 2. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** The client's TLS settings; throws ConfigError when the CA file cannot be read. */
export function clientTls(tls: CliTls | null): ClientTls | null {
  if (tls === null) return null;
  let ca: Buffer | undefined;
  if (tls.caFile) {
    try {
      ca = readFileSync(tls.caFile);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'error';
      throw new ConfigError(
        `config: cannot read --tls-ca-file (KVCTL_TLS_CA_FILE) ${tls.caFile} (${code})`,
      );
    }
  }
  return { rejectUnauthorized: !tls.insecure, ...(ca ? { ca } : {}) };
}

/**
 * True when host:port completes a TLS handshake (certificate not checked): a plain-text client
 * whose connection was closed without a word was talking to a TLS port.
 */
export function servesTls(host: string, port: number, timeoutMs = 2000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port, rejectUnauthorized: false });
    const done = (yes: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(yes);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.once('secureConnect', () => done(true));
    socket.once('error', () => done(false));
    socket.once('close', () => done(false));
  });
}
