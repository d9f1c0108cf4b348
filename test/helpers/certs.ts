// Generates a throwaway CA and certificates with openssl for TLS tests.

import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from './node-process.ts';

export interface TestPki {
  readonly dir: string;
  readonly ca: string;
  /** A certificate for `name`, signed by the CA, valid for the given IP/DNS names; paths. */
  issue(name: string, altNames: string[]): { cert: string; key: string };
}

function openssl(args: string[]): void {
  execFileSync('openssl', args, { stdio: 'pipe' });
}

/** A fresh CA (EC P-256) in a temporary directory removed by cleanup(). */
export function createPki(): TestPki {
  const dir = tempDir('kvstore-pki-');
  const ca = join(dir, 'ca.pem');
  const caKey = join(dir, 'ca-key.pem');
  openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', caKey]);
  openssl([
    'req',
    '-x509',
    '-new',
    '-key',
    caKey,
    '-subj',
    '/CN=kvstore test CA',
    '-days',
    '2',
    '-out',
    ca,
  ]);
  return {
    dir,
    ca,
    issue(name, altNames) {
      const key = join(dir, `${name}-key.pem`);
      const csr = join(dir, `${name}.csr`);
      const cert = join(dir, `${name}.pem`);
      const ext = join(dir, `${name}.ext`);
      const san = altNames.map((n) => (/^[0-9.]+$/.test(n) ? `IP:${n}` : `DNS:${n}`)).join(',');
      writeFileSync(ext, `subjectAltName=${san}\nextendedKeyUsage=serverAuth,clientAuth\n`);
      openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', key]);
      openssl(['req', '-new', '-key', key, '-subj', `/CN=${name}`, '-out', csr]);
      openssl([
        'x509',
        '-req',
        '-in',
        csr,
        '-CA',
        ca,
        '-CAkey',
        caKey,
        '-CAcreateserial',
        '-days',
        '2',
        '-extfile',
        ext,
        '-out',
        cert,
      ]);
      return { cert, key };
    },
  };
}

/** A node's flags for mutual TLS on the peer port, with a certificate from `pki` for 127.0.0.1. */
export function peerTlsArgs(pki: TestPki): string[] {
  const { cert, key } = pki.issue('peer', ['127.0.0.1']);
  return ['--peer-tls-cert-file', cert, '--peer-tls-key-file', key, '--peer-tls-ca-file', pki.ca];
}
