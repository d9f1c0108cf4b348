// npm test's two vitest runs side by side: test:local (two workers) and test:k8s (one file at a time), each line labelled; exits 1 when either failed.
//
// A failed run's failure summary (vitest's "Failed Tests" and "Unhandled Errors" sections, or its
// last lines when it has none) is printed again after both have ended: the two runs' lines
// interleave, and a CI log that keeps only its tail would otherwise show the run that passed.
//
// The Kubernetes files spend most of their time waiting on a control plane (pods scheduled and
// made Ready, objects reconciled, a rollout): run after the local suites they added their whole
// length to npm test; beside them they cost the local suites a little CPU. Run either alone with
// `npm run test:local` or `npm run test:k8s`. Arguments go to both vitest runs (`--no-cache`
// orders the files as a fresh clone does: test/sequencer.ts).

import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { FailureLines } from './failure-lines.ts';

const SUITES = ['test:local', 'test:k8s'] as const;

interface Outcome {
  readonly suite: string;
  readonly code: number;
  readonly seconds: number;
  /** The lines to print again when the run failed. */
  readonly summary: readonly string[];
}

/** Runs `npm run <suite>`, every line of its output labelled; resolves when it exits. */
function runSuite(suite: string): { child: ReturnType<typeof spawn>; done: Promise<Outcome> } {
  const started = performance.now();
  // Colours as in a terminal when this runs in one (the child's output is a pipe).
  const env = process.stdout.isTTY ? { ...process.env, FORCE_COLOR: '1' } : process.env;
  const args = process.argv.slice(2);
  const child = spawn('npm', ['run', '--silent', suite, ...(args.length ? ['--', ...args] : [])], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env,
  });
  const label = `${suite.replace('test:', '').padEnd(5)}| `;
  const failure = new FailureLines();
  createInterface({ input: child.stdout! }).on('line', (l) => {
    failure.add(l);
    process.stdout.write(`${label}${l}\n`);
  });
  createInterface({ input: child.stderr! }).on('line', (l) => {
    failure.add(l);
    process.stderr.write(`${label}${l}\n`);
  });
  const done = new Promise<Outcome>((resolve) => {
    child.once('exit', (code, signal) => {
      const seconds = Math.round((performance.now() - started) / 1000);
      resolve({ suite, code: code ?? (signal ? 128 : 1), seconds, summary: failure.lines() });
    });
  });
  return { child, done };
}

const runs = SUITES.map(runSuite);
// Ctrl-C in a terminal reaches both runs already (one process group): wait for them to stop.
process.on('SIGINT', () => {});
process.on('SIGTERM', () => {
  for (const r of runs) r.child.kill('SIGTERM');
});
const outcomes = await Promise.all(runs.map((r) => r.done));
for (const o of outcomes) {
  if (o.code === 0) continue;
  process.stdout.write(`\n${o.suite} failed; what it said of its failures, again:\n`);
  for (const l of o.summary)
    process.stdout.write(`${o.suite.replace('test:', '').padEnd(5)}| ${l}\n`);
}
for (const o of outcomes) {
  process.stdout.write(
    `${o.suite}: ${o.code === 0 ? 'passed' : `failed (exit ${o.code})`} in ${o.seconds} s\n`,
  );
}
process.exit(outcomes.every((o) => o.code === 0) ? 0 : 1);
