// kvstore entry point: parse configuration, start the node, stop it on SIGTERM/SIGINT.

import { loadConfig } from './config/index.ts';
import { KvError } from './errors/index.ts';
import { startNode } from './node/index.ts';

async function main(): Promise<number> {
  const loaded = loadConfig(process.argv.slice(2), process.env);
  if (loaded.kind === 'help') {
    process.stdout.write(`${loaded.text}\n`);
    return 0;
  }
  if (loaded.kind === 'error') {
    process.stderr.write(`${loaded.text}\n`);
    return 2;
  }
  // Handlers go in before the node starts, so a signal during start-up is not the default
  // (immediate) exit: the node finishes starting, then stops cleanly.
  const signalled = new Promise<string>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  const node = await startNode(loaded.config);
  const signal = await signalled;
  node.logger.info({ signal }, 'signal received');
  // A second signal while draining forces the exit.
  const force = () => process.exit(1);
  process.once('SIGTERM', force);
  process.once('SIGINT', force);
  await node.stop();
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    // A damaged data directory is a configuration-level stop (2): restarting will not help.
    if (err instanceof KvError && err.code === 'KV_ERR_CORRUPT') {
      process.stderr.write(`kvstore: ${err.message}\n`);
      process.exitCode = 2;
      return;
    }
    process.stderr.write(`kvstore: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exitCode = 1;
  },
);
