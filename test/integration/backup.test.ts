// kvctl backup and restore against real clusters: a backup taken while clients write, restored
// into a cluster of another size and RF; damaged backups refused; a restore cut by a node kill.

import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import {
  copyFileSync,
  createReadStream,
  createWriteStream,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type ClusterNode,
  clusterInfo,
  connect,
  restart,
  startStaticCluster,
  waitAllUp,
} from '../helpers/cluster.ts';
import { mountTmpfs, unmountAll } from '../helpers/mount.ts';
import { cleanup, NODE, ROOT, tempDir } from '../helpers/node-process.ts';

const KVCTL = join(ROOT, 'src/cli/main.ts');

afterEach(async () => {
  await cleanup();
  unmountAll();
});

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** kvctl against `node`'s HTTP port; stdout to `stdoutFile` when given, stdin from `stdinFile`. */
function kvctl(
  node: ClusterNode,
  args: string[],
  opts: { stdinFile?: string; stdoutFile?: string; onStderr?: (s: string) => void } = {},
): Promise<Run> {
  const child = spawn(NODE, [KVCTL, '--host', node.host, '--http-port', '9090', ...args], {
    stdio: 'pipe',
  });
  let stdout = '';
  let stderr = '';
  // The child's exit does not wait for the file: resolve once the file has every byte (under
  // load `tar tf` read a backup cut short, though kvctl had written all of it).
  let written: Promise<unknown> = Promise.resolve();
  if (opts.stdoutFile) {
    const file = createWriteStream(opts.stdoutFile);
    written = once(file, 'close');
    child.stdout.pipe(file);
  } else child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
    opts.onStderr?.(stderr);
  });
  if (opts.stdinFile) createReadStream(opts.stdinFile).pipe(child.stdin);
  else child.stdin.end();
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => {
      written.then(() => resolve({ code, stdout, stderr }), reject);
    });
  });
}

/** Sum of one metric over the nodes. */
async function total(nodes: readonly ClusterNode[], series: string): Promise<number> {
  let sum = 0;
  for (const n of nodes) {
    const text = await (await fetch(`http://${n.host}:9090/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith(`${series} `));
    sum += Number(line?.slice(series.length + 1) ?? 0);
  }
  return sum;
}

const KEYS = 300;
const deleted = (i: number) => i % 6 === 0;

const value = (i: number) => `value-${String(i).padStart(3, '0')}-${'x'.repeat(500 + i)}`;

/** Writes k:000..k:299 (values of 500 bytes and up: about 250 KB) and removes every sixth. */
async function fill(node: ClusterNode): Promise<void> {
  const c = await connect(node);
  for (let i = 0; i < KEYS; i++) c.send(`PUT k:${String(i).padStart(3, '0')} ${value(i)}\n`);
  expect(new Set(await c.lines(KEYS, 60_000))).toEqual(new Set(['OK'])); // pipelined
  for (let i = 0; i < KEYS; i += 6)
    expect(await c.call(`REMOVE k:${String(i).padStart(3, '0')}`)).toBe('OK');
  c.close();
}

/** Every k:* reads back with its value from `node`, every removed one NOT_FOUND. */
async function expectAllBack(node: ClusterNode): Promise<void> {
  const c = await connect(node);
  for (let i = 0; i < KEYS; i++) {
    const want = deleted(i) ? 'NOT_FOUND' : value(i);
    expect(await c.call(`GET k:${String(i).padStart(3, '0')}`)).toBe(want);
  }
  c.close();
}

async function stopAll(nodes: readonly ClusterNode[]): Promise<void> {
  await Promise.all(nodes.map((n) => n.proc.stop('SIGKILL')));
}

describe('kvctl backup and restore', () => {
  it('backs up while clients write, restores into another size and RF, versions kept', async () => {
    const a = await startStaticCluster(3);
    await fill(a[0]!);
    // A client keeps writing through the whole backup: nothing pauses it.
    let writing = true;
    let written = 0;
    const writer = (async () => {
      const w = await connect(a[1]!);
      while (writing)
        expect(await w.call(`PUT live:${String(written++).padStart(6, '0')} x`)).toBe('OK');
      w.close();
    })();
    // Some writes before the backup starts.
    await expect.poll(() => written, { timeout: 30_000 }).toBeGreaterThanOrEqual(20);
    const before = written;
    const parent = tempDir();
    const summaryFile = join(parent, 'summary.json');
    const b = await kvctl(a[2]!, [
      'backup',
      join(parent, 'b-{time}'),
      '--summary-file',
      summaryFile,
    ]);
    writing = false;
    await writer;
    // {time} became the start time; --summary-file has the outcome (what a Job's pod reports).
    const summary = JSON.parse(readFileSync(summaryFile, 'utf8'));
    expect(summary.path).toMatch(/\/b-\d{8}T\d{6}Z$/);
    const dir: string = summary.path;
    expect(b.stderr).toMatch(/^backup: \d+ records, [\d.]+ MiB/m); // progress
    expect(b.code, b.stderr).toBe(0);
    expect(b.stdout).toMatch(/^backup: \d+ records \(\d+ keys, 50 tombstones\)/);
    expect(readdirSync(dir).sort()).toEqual(['MANIFEST.json', 'records.kvb']);
    const manifest = JSON.parse(readFileSync(join(dir, 'MANIFEST.json'), 'utf8'));
    expect(manifest).toMatchObject({
      kind: 'kvstore-backup',
      scope: 'cluster',
      tombstones: 50,
      cluster: {
        epoch: (await clusterInfo(a[0]!)).ring.epoch,
        members: ['kvstore-0', 'kvstore-1', 'kvstore-2'],
        replicationFactor: 3,
      },
    });
    expect(manifest.snapshots).toHaveLength(3);
    // Every key once: the 250 live k:*, and the live:* written before it started (or more).
    expect(manifest.liveKeys).toBeGreaterThanOrEqual(250 + before);
    expect(manifest.liveKeys).toBeLessThanOrEqual(250 + written);
    expect(manifest.records).toBe(manifest.liveKeys + 50);
    expect(summary).toEqual({
      ok: true,
      path: dir,
      records: manifest.records,
      keys: manifest.liveKeys,
      tombstones: 50,
      bytes: manifest.files[0].bytes,
      epoch: manifest.cluster.epoch,
    });
    await stopAll(a);

    // Restored into 4 members with RF 2: each record on its 2 owners, versions kept.
    const b2 = await startStaticCluster(4, ['--replication-factor', '2']);
    const r = await kvctl(b2[0]!, ['restore', dir]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`restore: ${manifest.records} records`);
    await expectAllBack(b2[3]!);
    expect(await total(b2, 'kvstore_storage_keys')).toBe(manifest.liveKeys * 2);
    expect(await total(b2, 'kvstore_storage_tombstones')).toBe(100);
    // Last write wins still holds: a new write beats the restored version, a delete stays.
    const c = await connect(b2[1]!);
    expect(await c.call('PUT k:001 newer')).toBe('OK');
    expect(await c.call('GET k:001')).toBe('newer');
    c.close();
    // Into a cluster that holds data: refused, unless --force.
    const again = await kvctl(b2[2]!, ['restore', dir]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/restore: the cluster is not empty \(kvstore-0 holds \d+ keys/);
    expect(again.stderr).toContain('--force');
    const forced = await kvctl(b2[2]!, ['restore', '--force', dir]);
    expect(forced.code, forced.stderr).toBe(0);
    const d = await connect(b2[0]!);
    expect(await d.call('GET k:001')).toBe('newer'); // the restored older version lost
    expect(await d.call('GET k:000')).toBe('NOT_FOUND');
    d.close();
  }, 180_000);

  it('refuses an incomplete or damaged backup and writes nothing', async () => {
    const a = await startStaticCluster(2);
    await fill(a[0]!);
    const good = join(tempDir(), 'good');
    expect((await kvctl(a[0]!, ['backup', good])).code).toBe(0);
    // One member's share: its own records only, a point in time of that member.
    const share = join(tempDir(), 'share');
    expect((await kvctl(a[0]!, ['backup', '--node', 'kvstore-1', share])).code).toBe(0);
    const m = JSON.parse(readFileSync(join(share, 'MANIFEST.json'), 'utf8'));
    expect(m).toMatchObject({ scope: 'node', cluster: { members: ['kvstore-1'] }, tombstones: 50 });
    expect(m.snapshots.map((x: { member: string }) => x.member)).toEqual(['kvstore-1']);
    const held = await (await fetch(`http://${a[1]!.host}:9090/metrics`)).text();
    expect(held).toContain(`kvstore_storage_keys ${m.liveKeys}\n`);
    const none = await kvctl(a[0]!, ['backup', '--node', 'kvstore-9', join(tempDir(), 'x')]);
    expect(none.code).toBe(1);
    expect(none.stderr).toContain('backup: kvstore-9 is not a member');
    await stopAll(a);
    const b = await startStaticCluster(2);
    const variant = (name: string, damage: (dir: string) => void) => {
      const dir = join(tempDir(), name);
      mkdirSync(dir);
      for (const f of readdirSync(good)) copyFileSync(join(good, f), join(dir, f));
      damage(dir);
      return dir;
    };
    const records = (dir: string) => join(dir, 'records.kvb');
    const cases: [string, (dir: string) => void, RegExp][] = [
      [
        'no-manifest',
        (d) => execFileSync('rm', [join(d, 'MANIFEST.json')]),
        /no MANIFEST.json: not a complete backup/,
      ],
      [
        'truncated',
        (d) => truncateSync(records(d), 1000),
        /records.kvb has 1000 bytes, the manifest says/,
      ],
      [
        'flipped',
        (d) => {
          const buf = readFileSync(records(d));
          buf.writeUInt8(buf.readUInt8(buf.length - 10) ^ 0xff, buf.length - 10);
          writeFileSync(records(d), buf);
        },
        /records.kvb: backup: block at byte \d+ fails its checksum/,
      ],
      [
        'bad-manifest',
        (d) => writeFileSync(join(d, 'MANIFEST.json'), '{"kind":"x"}'),
        /MANIFEST.json is not a kvstore backup manifest/,
      ],
    ];
    for (const [name, damage, why] of cases) {
      const r = await kvctl(b[0]!, ['restore', variant(name, damage)]);
      expect(r.code, name).toBe(1);
      expect(r.stderr, name).toMatch(why);
      expect(r.stderr, name).toContain('nothing was restored');
    }
    expect(await total(b, 'kvstore_storage_keys')).toBe(0);
    expect(await total(b, 'kvstore_storage_tombstones')).toBe(0);
  }, 120_000);

  it('a full disk fails the backup and leaves nothing that looks complete', async () => {
    const a = await startStaticCluster(2);
    await fill(a[0]!);
    const small = mountTmpfs(64 * 1024); // the backup is about 200 KiB
    const dir = join(small, 'b');
    const summaryFile = join(tempDir(), 'summary.json');
    const r = await kvctl(a[0]!, ['backup', dir, '--summary-file', summaryFile]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/ENOSPC.*no backup was kept/);
    expect(JSON.parse(readFileSync(summaryFile, 'utf8'))).toEqual({
      ok: false,
      error: expect.stringMatching(/ENOSPC.*no backup was kept$/),
    });
    expect(existsSync(join(dir, 'MANIFEST.json'))).toBe(false);
    expect(existsSync(dir)).toBe(false); // what it made is gone
  }, 120_000);

  it('a tar stream round trip; a restore cut by a killed node is finished by running it again', async () => {
    const a = await startStaticCluster(3);
    await fill(a[0]!);
    const tar = join(tempDir(), 'backup.tar');
    const b = await kvctl(a[0]!, ['backup', '-'], { stdoutFile: tar });
    expect(b.code, b.stderr).toBe(0);
    expect(execFileSync('tar', ['tf', tar], { encoding: 'utf8' }).split('\n')).toEqual([
      'records.kvb',
      'MANIFEST.json',
      '',
    ]);
    await stopAll(a);
    const n = await startStaticCluster(3, ['--replication-factor', '2']);
    // About 250 KB in 64 KiB batches, slowed to about 5 s: after the first progress line (a
    // second in) at least two batches, over a second apart, are still to be written.
    let killed: Promise<unknown> | null = null;
    const cut = await kvctl(n[0]!, ['restore', '--rate-bytes', '50000', '-'], {
      stdinFile: tar,
      onStderr: (s) => {
        if (killed === null && /^restore: \d+ of \d+ records/m.test(s))
          killed = n[2]!.proc.stop('SIGKILL');
      },
    });
    expect(killed).not.toBeNull();
    expect(cut.code).toBe(1);
    expect(cut.stderr).toMatch(/stopped after \d+ of 300 records: run the same command again/);
    await restart(n[2]!, [
      '--peers',
      n.map((m) => `${m.name}=${m.host}:7946`).join(','),
      '--replication-factor',
      '2',
    ]);
    await waitAllUp(n);
    const done = await kvctl(n[0]!, ['restore', '-'], { stdinFile: tar });
    expect(done.code, done.stderr).toBe(0);
    expect(done.stderr).toContain('resuming an interrupted restore');
    await expectAllBack(n[2]!);
  }, 180_000);
});
