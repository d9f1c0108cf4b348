// Certificates and kubeconfigs of the test control plane, made with openssl (EC P-256, one CA per run).

import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { NODE_NAME } from './node-lib.ts';
import { run } from './processes.ts';

/** Client certificates of the real node's parts (and of the API server towards the kubelet). */
export const NODE_CLIENTS = {
  'kubelet-client': `/O=system:nodes/CN=system:node:${NODE_NAME}`,
  'kube-proxy': '/CN=system:kube-proxy',
  coredns: '/CN=system:coredns',
  'local-path-provisioner': '/CN=kvstore-test:local-path-provisioner',
  'apiserver-kubelet-client': '/O=system:masters/CN=kube-apiserver-kubelet-client',
};

async function openssl(args: string[], cwd: string): Promise<void> {
  await run(
    'openssl',
    args.map((a) => (a.startsWith('@') ? join(cwd, a.slice(1)) : a)),
  );
}

export interface Pki {
  readonly dir: string;
  readonly ca: string;
  readonly caKey: string;
  readonly saKey: string;
  readonly saPub: string;
}

/** A CA, the apiserver serving cert, the service-account key pair and client certs (EC P-256). */
export async function makePki(
  dir: string,
  clients: Record<string, string>,
  /** More names of the API server (the node mode's listen address). */
  apiserverSans: readonly string[] = [],
  /** Serving certificates to sign: name -> [subject, subjectAltNames]. */
  servers: Record<string, [string, readonly string[]]> = {},
): Promise<Pki> {
  await mkdir(dir, { recursive: true });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  const makeCa = (name: string, cn: string) =>
    openssl(
      [
        'req',
        '-x509',
        ...ec,
        '-keyout',
        `@${name}.key`,
        '-out',
        `@${name}.crt`,
        '-days',
        '3650',
        '-subj',
        `/CN=${cn}`,
      ],
      dir,
    );
  await makeCa('ca', 'kvstore-test-ca');
  // A separate CA for the aggregation layer's request-header client, as kubeadm does.
  await makeCa('front-proxy-ca', 'kvstore-test-front-proxy-ca');
  const sign = async (name: string, subject: string, ext: string, ca = 'ca'): Promise<void> => {
    await writeFile(join(dir, `${name}.ext`), ext);
    await openssl(
      ['req', '-new', ...ec, '-keyout', `@${name}.key`, '-out', `@${name}.csr`, '-subj', subject],
      dir,
    );
    await openssl(
      [
        'x509',
        '-req',
        '-in',
        `@${name}.csr`,
        '-CA',
        `@${ca}.crt`,
        '-CAkey',
        `@${ca}.key`,
        '-CAcreateserial',
        '-days',
        '3650',
        '-extfile',
        `@${name}.ext`,
        '-out',
        `@${name}.crt`,
      ],
      dir,
    );
  };
  const sans = [
    'IP:127.0.0.1',
    'IP:10.96.0.1',
    'DNS:localhost',
    'DNS:kubernetes',
    'DNS:kubernetes.default',
    'DNS:kubernetes.default.svc',
    'DNS:kubernetes.default.svc.cluster.local',
    ...apiserverSans,
  ];
  const common =
    'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n';
  await sign(
    'apiserver',
    '/CN=kube-apiserver',
    `${common}extendedKeyUsage=serverAuth\nsubjectAltName=${sans.join(',')}\n`,
  );
  for (const [name, subject] of Object.entries(clients)) {
    await sign(name, subject, `${common}extendedKeyUsage=clientAuth\n`);
  }
  for (const [name, [subject, names]] of Object.entries(servers)) {
    await sign(
      name,
      subject,
      `${common}extendedKeyUsage=serverAuth\nsubjectAltName=${names.join(',')}\n`,
    );
  }
  await sign(
    'front-proxy-client',
    '/CN=front-proxy-client',
    `${common}extendedKeyUsage=clientAuth\n`,
    'front-proxy-ca',
  );
  await openssl(
    ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', '@sa.key'],
    dir,
  );
  await openssl(['pkey', '-in', '@sa.key', '-pubout', '-out', '@sa.pub'], dir);
  return {
    dir,
    ca: join(dir, 'ca.crt'),
    caKey: join(dir, 'ca.key'),
    saKey: join(dir, 'sa.key'),
    saPub: join(dir, 'sa.pub'),
  };
}

/** A kubeconfig with the CA and the client cert/key embedded. */
export async function writeKubeconfig(
  path: string,
  server: string,
  pki: Pki,
  client: string,
  user: string,
): Promise<void> {
  const b64 = async (f: string) => (await readFile(join(pki.dir, f))).toString('base64');
  await writeFile(
    path,
    `apiVersion: v1
kind: Config
clusters:
- name: kvstore-test
  cluster:
    server: ${server}
    certificate-authority-data: ${await b64('ca.crt')}
users:
- name: ${user}
  user:
    client-certificate-data: ${await b64(`${client}.crt`)}
    client-key-data: ${await b64(`${client}.key`)}
contexts:
- name: ${user}@kvstore-test
  context:
    cluster: kvstore-test
    user: ${user}
current-context: ${user}@kvstore-test
`,
    { mode: 0o600 },
  );
}
