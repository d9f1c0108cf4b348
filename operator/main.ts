// kvstore-operator entry point: options, kubeconfig, /metrics + /healthz, leader election, signals.

import { KubeConfig } from '@kubernetes/client-node';
import { KvError } from '../src/errors/index.ts';
import { onStopSignals, startFailure } from '../src/lifecycle/index.ts';
import { createLogger, createRegistry, startHttp } from '../src/observability/index.ts';
import { applyCrd, loadApplyCrdOptions, readCrd } from './apply-crd.ts';
import { createOperatorMetrics } from './metrics.ts';
import { Operator } from './operator.ts';
import { loadOptions, type Options } from './options.ts';
import { Kube } from './runtime/index.ts';

function kubeConfig(o: Pick<Options, 'kubeconfig'>): KubeConfig {
  const kc = new KubeConfig();
  try {
    if (o.kubeconfig) kc.loadFromFile(o.kubeconfig);
    else kc.loadFromDefault();
  } catch (err) {
    const which = o.kubeconfig ? `--kubeconfig ${o.kubeconfig}` : 'the default kubeconfig';
    const why = err instanceof Error ? err.message : String(err);
    throw new KvError('KV_ERR_CONFIG', `config: cannot load ${which}: ${why}`, { cause: err });
  }
  return kc;
}

/** `kvstore-operator apply-crd ...`: one server-side apply of a CRD, then exit (apply-crd.ts). */
async function applyCrdMain(argv: readonly string[]): Promise<number> {
  const loaded = loadApplyCrdOptions(argv, process.env);
  if (loaded.kind !== 'options') {
    const out = loaded.kind === 'help' ? process.stdout : process.stderr;
    out.write(`${loaded.kind === 'help' ? '' : 'kvstore-operator apply-crd: '}${loaded.text}\n`);
    return loaded.kind === 'help' ? 0 : 2;
  }
  const o = loaded.options;
  const logger = createLogger('info', { component: 'kvstore-operator', command: 'apply-crd' });
  try {
    const crd = readCrd(o.file);
    const kube = new Kube(kubeConfig(o));
    const generation = await applyCrd(kube, crd, o);
    logger.info(
      { crd: crd.metadata?.name, generation, fieldManager: o.fieldManager },
      'crd applied and established',
    );
    return 0;
  } catch (err) {
    const { text, code } = startFailure('kvstore-operator apply-crd', err);
    process.stderr.write(`${text}\n`);
    return code;
  }
}

async function main(): Promise<number> {
  const argv = process.argv.slice(2);
  if (argv[0] === 'apply-crd') return applyCrdMain(argv.slice(1));
  const loaded = loadOptions(argv, process.env);
  if (loaded.kind === 'help') {
    process.stdout.write(`${loaded.text}\n`);
    return 0;
  }
  if (loaded.kind === 'error') {
    process.stderr.write(`kvstore-operator: ${loaded.text}\n`);
    return 2;
  }
  const o = loaded.options;
  const logger = createLogger(o.logLevel, { component: 'kvstore-operator', identity: o.identity });
  const signalled = onStopSignals((kind, signal, count) =>
    logger.warn(
      { signal, count },
      kind === 'forced'
        ? 'signal received again, exiting now'
        : 'signal received again, still stopping',
    ),
  );
  let kube: Kube;
  try {
    kube = new Kube(kubeConfig(o));
  } catch (err) {
    const { text, code } = startFailure('kvstore-operator', err);
    process.stderr.write(`${text}\n`);
    return code;
  }
  const registry = createRegistry();
  const metrics = createOperatorMetrics(registry);
  const operator = new Operator({ options: o, kube, logger, metrics });
  const http = await startHttp({
    host: o.httpHost,
    port: o.httpPort,
    registry,
    readiness: () => ({ ready: operator.ready, reason: null }),
    logger,
  });
  logger.info(
    { httpPort: http.port, server: kube.kubeConfig.getCurrentCluster()?.server },
    'operator listening',
  );
  operator.start();
  const signal = await signalled;
  logger.info({ signal }, 'signal received');
  await operator.stop();
  await http.close();
  logger.info({}, 'operator stopped');
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`${startFailure('kvstore-operator', err).text}\n`);
    process.exitCode = 1;
  },
);
