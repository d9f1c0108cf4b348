// kvstore-operator entry point: options, kubeconfig, /metrics + /healthz, leader election, signals.

import { KubeConfig } from '@kubernetes/client-node';
import { createLogger, createRegistry, startHttp } from '../src/observability/index.ts';
import { createOperatorMetrics } from './metrics.ts';
import { Operator } from './operator.ts';
import { loadOptions, type Options } from './options.ts';
import { Kube } from './runtime/index.ts';

function kubeConfig(o: Options): KubeConfig {
  const kc = new KubeConfig();
  if (o.kubeconfig) kc.loadFromFile(o.kubeconfig);
  else kc.loadFromDefault();
  return kc;
}

function signalled(): Promise<string> {
  return new Promise((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
}

async function main(): Promise<number> {
  const loaded = loadOptions(process.argv.slice(2), process.env);
  if (loaded.kind !== 'options') {
    (loaded.kind === 'help' ? process.stdout : process.stderr).write(`${loaded.text}\n`);
    return loaded.kind === 'help' ? 0 : 2;
  }
  const o = loaded.options;
  const logger = createLogger(o.logLevel, { component: 'kvstore-operator', identity: o.identity });
  const kube = new Kube(kubeConfig(o));
  const registry = createRegistry();
  const metrics = createOperatorMetrics(registry);
  const operator = new Operator({ options: o, kube, logger, metrics });
  const http = await startHttp({
    host: o.httpHost,
    port: o.httpPort,
    registry,
    ready: () => operator.ready,
    logger,
  });
  logger.info(
    { httpPort: http.port, server: kube.kubeConfig.getCurrentCluster()?.server },
    'operator listening',
  );
  operator.start();
  const signal = await signalled();
  logger.info({ signal }, 'signal received');
  const force = () => process.exit(1);
  process.once('SIGTERM', force);
  process.once('SIGINT', force);
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
    process.stderr.write(`kvstore-operator: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exitCode = 1;
  },
);
