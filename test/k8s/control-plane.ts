// CLI for the test Kubernetes control plane: `node test/k8s/control-plane.ts up [--node]|down|env|build|status`.

import { existsSync, readFileSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { startControlPlane } from './control-plane-lib.ts';
import {
  type ControlPlaneState,
  isReady,
  stateFile,
  stateOf,
  stopFromState,
} from './control-plane-state.ts';
import { NODE_TOOLS } from './node-lib.ts';
import { buildTools, TOOLS } from './tools.ts';

const USAGE = `usage: node test/k8s/control-plane.ts <command>
  build   build the tools into the version-keyed cache (no-op when cached)
  up      build if needed, start a control plane that keeps running, print its KUBECONFIG
          --node: with a real node (kubelet, containerd, CNI, CoreDNS, kube-proxy; see
          docs/kubernetes.md); load an image with: docker save IMAGE | ctr images import -
  env     print shell exports for the running control plane (eval "$(... env)")
  status  exit 0 when the recorded control plane answers /readyz
  down    stop the recorded control plane and remove its files
state file: ${stateFile()}`;

function readState(): ControlPlaneState | undefined {
  const file = stateFile();
  if (!existsSync(file)) return undefined;
  return JSON.parse(readFileSync(file, 'utf8')) as ControlPlaneState;
}

function exports(state: ControlPlaneState): string {
  return Object.entries(state.env)
    .map(([k, v]) =>
      k === 'PATH' ? `export PATH='${state.binDir}':"$PATH"` : `export ${k}='${v}'`,
    )
    .join('\n');
}

async function up(withNode: boolean): Promise<void> {
  const existing = readState();
  if (existing) {
    if (await isReady(existing)) {
      console.error(`control plane already running (${existing.server}); state ${stateFile()}`);
      console.log(exports(existing));
      return;
    }
    console.error('recorded control plane is not ready; stopping its leftovers');
    await stopFromState(existing);
    await rm(stateFile(), { force: true });
  }
  const start = Date.now();
  const cp = await startControlPlane({ persistent: true, node: withNode });
  await mkdir(dirname(stateFile()), { recursive: true });
  await writeFile(stateFile(), `${JSON.stringify(stateOf(cp), null, 2)}\n`);
  console.error(
    `control plane ${cp.version} up at ${cp.server} in ${((Date.now() - start) / 1000).toFixed(1)}s`,
  );
  console.error(`kubeconfig: ${cp.kubeconfig}`);
  console.error(`logs:       ${cp.dir}/logs`);
  if (cp.node) {
    console.error(`node:       ${cp.node.net.nodeIp} (network namespace ${cp.node.net.netns})`);
    console.error(
      `images:     docker save IMAGE | ctr images import -   (after eval "$(npm run -s k8s:env)")`,
    );
  }
  console.error(`stop with:  npm run k8s:down`);
  console.log(exports(cp));
}

async function down(): Promise<void> {
  const state = readState();
  if (!state) {
    console.error(`no control plane recorded in ${stateFile()}`);
    return;
  }
  await stopFromState(state);
  await rm(stateFile(), { force: true });
  console.error(`control plane at ${state.server} stopped; removed ${state.dir}`);
}

async function main(cmd: string | undefined, flags: readonly string[]): Promise<number> {
  if (flags.includes('--help') || flags.includes('-h')) {
    console.log(USAGE); // npm run k8s:up -- --help: usage, nothing started
    return 0;
  }
  const unknown = flags.filter((f) => !(cmd === 'up' && f === '--node'));
  if (unknown.length) {
    console.error(`unknown argument: ${unknown.join(' ')}\n${USAGE}`);
    return 2;
  }
  switch (cmd) {
    case 'build': {
      const { bins } = await buildTools([...TOOLS, ...NODE_TOOLS]);
      for (const [tool, path] of Object.entries(bins)) console.log(`${tool}=${path}`);
      return 0;
    }
    case 'up':
      await up(flags.includes('--node'));
      return 0;
    case 'down':
      await down();
      return 0;
    case 'env': {
      const state = readState();
      if (!state) {
        console.error(`no control plane recorded in ${stateFile()}; run npm run k8s:up`);
        return 1;
      }
      console.log(exports(state));
      return 0;
    }
    case 'status': {
      const state = readState();
      const ready = state !== undefined && (await isReady(state));
      console.error(ready ? `ready: ${state?.server}` : 'not running');
      return ready ? 0 : 1;
    }
    default:
      console.error(USAGE);
      return cmd === undefined || cmd === 'help' || cmd === '--help' ? 0 : 2;
  }
}

main(process.argv[2], process.argv.slice(3)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    console.error(e instanceof Error ? e.message : e);
    process.exitCode = 1;
  },
);
