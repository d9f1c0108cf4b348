// RSS timeline of one empty compiled node from spawn, every 100 ms for 8 s.
import { spawn } from 'node:child_process';
import { readFileSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { NODE, NODE_FLAGS, IMAGE_MALLOC_ENV, SINGLE_NODE_ARGS } from '../../procs.ts';
const main = process.env.H11_MAIN!;
const n = Number(process.argv[2] ?? 4);
const tag = process.argv[3] ?? 't';
const extra = (process.argv[4] ?? '').split(' ').filter(Boolean);
for (let i = 0; i < n; i++) {
  const dir = mkdtempSync('/tmp/h11-d-');
  const t0 = performance.now();
  const child = spawn(NODE, [...NODE_FLAGS, ...extra, main, '--node-name', 'e', '--host', '127.0.0.1', '--port', '0', '--http-port', '0', '--peer-port', '0', '--data-dir', dir, '--log-level', 'info', ...SINGLE_NODE_ARGS], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...IMAGE_MALLOC_ENV } });
  let listenAt = -1;
  child.stdout!.on('data', (d) => { if (listenAt < 0 && String(d).includes('node listening')) listenAt = performance.now() - t0; });
  const line: string[] = [];
  for (let k = 0; k < 80; k++) {
    await new Promise((r) => setTimeout(r, 100));
    try {
      const st = readFileSync(`/proc/${child.pid}/status`, 'utf8');
      const rss = Number(/VmRSS:\s+(\d+)/.exec(st)![1]);
      const thr = Number(/Threads:\s+(\d+)/.exec(st)![1]);
      if (k % 5 === 4) line.push(`${((performance.now() - t0) / 1000).toFixed(1)}s:${(rss / 1024).toFixed(1)}/${thr}`);
      if (k === 29) writeFileSync(`/tmp/h11-${tag}-${i}-3s.smaps`, readFileSync(`/proc/${child.pid}/smaps`, 'utf8'));
    } catch {}
  }
  const thr = readdirSync(`/proc/${child.pid}/task`).map((t) => readFileSync(`/proc/${child.pid}/task/${t}/comm`, 'utf8').trim());
  writeFileSync(`/tmp/h11-${tag}-${i}-8s.smaps`, readFileSync(`/proc/${child.pid}/smaps`, 'utf8'));
  console.log(i, 'listen', Math.round(listenAt), line.join(' '), thr.join(','));
  child.kill('SIGTERM');
  await new Promise((r) => child.once('exit', r));
}
