// Runs a build script of a Go-built test tool (cached outside the clone by version): its progress lines reach the terminal as they come.

import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { ROOT } from './node-process.ts';

/**
 * Runs `bash <script>` (a path from the repository root) with its stderr on this process's
 * stderr, so a cold build prints `building <tool> <version> (first run only, ~N min)` instead of
 * a silent wait; resolves with its stdout (the binary's path), rejects on a failure or after
 * `timeoutMs` (the script is then killed).
 */
export function runBuildScript(script: string, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', [join(ROOT, script)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(stdout);
      else reject(new Error(`${script} failed (${code ?? signal}); its output is above`));
    });
  });
}
