// npm run chaos: a kvstore cluster in network namespaces under faults, its history checked; see README.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createLan, type LanHost, requireRoot } from '../helpers/netns.ts';
import { NODE } from '../helpers/node-process.ts';
import { buildPowerlossfs } from '../helpers/powerloss.ts';
import type { ControllerSpec } from './controller.ts';
import { REUSE_EXTRA_MS } from './nemesis.ts';
import { type ChaosOptions, parseOptions, USAGE } from './options.ts';

const CONTROLLER = resolve(import.meta.dirname, 'controller.ts');
/** Beyond the run itself: start-up, settling, the quiet period, final reads and checks. */
const OVERHEAD_S = 240;

async function main(): Promise<number> {
  const options = parseOptions(process.argv.slice(2));
  if (options === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  requireRoot('npm run chaos');
  // Built (or found in its cache) here, outside the namespaces: the controller mounts it.
  const powerlossfs =
    options.powerLoss || options.diskErrors ? await buildPowerlossfs() : undefined;
  if (options.seeds === 1) return (await runSeed(options, options.keep, powerlossfs)).code;
  // Many seeds: one after another, each on a fresh network; the first failure stops the series
  // and keeps its work directory (history.json, node logs).
  for (let i = 0; i < options.seeds; i++) {
    const seed = options.seed + i;
    process.stdout.write(`chaos: seed ${seed} (${i + 1} of ${options.seeds})\n`);
    const { code, workDir } = await runSeed({ ...options, seed }, true, powerlossfs);
    if (code !== 0) {
      process.stdout.write(
        `chaos: seed ${seed} failed (exit ${code}) after ${i} seeds passed in a row; ` +
          `its work directory is kept: ${workDir}\n`,
      );
      return code;
    }
    if (!options.keep) rmSync(workDir, { recursive: true, force: true });
  }
  const last = options.seed + options.seeds - 1;
  process.stdout.write(
    `chaos: ${options.seeds} seeds passed in a row (${options.seed}..${last})\n`,
  );
  return 0;
}

/** One chaos run on its own network; the work directory is removed unless `keep`. */
async function runSeed(
  options: ChaosOptions,
  keep: boolean,
  powerlossfs: string | undefined,
): Promise<{ code: number; workDir: string }> {
  const workDir = mkdtempSync(join(tmpdir(), 'kvstore-chaos-'));
  // Slots kv0..kvN: N members at the start, one spare for the member the nemesis adds.
  const names = Array.from({ length: options.nodes + 1 }, (_, i) => `kv${i}`);
  let code = 2;
  const lan = await createLan([...names, 'ctl']);
  try {
    const hosts = (n: string): LanHost => lan.hosts.get(n)!;
    const spec: ControllerSpec = {
      options,
      slots: names.map(hosts),
      ctl: hosts('ctl'),
      workDir,
      ...(powerlossfs ? { powerlossfs } : {}),
    };
    // The controller runs in the ctl namespace: it reaches every node over the private network,
    // and cutting a node's link cuts it off from the clients too.
    const child = lan.spawn('ctl', [NODE, CONTROLLER, JSON.stringify(spec)], {
      stdio: 'inherit',
    });
    const exited = new Promise<number>((res) => {
      child.once('exit', (c, signal) => res(c ?? (signal ? 128 : 2)));
    });
    let interrupts = 0;
    const interrupt = () => {
      // First Ctrl-C: the controller stops its processes and exits; second: kill it.
      child.kill(++interrupts === 1 ? 'SIGTERM' : 'SIGKILL');
    };
    process.on('SIGINT', interrupt);
    process.on('SIGTERM', interrupt);
    const limit = setTimeout(
      () => {
        process.stderr.write('chaos: the run exceeded its time limit; killing it\n');
        child.kill('SIGKILL');
      },
      (options.durationS + options.quietS + OVERHEAD_S) * 1000 +
        (options.reuseName ? REUSE_EXTRA_MS : 0),
    );
    code = await exited;
    clearTimeout(limit);
    process.off('SIGINT', interrupt);
    process.off('SIGTERM', interrupt);
  } finally {
    // Kills whatever still runs in the namespaces, then removes them and the data.
    await lan.destroy();
    if (!keep) rmSync(workDir, { recursive: true, force: true });
    // With --seeds the caller decides: it names a failed seed's directory, removes a passed one.
    else if (options.keep) process.stdout.write(`chaos: work directory kept: ${workDir}\n`);
  }
  return { code, workDir };
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(2);
  },
);
