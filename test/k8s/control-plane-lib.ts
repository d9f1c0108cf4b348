// Starts a real Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok) on loopback for tests.

import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { createServer } from 'node:net';
import { homedir, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = resolve(HERE, '..', '..');
const BUILD_SCRIPT = join(HERE, 'build-tools.sh');

/** The tools build-tools.sh builds, each a binary in the version-keyed cache. */
export const TOOLS = [
  'kube-apiserver',
  'kube-controller-manager',
  'kube-scheduler',
  'kubectl',
  'etcd',
  'kwok',
  'helm',
] as const;
export type Tool = (typeof TOOLS)[number];

/** Annotation kwok is told to manage nodes by; the fake nodes carry it. */
export const KWOK_NODE_ANNOTATION = 'kwok.x-k8s.io/node';
/** Label on every fake node (`type: kwok`), for nodeSelectors. */
export const KWOK_NODE_LABEL = { key: 'type', value: 'kwok' } as const;
export const SERVICE_CIDR = '10.96.0.0/16';

/** The cache root: KVSTORE_K8S_CACHE, else ${XDG_CACHE_HOME:-$HOME/.cache}/kvstore-k8s. */
export function cacheDir(): string {
  return (
    process.env.KVSTORE_K8S_CACHE ??
    join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'kvstore-k8s')
  );
}

/** The module version a wrapper go.mod requires (e.g. kubernetesVersion() === 'v1.37.2'). */
export function wrapperVersion(wrapper: string, module: string): string {
  const gomod = readFileSync(join(HERE, 'go', wrapper, 'go.mod'), 'utf8');
  const escaped = module.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  const m = new RegExp(`(?:^|\\s)${escaped}\\s+(v\\d[^\\s]*)`, 'm').exec(gomod);
  if (!m?.[1]) throw new Error(`no ${module} version in test/k8s/go/${wrapper}/go.mod`);
  return m[1];
}

export function kubernetesVersion(): string {
  return wrapperVersion('kubernetes', 'k8s.io/kubernetes');
}

export function helmVersion(): string {
  return wrapperVersion('helm', 'helm.sh/helm/v4');
}

export interface RunResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export interface RunOptions {
  /** Written to stdin. */
  readonly input?: string;
  readonly env?: NodeJS.ProcessEnv;
  /** Resolve with a non-zero exit code instead of rejecting. */
  readonly allowFailure?: boolean;
  /** Kill the command after this long (default 120 s). */
  readonly timeoutMs?: number;
  /** Where stderr goes while it runs, besides being collected (e.g. process.stderr). */
  readonly stderrTo?: NodeJS.WritableStream;
}

/** Runs a command to completion; rejects on a non-zero exit unless allowFailure. */
export function run(
  cmd: string,
  args: readonly string[],
  opts: RunOptions = {},
): Promise<RunResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(cmd, args, {
      env: opts.env ?? process.env,
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout?.on('data', (d: Buffer) => out.push(d));
    child.stderr?.on('data', (d: Buffer) => {
      err.push(d);
      opts.stderrTo?.write(d);
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 120_000);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const result = {
        code: code ?? 128,
        stdout: Buffer.concat(out).toString(),
        stderr: Buffer.concat(err).toString(),
      };
      if (result.code !== 0 && !opts.allowFailure) {
        const how = signal ? `signal ${signal}` : `code ${code}`;
        reject(
          new Error(`${cmd} ${args.join(' ')} failed (${how}): ${result.stderr || result.stdout}`),
        );
      } else {
        resolvePromise(result);
      }
    });
    if (child.stdin) {
      // A command may exit without reading its input; its exit code tells what happened.
      child.stdin.on('error', () => {});
      child.stdin.end(opts.input);
    }
  });
}

/** Builds (or finds in the cache) the tools; returns each binary's path and kwok's stage file. */
export async function buildTools(
  tools: readonly Tool[] = TOOLS,
  progress: NodeJS.WritableStream = process.stderr,
): Promise<{ bins: Record<Tool, string>; kwokStages: string }> {
  const { stdout } = await run('bash', [BUILD_SCRIPT, ...tools], {
    timeoutMs: 3 * 60 * 60_000,
    stderrTo: progress,
  });
  const found = new Map<string, string>();
  for (const line of stdout.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) found.set(line.slice(0, eq), line.slice(eq + 1));
  }
  const bins = {} as Record<Tool, string>;
  for (const t of tools) {
    const p = found.get(t);
    if (!p) throw new Error(`build-tools.sh did not report ${t}`);
    bins[t] = p;
  }
  return { bins, kwokStages: found.get('kwok-stages') ?? '' };
}

/** A free TCP port on 127.0.0.1 (asked from the OS, then released). */
export function freePort(): Promise<number> {
  return new Promise((resolvePromise, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen({ host: '127.0.0.1', port: 0 }, () => {
      const addr = srv.address();
      srv.close(() => {
        if (addr && typeof addr === 'object') resolvePromise(addr.port);
        else reject(new Error('no port'));
      });
    });
  });
}

async function openssl(args: string[], cwd: string): Promise<void> {
  await run(
    'openssl',
    args.map((a) => (a.startsWith('@') ? join(cwd, a.slice(1)) : a)),
  );
}

interface Pki {
  readonly dir: string;
  readonly ca: string;
  readonly caKey: string;
  readonly saKey: string;
  readonly saPub: string;
}

/** A CA, the apiserver serving cert, the service-account key pair and client certs (EC P-256). */
async function makePki(dir: string, clients: Record<string, string>): Promise<Pki> {
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
async function writeKubeconfig(
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

/** A started component: its process group leader, log file and exit state. */
interface Component {
  readonly name: string;
  readonly pid: number;
  readonly log: string;
  readonly child: ChildProcess;
  exited: string | undefined;
}

/** Last lines of a component's log, for error messages. */
function tail(path: string, lines = 25): string {
  try {
    return readFileSync(path, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

function startComponent(name: string, bin: string, args: string[], logDir: string): Component {
  const log = join(logDir, `${name}.log`);
  const fd = openSync(log, 'a');
  // Own process group (detached), so stop() reaches any children and `k8s:up` can exit and leave it running.
  const child = spawn(bin, args, { detached: true, stdio: ['ignore', fd, fd] });
  closeSync(fd);
  child.unref();
  if (child.pid === undefined) throw new Error(`${name} did not start`);
  const c: Component = { name, pid: child.pid, log, child, exited: undefined };
  child.on('exit', (code, signal) => {
    c.exited = signal ? `signal ${signal}` : `code ${code}`;
  });
  child.on('error', (e) => {
    c.exited = e.message;
  });
  return c;
}

/** Whether pid is running; a zombie (exited, not yet reaped by its new parent) is not. */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    // Fields after the parenthesised command name: the first is the state.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }
}

/**
 * Stops recorded components in dependency order: clients of the apiserver first, then
 * kube-apiserver, then etcd (an apiserver without etcd shuts down slowly).
 */
export async function stopComponents(pids: Readonly<Record<string, number>>): Promise<void> {
  const last = ['kube-apiserver', 'etcd'];
  await killProcesses(
    Object.entries(pids)
      .filter(([name]) => !last.includes(name))
      .map(([, pid]) => pid),
  );
  for (const name of last) {
    const pid = pids[name];
    if (pid !== undefined) await killProcesses([pid]);
  }
}

/** SIGTERM each process group, then SIGKILL what is left after graceMs. */
export async function killProcesses(pids: readonly number[], graceMs = 5_000): Promise<void> {
  for (const pid of pids) signalGroup(pid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (pids.some(alive) && Date.now() < deadline) await sleep(100);
  for (const pid of pids) if (alive(pid)) signalGroup(pid, 'SIGKILL');
  const hard = Date.now() + 5_000;
  while (pids.some(alive) && Date.now() < hard) await sleep(50);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

interface HttpsProbe {
  readonly ca?: Buffer;
  readonly cert?: Buffer;
  readonly key?: Buffer;
}

function httpsGet(url: string, tls: HttpsProbe): Promise<{ status: number; body: string }> {
  return new Promise((resolvePromise, reject) => {
    const req = request(
      url,
      { ...tls, rejectUnauthorized: tls.ca !== undefined, timeout: 5_000 },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (d: Buffer) => chunks.push(d));
        res.on('end', () =>
          resolvePromise({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }),
        );
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

async function httpGet(url: string): Promise<{ status: number; body: string }> {
  const res = await fetch(url, { signal: AbortSignal.timeout(5_000) });
  return { status: res.status, body: await res.text() };
}

/** Polls check() until it returns true; fails early when the component exits. */
async function waitFor(
  what: string,
  component: Component | undefined,
  timeoutMs: number,
  check: () => Promise<boolean>,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    if (component?.exited) {
      throw new Error(
        `${component.name} exited (${component.exited}) while waiting for ${what}:\n${tail(component.log)}`,
      );
    }
    try {
      if (await check()) return;
    } catch (e) {
      last = (e as Error).message;
    }
    if (Date.now() > deadline) {
      const logs = component ? `\n${component.name} log:\n${tail(component.log)}` : '';
      throw new Error(`timed out waiting for ${what}${last ? ` (${last})` : ''}${logs}`);
    }
    await sleep(250);
  }
}

export interface StartOptions {
  /** Number of kwok fake nodes `kwok-node-0..n-1` (default 1). */
  readonly nodes?: number;
  /** Taint fake nodes with kwok.x-k8s.io/node=fake:NoSchedule (default false). */
  readonly taintNodes?: boolean;
  /**
   * Leave the processes running when this Node process exits (for `k8s:up`); otherwise they
   * are killed on exit even if stop() was never called.
   */
  readonly persistent?: boolean;
  /** Where build progress goes (default process.stderr). */
  readonly progress?: NodeJS.WritableStream;
}

/** What a state file holds; enough for another process to use or stop the control plane. */
export interface ControlPlaneState {
  readonly dir: string;
  readonly kubeconfig: string;
  readonly server: string;
  readonly binDir: string;
  readonly version: string;
  readonly pids: Record<string, number>;
  readonly env: Record<string, string>;
}

export interface ControlPlane extends ControlPlaneState {
  /** Runs the built kubectl against this control plane (admin); resolves with stdout. */
  kubectl(args: readonly string[], opts?: RunOptions): Promise<string>;
  /** Runs the built helm against this control plane (admin); resolves with stdout. */
  helm(args: readonly string[], opts?: RunOptions): Promise<string>;
  /** Runs the built kubectl, resolving with code/stdout/stderr even when it fails. */
  kubectlResult(args: readonly string[], opts?: RunOptions): Promise<RunResult>;
  /** Kills every process (SIGTERM, then SIGKILL) and removes the state directory. */
  stop(): Promise<void>;
}

/** The admin environment for tools: KUBECONFIG, PATH with the built binaries, helm dirs. */
function toolEnv(dir: string, kubeconfig: string, binDir: string): Record<string, string> {
  return {
    KUBECONFIG: kubeconfig,
    PATH: `${binDir}:${process.env.PATH ?? ''}`,
    HELM_CACHE_HOME: join(dir, 'helm', 'cache'),
    HELM_CONFIG_HOME: join(dir, 'helm', 'config'),
    HELM_DATA_HOME: join(dir, 'helm', 'data'),
  };
}

function fakeNode(name: string, taint: boolean): string {
  return `apiVersion: v1
kind: Node
metadata:
  name: ${name}
  annotations:
    ${KWOK_NODE_ANNOTATION}: fake
    node.alpha.kubernetes.io/ttl: "0"
  labels:
    ${KWOK_NODE_LABEL.key}: ${KWOK_NODE_LABEL.value}
    kubernetes.io/arch: amd64
    kubernetes.io/os: linux
    kubernetes.io/hostname: ${name}
    node-role.kubernetes.io/agent: ""
spec:
${taint ? `  taints:\n  - key: ${KWOK_NODE_ANNOTATION}\n    value: fake\n    effect: NoSchedule\n` : '  {}\n'}status:
  allocatable: { cpu: "32", memory: 256Gi, pods: "110" }
  capacity: { cpu: "32", memory: 256Gi, pods: "110" }
---
`;
}

/**
 * Builds the tools if needed (cached by version) and starts etcd, kube-apiserver (RBAC),
 * kube-controller-manager, kube-scheduler and kwok with fake nodes, all on 127.0.0.1 ports
 * chosen by the OS, with every file under one temp dir. Resolves when /readyz is ok, the nodes
 * are Ready and the default ServiceAccount exists. On failure everything started is stopped.
 */
export async function startControlPlane(opts: StartOptions = {}): Promise<ControlPlane> {
  const { bins, kwokStages } = await buildTools(TOOLS, opts.progress);
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(bins, kwokStages, opts);
    } catch (e) {
      // Another process may take a port between freePort() and the bind; try new ports.
      if (attempt < 3 && /address already in use/i.test((e as Error).message)) continue;
      throw e;
    }
  }
}

async function startOnce(
  bins: Record<Tool, string>,
  kwokStages: string,
  opts: StartOptions,
): Promise<ControlPlane> {
  const dir = await mkdtemp(join(tmpdir(), 'kvstore-k8s-'));
  const components: Component[] = [];
  const killOnExit = () => {
    for (const c of components) signalGroup(c.pid, 'SIGKILL');
  };
  if (!opts.persistent) process.on('exit', killOnExit);
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    process.off('exit', killOnExit);
    await stopComponents(Object.fromEntries(components.map((c) => [c.name, c.pid])));
    await rm(dir, { recursive: true, force: true, maxRetries: 3 });
  };
  try {
    const binDir = join(dir, 'bin');
    const logDir = join(dir, 'logs');
    await mkdir(binDir);
    await mkdir(logDir);
    for (const t of TOOLS) await symlink(bins[t], join(binDir, t));

    const pki = await makePki(join(dir, 'pki'), {
      admin: '/O=system:masters/CN=kubernetes-admin',
      'controller-manager': '/CN=system:kube-controller-manager',
      scheduler: '/CN=system:kube-scheduler',
      kwok: '/O=system:masters/CN=kwok-controller',
    });
    const [etcdClient, etcdPeer, apiPort, kcmPort, schedPort] = await Promise.all(
      Array.from({ length: 5 }, freePort),
    );
    const server = `https://127.0.0.1:${apiPort}`;
    const kubeconfig = join(dir, 'admin.kubeconfig');
    await writeKubeconfig(kubeconfig, server, pki, 'admin', 'kubernetes-admin');
    const kcmConfig = join(dir, 'controller-manager.kubeconfig');
    await writeKubeconfig(kcmConfig, server, pki, 'controller-manager', 'kube-controller-manager');
    const schedConfig = join(dir, 'scheduler.kubeconfig');
    await writeKubeconfig(schedConfig, server, pki, 'scheduler', 'kube-scheduler');
    const kwokConfig = join(dir, 'kwok.kubeconfig');
    await writeKubeconfig(kwokConfig, server, pki, 'kwok', 'kwok');

    // etcd: one member, plain HTTP on loopback, no fsync (test data only).
    const etcdUrl = `http://127.0.0.1:${etcdClient}`;
    const peerUrl = `http://127.0.0.1:${etcdPeer}`;
    const etcd = startComponent(
      'etcd',
      bins.etcd,
      [
        '--name=etcd0',
        `--data-dir=${join(dir, 'etcd')}`,
        `--listen-client-urls=${etcdUrl}`,
        `--advertise-client-urls=${etcdUrl}`,
        `--listen-peer-urls=${peerUrl}`,
        `--initial-advertise-peer-urls=${peerUrl}`,
        `--initial-cluster=etcd0=${peerUrl}`,
        '--initial-cluster-state=new',
        '--unsafe-no-fsync',
        '--log-level=warn',
      ],
      logDir,
    );
    components.push(etcd);
    await waitFor('etcd /health', etcd, 30_000, async () => {
      const r = await httpGet(`${etcdUrl}/health`);
      return r.status === 200 && r.body.includes('"true"');
    });

    const apiserver = startComponent(
      'kube-apiserver',
      bins['kube-apiserver'],
      [
        `--etcd-servers=${etcdUrl}`,
        '--bind-address=127.0.0.1',
        '--advertise-address=127.0.0.1',
        `--secure-port=${apiPort}`,
        `--cert-dir=${join(dir, 'apiserver')}`,
        `--tls-cert-file=${join(pki.dir, 'apiserver.crt')}`,
        `--tls-private-key-file=${join(pki.dir, 'apiserver.key')}`,
        `--client-ca-file=${pki.ca}`,
        `--requestheader-client-ca-file=${join(pki.dir, 'front-proxy-ca.crt')}`,
        '--requestheader-allowed-names=front-proxy-client',
        '--requestheader-username-headers=X-Remote-User',
        '--requestheader-group-headers=X-Remote-Group',
        '--requestheader-extra-headers-prefix=X-Remote-Extra-',
        `--proxy-client-cert-file=${join(pki.dir, 'front-proxy-client.crt')}`,
        `--proxy-client-key-file=${join(pki.dir, 'front-proxy-client.key')}`,
        '--authorization-mode=Node,RBAC',
        '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
        `--service-account-key-file=${pki.saPub}`,
        `--service-account-signing-key-file=${pki.saKey}`,
        `--service-cluster-ip-range=${SERVICE_CIDR}`,
        // The endpoints of `default/kubernetes` would have to be a non-loopback address.
        '--endpoint-reconciler-type=none',
        '--allow-privileged=true',
        '--profiling=false',
        '--v=1',
      ],
      logDir,
    );
    components.push(apiserver);
    const adminTls: HttpsProbe = {
      ca: await readFile(pki.ca),
      cert: await readFile(join(pki.dir, 'admin.crt')),
      key: await readFile(join(pki.dir, 'admin.key')),
    };
    await waitFor('kube-apiserver /readyz', apiserver, 120_000, async () => {
      const r = await httpsGet(`${server}/readyz`, adminTls);
      return r.status === 200 && r.body.trim() === 'ok';
    });

    const kcm = startComponent(
      'kube-controller-manager',
      bins['kube-controller-manager'],
      [
        `--kubeconfig=${kcmConfig}`,
        `--authentication-kubeconfig=${kcmConfig}`,
        `--authorization-kubeconfig=${kcmConfig}`,
        '--bind-address=127.0.0.1',
        `--secure-port=${kcmPort}`,
        `--cert-dir=${join(dir, 'controller-manager')}`,
        '--controllers=*',
        '--use-service-account-credentials=true',
        `--service-account-private-key-file=${pki.saKey}`,
        `--root-ca-file=${pki.ca}`,
        `--cluster-signing-cert-file=${pki.ca}`,
        `--cluster-signing-key-file=${pki.caKey}`,
        `--service-cluster-ip-range=${SERVICE_CIDR}`,
        '--leader-elect=false',
        '--profiling=false',
        '--v=1',
      ],
      logDir,
    );
    components.push(kcm);
    const scheduler = startComponent(
      'kube-scheduler',
      bins['kube-scheduler'],
      [
        `--kubeconfig=${schedConfig}`,
        `--authentication-kubeconfig=${schedConfig}`,
        `--authorization-kubeconfig=${schedConfig}`,
        '--bind-address=127.0.0.1',
        `--secure-port=${schedPort}`,
        '--leader-elect=false',
        '--profiling=false',
        '--v=1',
      ],
      logDir,
    );
    components.push(scheduler);
    const kwok = startComponent(
      'kwok',
      bins.kwok,
      [
        `--kubeconfig=${kwokConfig}`,
        `--config=${kwokStages}`,
        '--manage-all-nodes=false',
        `--manage-nodes-with-annotation-selector=${KWOK_NODE_ANNOTATION}=fake`,
        '--node-ip=127.0.0.1',
      ],
      logDir,
    );
    components.push(kwok);

    await waitFor('kube-controller-manager /healthz', kcm, 60_000, async () => {
      const r = await httpsGet(`https://127.0.0.1:${kcmPort}/healthz`, {});
      return r.status === 200;
    });
    await waitFor('kube-scheduler /healthz', scheduler, 60_000, async () => {
      const r = await httpsGet(`https://127.0.0.1:${schedPort}/healthz`, {});
      return r.status === 200;
    });

    const env = toolEnv(dir, kubeconfig, binDir);
    const toolOpts = (o: RunOptions | undefined): RunOptions => ({
      ...o,
      env: { ...process.env, ...env, ...o?.env },
    });
    const kubectlResult = (args: readonly string[], o?: RunOptions) =>
      run(bins.kubectl, ['--kubeconfig', kubeconfig, ...args], toolOpts(o));
    const kubectl = async (args: readonly string[], o?: RunOptions) =>
      (await kubectlResult(args, o)).stdout;
    const helm = async (args: readonly string[], o?: RunOptions) =>
      (await run(bins.helm, ['--kubeconfig', kubeconfig, ...args], toolOpts(o))).stdout;

    const nodes = Array.from({ length: opts.nodes ?? 1 }, (_, i) => `kwok-node-${i}`);
    await kubectl(['apply', '-f', '-'], {
      input: nodes.map((n) => fakeNode(n, opts.taintNodes ?? false)).join(''),
    });
    await waitFor('kwok to make the fake nodes Ready', kwok, 60_000, async () => {
      const r = await kubectlResult(
        ['wait', '--for=condition=Ready', '--timeout=5s', ...nodes.map((n) => `node/${n}`)],
        { allowFailure: true },
      );
      return r.code === 0;
    });
    // Pods can only be created once the controller-manager has made the default ServiceAccount.
    await waitFor('the default ServiceAccount', kcm, 60_000, async () => {
      const r = await kubectlResult(['get', 'serviceaccount', 'default', '-n', 'default'], {
        allowFailure: true,
      });
      return r.code === 0;
    });

    const pids: Record<string, number> = {};
    for (const c of components) pids[c.name] = c.pid;
    return {
      dir,
      kubeconfig,
      server,
      binDir,
      version: kubernetesVersion(),
      pids,
      env,
      kubectl,
      kubectlResult,
      helm,
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}

/** Where `k8s:up` records the running control plane; one per clone (cache dirs are shared). */
export function stateFile(): string {
  const id = createHash('sha256').update(REPO_ROOT).digest('hex').slice(0, 12);
  return process.env.KVSTORE_K8S_STATE ?? join(cacheDir(), `control-plane-${id}.json`);
}

export function stateOf(cp: ControlPlaneState): ControlPlaneState {
  const { dir, kubeconfig, server, binDir, version, pids, env } = cp;
  return { dir, kubeconfig, server, binDir, version, pids, env };
}

/** Stops a control plane recorded in a state file (possibly started by another process). */
export async function stopFromState(state: ControlPlaneState): Promise<void> {
  await stopComponents(state.pids);
  await rm(state.dir, { recursive: true, force: true, maxRetries: 3 });
}

/** Whether the apiserver of a recorded control plane answers /readyz. */
export async function isReady(state: ControlPlaneState): Promise<boolean> {
  const r = await run(
    join(state.binDir, 'kubectl'),
    ['--kubeconfig', state.kubeconfig, 'get', '--raw', '/readyz', '--request-timeout=5s'],
    { allowFailure: true, timeoutMs: 10_000 },
  ).catch(() => undefined);
  return r?.code === 0 && r.stdout.trim() === 'ok';
}
