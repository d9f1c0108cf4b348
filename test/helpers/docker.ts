// The real Docker engine for tests: the image built by scripts/image.sh under a tag of the test's own, and removal of everything a test made.

import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ROOT } from './node-process.ts';

const run = promisify(execFile);

export const VERSION = (
  JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }
).version;
/** The tag `npm run image` gives the image (README, CRD default, operator samples). */
export const IMAGE = `kvstore:${VERSION}`;

/** A name unique to this test run: `kvt-<hex>`, for containers, volumes and compose projects. */
export function uniqueName(): string {
  return `kvt-${randomBytes(4).toString('hex')}`;
}

export interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `docker args` to completion; resolves with its exit code and output (never rejects on a non-zero exit). */
export async function dockerResult(
  args: readonly string[],
  opts: { env?: NodeJS.ProcessEnv; cwd?: string; timeout?: number; input?: string } = {},
): Promise<Result> {
  return new Promise((res) => {
    const child = execFile(
      'docker',
      args,
      {
        cwd: opts.cwd ?? ROOT,
        env: opts.env ?? process.env,
        timeout: opts.timeout ?? 300_000,
        maxBuffer: 64 * 1024 * 1024,
      },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
        res({ code, stdout, stderr });
      },
    );
    if (opts.input !== undefined) child.stdin!.end(opts.input);
  });
}

/** Runs `docker args`; resolves with stdout, rejects with the command and its output on a non-zero exit. */
export async function docker(
  args: readonly string[],
  opts: { env?: NodeJS.ProcessEnv; cwd?: string; timeout?: number; input?: string } = {},
): Promise<string> {
  const r = await dockerResult(args, opts);
  if (r.code !== 0)
    throw new Error(`docker ${args.join(' ')} exited ${r.code}:\n${r.stderr}${r.stdout}`);
  return r.stdout;
}

/** Fails clearly when no engine answers (the tests never skip). */
export async function requireEngine(): Promise<void> {
  const r = await dockerResult(['info', '--format', '{{.ServerVersion}}'], { timeout: 30_000 });
  if (r.code !== 0 || r.stdout.trim() === '') {
    throw new Error(
      `these tests need a Docker engine, and none answers (docker info: ${r.stderr.trim()}).\n` +
        'Start one as root: scripts/docker-engine.sh start (.ci/run does it).',
    );
  }
}

/**
 * Builds the image with scripts/image.sh (what `npm run image` runs) under `ref` and returns the
 * build's log. Rejects with the log on failure.
 */
export async function buildImage(
  ref: string,
  env: NodeJS.ProcessEnv = {},
): Promise<{ code: number; log: string }> {
  return new Promise((res) => {
    execFile(
      'bash',
      [join(ROOT, 'scripts/image.sh'), ref],
      { cwd: ROOT, env: { ...process.env, ...env }, timeout: 1_200_000, maxBuffer: 64 << 20 },
      (err, stdout, stderr) => {
        res({
          code: err ? (typeof err.code === 'number' ? err.code : -1) : 0,
          log: stderr + stdout,
        });
      },
    );
  });
}

/** Everything a test made in the engine, removed by `remove()` in reverse order, also after a failure. */
export class Made {
  readonly #undo: (() => Promise<unknown>)[] = [];

  container(name: string): string {
    this.#undo.push(() => dockerResult(['rm', '--force', '--volumes', name]));
    return name;
  }

  volume(name: string): string {
    this.#undo.push(() => dockerResult(['volume', 'rm', '--force', name]));
    return name;
  }

  image(ref: string): string {
    this.#undo.push(() => dockerResult(['image', 'rm', '--force', ref]));
    return ref;
  }

  /** Any other undo step (a compose project's `down --volumes`). */
  add(step: () => Promise<unknown>): void {
    this.#undo.push(step);
  }

  async remove(): Promise<void> {
    while (this.#undo.length > 0) await this.#undo.pop()!();
  }
}

/**
 * The seed README's test plan sent with `nc` (netcat-openbsd, one connection per command, as the
 * seed shows it) to 127.0.0.1 on `ports` (one node may serve all three). Returns each command
 * with its reply, for one `toEqual` against SEED_PLAN_REPLIES.
 */
export async function seedPlanWithNc(ports: readonly [number, number, number]): Promise<string[]> {
  const [a, b, c] = ports;
  const steps: [string, number][] = [
    ['PUT session:user1 {token:xyz123}', a],
    ['PUT session:user2 {token:abc456}', b],
    ['PUT session:user3 {token:def789}', c],
    ['GET session:user1', b],
    ['RANGE session:user1 session:user3', b],
    ['PREFIX session:user', c],
    ['REMOVE session:user2', a],
    ['GET session:user2', b],
    ['GET session:user2', c],
  ];
  const out: string[] = [];
  for (const [line, port] of steps) {
    const { stdout } = await run('sh', ['-c', `echo "${line}" | nc -N -w 10 127.0.0.1 ${port}`]);
    out.push(`${line} -> ${stdout.trim()}`);
  }
  return out;
}

export const SEED_PLAN_REPLIES = [
  'PUT session:user1 {token:xyz123} -> OK',
  'PUT session:user2 {token:abc456} -> OK',
  'PUT session:user3 {token:def789} -> OK',
  'GET session:user1 -> {token:xyz123}',
  'RANGE session:user1 session:user3 -> session:user1 session:user2 session:user3',
  'PREFIX session:user -> session:user1 session:user2 session:user3',
  'REMOVE session:user2 -> OK',
  'GET session:user2 -> NOT_FOUND',
  'GET session:user2 -> NOT_FOUND',
];

/** One metric's value from a Prometheus text page (the unlabelled series, or the sum of its series). */
export function metric(page: string, name: string): number {
  let sum = 0;
  let seen = false;
  for (const line of page.split('\n')) {
    const m = /^(\w+)(\{[^}]*\})? (\S+)$/.exec(line);
    if (m && m[1] === name) {
      sum += Number(m[3]);
      seen = true;
    }
  }
  if (!seen) throw new Error(`metric ${name} not on the page`);
  return sum;
}

/** The host port `docker port` reports for a container's `port/tcp` published on 127.0.0.1. */
export async function publishedPort(container: string, port: number): Promise<number> {
  const out = await docker(['port', container, `${port}/tcp`]);
  const m = /127\.0\.0\.1:(\d+)/.exec(out);
  if (!m) throw new Error(`${container}: ${port}/tcp is not published on 127.0.0.1: ${out}`);
  return Number(m[1]);
}
