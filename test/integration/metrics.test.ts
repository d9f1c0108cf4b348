import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LineClient } from '../helpers/line-client.ts';
import { cleanup, type NodeProcess, startNodeProcess, tempDir } from '../helpers/node-process.ts';

const run = promisify(execFile);
let node: NodeProcess;

beforeAll(async () => {
  // At trace every log call the node has is on: 'never logs values' below can fail.
  node = await startNodeProcess({ args: ['--log-level', 'trace'] });
  const c = await LineClient.connect(node.port);
  c.send(
    'PUT m:1 secret-value-1\nPUT m:2 secret-value-2\nREMOVE m:2\nGET m:1\nBOGUS\nRANGE m: m:~\n',
  );
  await c.lines(6);
  c.close();
  // A connection reset in the middle of a command: the node logs the socket error at debug.
  const reset = await LineClient.connect(node.port);
  reset.send('PUT m:3 secret-value-3');
  await new Promise((r) => setTimeout(r, 50));
  reset.socket.resetAndDestroy();
});
afterAll(cleanup);

async function scrape(): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${node.httpPort}/metrics`);
  expect(res.status).toBe(200);
  return res.text();
}

function sample(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  if (!line) throw new Error(`no sample ${series}`);
  return Number(line.slice(series.length + 1));
}

describe('observability', () => {
  it('serves /healthz and /readyz', async () => {
    expect((await fetch(`http://127.0.0.1:${node.httpPort}/healthz`)).status).toBe(200);
    expect((await fetch(`http://127.0.0.1:${node.httpPort}/readyz`)).status).toBe(200);
    expect((await fetch(`http://127.0.0.1:${node.httpPort}/nope`)).status).toBe(404);
  });

  it('counts commands, errors, keys and connections', async () => {
    const text = await scrape();
    expect(sample(text, 'kvstore_requests_total{command="put"}')).toBe(2);
    expect(sample(text, 'kvstore_requests_total{command="range"}')).toBe(1);
    expect(sample(text, 'kvstore_errors_total{code="UNKNOWN_COMMAND"}')).toBe(1);
    expect(sample(text, 'kvstore_storage_keys')).toBe(1);
    expect(sample(text, 'kvstore_storage_tombstones')).toBe(1);
    expect(sample(text, 'kvstore_storage_size_bytes')).toBeGreaterThan(0);
    expect(sample(text, 'kvstore_request_duration_seconds_count{command="put"}')).toBe(2);
    expect(text).toContain('kvstore_request_duration_seconds_bucket{le="0.0001",command="get"}');
    expect(text).toContain('process_resident_memory_bytes');
    expect(text).toMatch(/^kvstore_connections \d+$/m);
  });

  it('passes promtool check metrics', async () => {
    const file = join(tempDir(), 'metrics.txt');
    writeFileSync(file, await scrape());
    const { stdout, stderr } = await run('bash', ['-c', `promtool check metrics < ${file}`]);
    expect(`${stdout}${stderr}`.trim()).toBe('');
  });

  it('never logs values, even at trace', async () => {
    // The node did log below info while the commands ran (so values had the chance to show).
    await expect
      .poll(() => node.logs.some((l) => (l.level as number) < 30), { timeout: 10_000 })
      .toBe(true);
    const all = JSON.stringify(node.logs);
    expect(all).not.toContain('secret-value');
  });
});
