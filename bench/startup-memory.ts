// An empty node's memory, side by side: started from the TypeScript sources (Node's type stripping),
// from the build that the image runs (scripts/build.ts: tsc's modules with the node bundled and
// its code cache) and from tsc's modules alone (`--no-bundle`), alternating in one run, with a bare
// Node net server beside them: the floor of any Node 24 process that serves TCP.

import { execFileSync, spawn } from 'node:child_process';
import { readFileSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import {
  IMAGE_MALLOC_ENV,
  NODE,
  processRss,
  ROOT,
  type Rss,
  SINGLE_NODE_ARGS,
  startKvstore,
  stopServer,
  tempDir,
  track,
} from './procs.ts';
import { markdownTable, mib, ratio } from './table.ts';

/** One empty node, a few seconds after `node listening`. */
export interface EmptyNode {
  readonly rss: Rss;
  /** Pages of the node binary itself (file-backed, shared with every node process). */
  readonly binary: number;
  readonly listeningMs: number;
}

export interface EmptyNodeMemory {
  /** `node src/main.ts`, one entry per round. */
  readonly ts: readonly EmptyNode[];
  /** `node <build>/src/main.js` (the image), one entry per round, each right after the .ts one. */
  readonly js: readonly EmptyNode[];
  /** `node <build --no-bundle>/src/main.js`, one entry per round, right after the image's. */
  readonly unbundled: readonly EmptyNode[];
  /** A bare `node -e` TCP server (BARE_SERVER), one entry per round, right after the compiled one. */
  readonly bare: readonly EmptyNode[];
  readonly settleMs: number;
}

/**
 * Compiles the sources into a temp dir under `root` (scripts/build.ts, as the image does; with
 * `bundle` false, tsc's modules alone) and returns its main.js. The dir gets a node_modules link to
 * the repository's, so the compiled modules resolve the same packages.
 */
export function buildCompiled(root: string, bundle = true): string {
  const out = tempDir(root, 'kvstore-build-');
  const args = [
    join(ROOT, 'scripts/build.ts'),
    '--out-dir',
    out,
    ...(bundle ? [] : ['--no-bundle']),
  ];
  execFileSync(NODE, args, { stdio: 'pipe' });
  symlinkSync(join(ROOT, 'node_modules'), join(out, 'node_modules'), 'dir');
  return join(out, 'src/main.js');
}

/** RSS of the mappings of the node binary, from /proc/<pid>/smaps (0 when unknown). */
function binaryRss(pid: number | undefined): number {
  let smaps = '';
  try {
    smaps = pid === undefined ? '' : readFileSync(`/proc/${pid}/smaps`, 'latin1');
  } catch {}
  let ofNode = false;
  let kb = 0;
  for (const line of smaps.split('\n')) {
    if (/^[0-9a-f]+-[0-9a-f]+ /.test(line)) ofNode = /\/node$/.test(line);
    else if (ofNode && line.startsWith('Rss:')) kb += Number(line.split(/\s+/)[1]);
  }
  return kb * 1024;
}

async function emptyNode(root: string, script: string, settleMs: number): Promise<EmptyNode> {
  const server = await startKvstore(root, { name: 'bench-empty', args: SINGLE_NODE_ARGS, script });
  try {
    await new Promise((r) => setTimeout(r, settleMs));
    const pid = server.child.pid;
    return { rss: processRss(pid), binary: binaryRss(pid), listeningMs: server.readyMs };
  } finally {
    await stopServer(server);
  }
}

/** The floor: a Node process that listens on a loopback TCP port and echoes, nothing else. */
export const BARE_SERVER =
  "require('node:net').createServer((s) => s.pipe(s)).listen(0, '127.0.0.1', () => console.log('listening'))";

/** A bare Node net server (BARE_SERVER) with the same Node binary, measured like an empty node. */
async function bareNode(settleMs: number): Promise<EmptyNode> {
  const spawnedAt = performance.now();
  // The nodes' glibc settings too: the floor of what ships.
  const env = { ...process.env, ...IMAGE_MALLOC_ENV };
  const child = spawn(NODE, ['-e', BARE_SERVER], { stdio: ['ignore', 'pipe', 'pipe'], env });
  const exited = track(child);
  try {
    await new Promise<void>((res, rej) => {
      child.stdout!.once('data', () => res());
      exited.then((why) => rej(new Error(`bench: bare node server ${why}`)));
    });
    const listeningMs = performance.now() - spawnedAt;
    await new Promise((r) => setTimeout(r, settleMs));
    const pid = child.pid;
    return { rss: processRss(pid), binary: binaryRss(pid), listeningMs };
  } finally {
    child.kill('SIGTERM');
    await exited;
  }
}

/**
 * `rounds` rounds of fresh empty nodes (.ts, the image's build, tsc's modules alone, then the bare
 * server), each measured `settleMs` after start; every other round runs the two builds in the
 * opposite order.
 */
export async function emptyNodeMemory(
  root: string,
  compiledMain: string,
  unbundledMain: string,
  rounds = 3,
  settleMs = 3000,
): Promise<EmptyNodeMemory> {
  const ts: EmptyNode[] = [];
  const js: EmptyNode[] = [];
  const unbundled: EmptyNode[] = [];
  const bare: EmptyNode[] = [];
  for (let i = 0; i < rounds; i++) {
    ts.push(await emptyNode(root, join(ROOT, 'src/main.ts'), settleMs));
    const builds = [
      { script: compiledMain, into: js },
      { script: unbundledMain, into: unbundled },
    ];
    for (const b of i % 2 === 0 ? builds : builds.reverse()) {
      b.into.push(await emptyNode(root, b.script, settleMs));
    }
    bare.push(await bareNode(settleMs));
  }
  return { ts, js, unbundled, bare, settleMs };
}

const median = (xs: readonly number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** The medians of each field over the rounds. */
export function medianNode(nodes: readonly EmptyNode[]): EmptyNode {
  const f = (g: (n: EmptyNode) => number) => median(nodes.map(g));
  return {
    rss: {
      rss: f((n) => n.rss.rss),
      anon: f((n) => n.rss.anon),
      file: f((n) => n.rss.file),
      peak: f((n) => n.rss.peak),
    },
    binary: f((n) => n.binary),
    listeningMs: f((n) => n.listeningMs),
  };
}

/** The side-by-side table: medians of the rounds, compiled as a ratio of the .ts node, and the floor. */
export function emptyNodeLines(m: EmptyNodeMemory): string[] {
  const ts = medianNode(m.ts);
  const js = medianNode(m.js);
  const unbundled = medianNode(m.unbundled);
  const bare = medianNode(m.bare);
  const head = ['empty node (RF=1)', 'RSS', 'anon', 'file-backed', 'of it node binary', 'start ms'];
  const row = (label: string, n: EmptyNode) => [
    label,
    mib(n.rss.rss),
    mib(n.rss.anon),
    mib(n.rss.file),
    mib(n.binary),
    n.listeningMs.toFixed(0),
  ];
  const ratios = (label: string, a: EmptyNode, b: EmptyNode) => [
    label,
    ratio(a.rss.rss, b.rss.rss),
    ratio(a.rss.anon, b.rss.anon),
    ratio(a.rss.file, b.rss.file),
    ratio(a.binary, b.binary),
    ratio(a.listeningMs, b.listeningMs),
  ];
  return [
    `Empty node, ${m.ts.length} alternating rounds, medians, measured ${m.settleMs / 1000} s after \`node listening\` (the bare server: after \`listening\`):`,
    '',
    markdownTable([
      head,
      row('`node src/main.ts` (type stripping)', ts),
      row('`node dist/src/main.js` (compiled: the image)', js),
      ratios('compiled / .ts', js, ts),
      row('tsc modules, not bundled (`build --no-bundle`)', unbundled),
      ratios('compiled / not bundled', js, unbundled),
      row('bare Node net server (`node -e`, the floor)', bare),
    ]),
    '',
    `Above the floor, the compiled node has ${mib(js.rss.rss - bare.rss.rss)} more RSS: anon ${mib(js.rss.anon - bare.rss.anon)}, file-backed ${mib(js.rss.file - bare.rss.file)}`,
    `(of it node binary pages ${mib(js.binary - bare.binary)}: code that the node runs and the bare server does not, V8's optimizing compilers among it).`,
  ];
}
