// The web console in a real browser (Debian's chromium, headless, driven by playwright-core)
// against real kvstore processes.

import { existsSync, statfsSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Ring } from '../../src/ring/index.ts';
import {
  type ClusterNode,
  connect,
  loopbackBlock,
  metric,
  peersOf,
  restart,
  startMember,
  startStaticCluster,
  waitAllUp,
} from '../helpers/cluster.ts';
import { defer } from '../helpers/defer.ts';
import { mountTmpfs, unmountAll } from '../helpers/mount.ts';
import { cleanup, tempDir } from '../helpers/node-process.ts';

const CHROMIUM = '/usr/bin/chromium';
let browser: Browser;

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} missing: apt-get install chromium`);
  // --no-sandbox: the tests run as root, where chromium's sandbox refuses to start.
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
}, 60_000);
afterAll(async () => {
  await browser?.close();
});
afterEach(async () => {
  await cleanup();
  unmountAll();
});

const base = (n: ClusterNode) => `http://${n.host}:${n.proc.httpPort}`;

interface Member {
  name: string;
  state: string;
  address: string;
  share: number;
}

async function adminCluster(n: ClusterNode): Promise<{ members: Member[] }> {
  return (await (await fetch(`${base(n)}/admin/cluster`)).json()) as { members: Member[] };
}

/** A page that records every console error and uncaught exception it meets. */
async function open(url: string): Promise<{ page: Page; errors: string[] }> {
  const page = await browser.newPage();
  const errors: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(url);
  await page.waitForSelector('body[data-loaded]');
  return { page, errors };
}

/** The members table as the page shows it. */
function rows(page: Page) {
  return page.$$eval('#members tbody tr', (trs) =>
    trs.map((tr) => ({
      name: tr.getAttribute('data-name'),
      state: tr.querySelector('.state')?.textContent,
      stateClass: tr.querySelector('.state')?.getAttribute('class'),
      address: tr.querySelector('.address')?.textContent,
      share: tr.querySelector('.share')?.textContent,
    })),
  );
}

async function startCluster(n: number, args: string[], dirs: string[] = []) {
  const nodes = await startStaticCluster(n, args, dirs);
  return { nodes, peers: peersOf(nodes) };
}

describe('web console (headless chromium)', () => {
  it('shows a 3-node cluster as /admin/cluster does, escapes what it shows, and sees a killed node down', async () => {
    // A data directory whose name is markup: the page shows it in the node facts.
    const hostileDir = join(tempDir(), '<img src=x onerror=window.__pwned=1>');
    const { nodes, peers } = await startCluster(3, ['--replication-factor', '2'], [hostileDir]);
    const [n0, , n2] = nodes as [ClusterNode, ClusterNode, ClusterNode];
    const c = await connect(n0);
    for (let i = 0; i < 50; i++) expect(await c.call(`PUT user:${i} v${i}`)).toBe('OK');
    expect(await c.call('GET user:7')).toBe('v7');
    c.close();

    const { page, errors } = await open(`${base(n0)}/`);
    // The members table matches the node's admin view.
    const want = (await adminCluster(n0)).members.map((m) => ({
      name: m.name,
      state: m.state,
      address: m.address,
      share: `${(m.share * 100).toFixed(1)}%`,
    }));
    expect((await rows(page)).map(({ stateClass: _, ...r }) => r)).toEqual(want);
    expect(want.map((m) => m.state)).toEqual(['up', 'up', 'up']);
    // Traffic and facts are drawn: the writes above show in the rate chart's legend.
    await expect
      .poll(() => page.$$eval('#legend-rate li', (li) => li.map((l) => l.textContent)), {
        timeout: 15_000,
      })
      .toContain('put');
    const facts = await page.$eval('#facts', (t) => t.textContent);
    expect(facts).toContain(hostileDir);
    expect(await page.$eval('#config', (t) => t.textContent)).toContain('clusterSecret(not set)');

    // A key holding markup: shown as text, with its replicas from /admin/owners.
    const key = '<script>window.__pwned=2</script>';
    await page.fill('#owners-key', key);
    await page.click('#owners-form button');
    await page.waitForSelector('.owners');
    expect(await page.$eval('.owners-key', (e) => e.textContent)).toBe(key);
    const owners = (await (
      await fetch(`${base(n0)}/admin/owners?key=${encodeURIComponent(key)}`)
    ).json()) as { settled: string[] };
    expect(owners.settled).toHaveLength(2);
    expect(await page.$eval('.owners', (e) => e.textContent)).toContain(owners.settled.join(', '));
    expect(await page.evaluate(() => (globalThis as { __pwned?: number }).__pwned)).toBeUndefined();
    expect(await page.$$eval('script', (s) => s.length)).toBe(1);
    expect(await page.$$eval('img', (s) => s.length)).toBe(0);

    // A key that is not UTF-8 (written over RESP): ?key= is its exact bytes, and the page takes
    // it in hex. Before, %ff%fe was read as UTF-8, U+FFFD twice: another key, other replicas.
    const ring = new Ring(['kvstore-0', 'kvstore-1', 'kvstore-2']);
    const binary = Buffer.from([0xff, 0xfe, 0x00, 0x6b]);
    const lossy = Buffer.from(binary.toString('utf8'));
    expect(ring.owners(binary, 2)).not.toEqual(ring.owners(lossy, 2)); // so the test tells them apart
    const byBytes = await (await fetch(`${base(n0)}/admin/owners?key=%ff%FE%00k`)).json();
    expect(byBytes).toEqual({
      key: lossy.toString(),
      keyHex: 'fffe006b',
      settled: ring.owners(binary, 2),
      target: ring.owners(binary, 2),
    });
    await page.fill('#owners-key', 'ff fe 00 6b');
    await page.check('#owners-hex');
    await page.click('#owners-form button');
    await expect.poll(() => page.$eval('.owners-key', (e) => e.textContent)).toBe('hex fffe006b');
    expect(await page.$eval('.owners', (e) => e.textContent)).toContain(
      `settled: ${ring.owners(binary, 2).join(', ')};`,
    );
    await page.fill('#owners-key', 'fz');
    await page.click('#owners-form button');
    await page.waitForSelector('#owners .error');
    await page.uncheck('#owners-hex');

    const shot = await page.screenshot({ fullPage: true, path: join(tempDir(), 'console.png') });
    expect(shot.subarray(1, 4).toString()).toBe('PNG');
    expect(shot.length).toBeGreaterThan(10_000);

    // A killed node turns down on the page once the failure detector calls it down.
    await n2.proc.stop('SIGKILL');
    await expect
      .poll(async () => (await rows(page)).find((r) => r.name === 'kvstore-2')?.state, {
        timeout: 15_000,
      })
      .toBe('down');
    expect((await adminCluster(n0)).members.find((m) => m.name === 'kvstore-2')?.state).toBe(
      'down',
    );

    // The console of a node that goes down keeps its last view and says the node does not answer.
    await restart(n2, ['--peers', peers, '--replication-factor', '2']);
    await waitAllUp(nodes);
    const other = await open(`${base(n2)}/`);
    await n2.proc.stop('SIGKILL');
    await other.page.waitForSelector('#banner:not([hidden])', { timeout: 15_000 });
    expect(await other.page.$eval('#banner', (b) => b.textContent)).toMatch(
      /^kvstore-2 does not answer since .*showing its last view/,
    );
    expect((await rows(other.page)).map((r) => r.name)).toEqual([
      'kvstore-0',
      'kvstore-1',
      'kvstore-2',
    ]);
    await other.page.close();
    expect(errors).toEqual([]);
    await page.close();
  }, 120_000);

  it('shows a decommission as a progress bar that reaches 100%', async () => {
    const { nodes } = await startCluster(3, [
      '--replication-factor',
      '2',
      '--rebalance-rate-bytes',
      '20000',
    ]);
    const [n0, n1, n2] = nodes as [ClusterNode, ClusterNode, ClusterNode];
    const c = await connect(n0);
    for (let from = 0; from < 1000; from += 100) {
      const puts = Array.from({ length: 100 }, (_, j) => `PUT k:${from + j} value-${from + j}`);
      c.send(`${puts.join('\n')}\n`);
      expect(new Set(await c.lines(100))).toEqual(new Set(['OK']));
    }
    c.close();
    const { page, errors } = await open(`${base(n0)}/`);
    // kvstore-2, one of the two members taking the data, is paused: the hand-off cannot finish
    // until it runs again, so the page must show the bar short of 100% first.
    const paused = n2.proc.child.pid!;
    process.kill(paused, 'SIGSTOP');
    const res = await fetch(`${base(n1)}/admin/decommission`, { method: 'POST' });
    expect(res.status).toBe(202);
    const bar = '.transfer[data-member="kvstore-1"][data-kind="decommission"] [role=progressbar]';
    const value = () => page.$eval(bar, (b) => Number(b.getAttribute('aria-valuenow')));
    await page.waitForSelector(bar, { timeout: 30_000 });
    const before = await value();
    expect(before).toBeLessThan(100);
    expect(
      await page.$eval('.transfer[data-member="kvstore-1"] .figures', (e) => e.textContent),
    ).toMatch(/^\d+\/\d+ records \([\d.]+%\), .* sent, .*ETA/);
    process.kill(paused, 'SIGCONT');
    const seen = [before];
    await expect
      .poll(
        async () => {
          const v = await value();
          if (seen.at(-1) !== v) seen.push(v);
          return v;
        },
        { timeout: 60_000, interval: 200 },
      )
      .toBe(100);
    // The bar never went back.
    expect([...seen].sort((a, b) => a - b)).toEqual(seen);
    const figures = await page.$eval(
      '.transfer[data-member="kvstore-1"] .figures',
      (e) => e.textContent ?? '',
    );
    const m = /^(\d+)\/(\d+) records \(100%\), .* sent, done$/.exec(figures);
    expect(m?.[1]).toBe(m?.[2]);
    await expect
      .poll(async () => (await rows(page)).find((r) => r.name === 'kvstore-1')?.share, {
        timeout: 15_000,
      })
      .toBe('0.0%');
    expect(errors).toEqual([]);
    await page.close();
  }, 120_000);

  it('says which members list other members than the node (memberListsDiffer), and clears it once fixed', async () => {
    // The bound of MembershipCheck: 2 x (300 ms + 5 probes of 200 ms + 500 ms) = 3.6 s.
    const fast = ['--resolve-interval-ms', '300', '--peer-timeout-ms', '500'];
    const { nodes, peers } = await startCluster(3, fast);
    const [n0, , odd] = nodes as [ClusterNode, ClusterNode, ClusterNode];
    const { page, errors } = await open(`${base(n0)}/`);
    expect(
      await page.$eval('#member-lists', (p) => (p as unknown as { hidden: boolean }).hidden),
    ).toBe(true);
    await odd.proc.stop();
    await restart(odd, ['--peers', peersOf([n0, odd]), ...fast]);
    // Before, nothing on the page said so: only the logs, a metric and /admin/cluster.
    const shown = () =>
      page.$eval('#member-lists', (p) =>
        (p as unknown as { hidden: boolean }).hidden ? null : p.textContent,
      );
    await expect
      .poll(shown, { timeout: 30_000, interval: 500 })
      .toMatch(
        /^Member lists differ: kvstore-2 lists kvstore-0,kvstore-2; this node lists kvstore-0,kvstore-1,kvstore-2\. .*give every member the same --peers/,
      );
    await odd.proc.stop();
    await restart(odd, ['--peers', peers, ...fast]);
    await expect.poll(shown, { timeout: 30_000, interval: 500 }).toBeNull();
    expect(errors).toEqual([]);
    await page.close();
  }, 120_000);

  it('shows what members refuse: a full disk on its row in every view and on its own page, a clock refusal on the node that refuses', async () => {
    // kvstore-0 on a 48 MiB tmpfs of its own; writes refused below 8 MiB free.
    const args = ['--min-free-disk-bytes', String(8 << 20), '--wal-segment-bytes', String(1 << 20)];
    const fs = mountTmpfs(48 << 20);
    const { nodes, peers } = await startCluster(3, args, [join(fs, 'data'), tempDir(), tempDir()]);
    const [n0, n1, n2] = nodes as [ClusterNode, ClusterNode, ClusterNode];
    const seen = await open(`${base(n1)}/`);
    const own = await open(`${base(n0)}/`);
    const refusing = (page: Page) =>
      page.$eval('#refusing', (p) =>
        (p as unknown as { hidden: boolean }).hidden ? null : p.textContent,
      );
    const rowOf = async (page: Page, name: string) =>
      (await rows(page)).find((r) => r.name === name);
    expect(await rowOf(seen.page, 'kvstore-0')).toMatchObject({ state: 'up' });
    expect(await refusing(own.page)).toBeNull();

    // Something fills kvstore-0's disk (4 MiB left): it refuses writes, serves reads. Before, both
    // pages showed it 'up' and said nothing.
    const s = statfsSync(fs);
    const filler = join(fs, 'filler');
    writeFileSync(filler, Buffer.alloc(s.bavail * s.bsize - (4 << 20)));
    await expect
      .poll(() => rowOf(seen.page, 'kvstore-0'), { timeout: 30_000, interval: 200 })
      .toMatchObject({ state: 'up, storage not writable', stateClass: 'state state-refusing' });
    expect(await seen.page.$eval('#summary', (p) => p.textContent)).toMatch(
      /^3\/3 members up \(1 refusing\) · /,
    );
    await expect
      .poll(() => refusing(own.page), { timeout: 15_000 })
      .toMatch(
        /^This node's storage refuses writes: disk full \(.*\); it serves reads and coordinates writes/,
      );
    expect(await rowOf(own.page, 'kvstore-0')).toMatchObject({ state: 'up, storage not writable' });

    // Room again: both say nothing more of it.
    unlinkSync(filler);
    await expect
      .poll(() => rowOf(seen.page, 'kvstore-0'), { timeout: 30_000, interval: 200 })
      .toMatchObject({ state: 'up', stateClass: 'state state-up' });
    await expect.poll(() => refusing(own.page), { timeout: 15_000 }).toBeNull();

    // kvstore-2 restarts while the others do not answer (paused): it refuses writes for its
    // clock until one compares clocks with it, and its page says so, row and line.
    await n2.proc.stop('SIGKILL');
    for (const n of [n0, n1]) n.proc.child.kill('SIGSTOP');
    defer(() => {
      for (const n of [n0, n1]) n.proc.child.kill('SIGCONT');
    });
    await restart(n2, ['--peers', peers, ...args, '--probe-failures', '1000']);
    const clock = await open(`${base(n2)}/`);
    expect(await refusing(clock.page)).toMatch(
      /^This node refuses writes: clock: no peer has answered .*; it is not ready \(\/readyz 503\)/,
    );
    expect(await rowOf(clock.page, 'kvstore-2')).toMatchObject({
      state: 'up, refusing writes (clock)',
      stateClass: 'state state-refusing',
    });
    for (const n of [n0, n1]) n.proc.child.kill('SIGCONT');
    await expect.poll(() => refusing(clock.page), { timeout: 30_000 }).toBeNull();
    for (const p of [seen, own, clock]) {
      expect(p.errors).toEqual([]);
      await p.page.close();
    }
  }, 120_000);

  it('asks for the cluster secret, and no page elsewhere can drive an admin action', async () => {
    // Its nonces live 3 s instead of 5 minutes: the page renews them as it polls.
    const n = await startMember(
      'kvstore-0',
      `${loopbackBlock()}.1`,
      ['--cluster-secret', 'correct horse'],
      tempDir(),
      ['env', 'KV_TEST_ADMIN_NONCE_TTL_MS=3000'],
    );
    expect((await fetch(`${base(n)}/admin/console`)).status).toBe(401);
    const page = await browser.newPage();
    await page.goto(`${base(n)}/`);
    await page.waitForSelector('#login:not([hidden])');
    expect(await page.$eval('#main', (m) => (m as unknown as { hidden: boolean }).hidden)).toBe(
      true,
    );
    await page.fill('#secret', 'wrong');
    await page.click('#login button');
    await page.waitForSelector('#banner:has-text("refused")');
    await page.fill('#secret', 'correct horse');
    await page.click('#login button');
    await page.waitForSelector('body[data-loaded]');
    expect((await rows(page)).map((r) => r.name)).toEqual(['kvstore-0']);
    // The page never sends the secret itself, only proofs made from it.
    const sent: string[] = [];
    page.on('request', (r) => sent.push(JSON.stringify(r.headers()) + r.url()));
    await page.waitForRequest((r) => r.url().endsWith('/admin/console'));
    expect(sent.join('\n')).not.toContain('correct horse');
    const failures = await metric(n, 'kvstore_admin_auth_failures_total');
    // A lookup's query is part of its proof (the page signs the path and query it sends).
    await page.fill('#owners-key', 'a key/with?odd&chars');
    await page.click('#owners-form button');
    await page.waitForSelector('.owners');
    expect(await page.$eval('.owners-key', (e) => e.textContent)).toBe('a key/with?odd&chars');
    // Its nonce aged: the node said so, the page took the new one and went on.
    await expect
      .poll(() => metric(n, 'kvstore_admin_auth_stale_total'), { timeout: 15_000 })
      .toBeGreaterThan(0);
    const renewed = Date.now();
    // A function, not a string: the page's CSP forbids evaluating strings.
    const loaded = () =>
      page.$eval('body', (b) =>
        Number((b as unknown as { dataset: { loaded?: string } }).dataset.loaded),
      );
    await expect.poll(loaded, { timeout: 15_000 }).toBeGreaterThan(renewed);
    expect(await page.$eval('#login', (l) => (l as unknown as { hidden: boolean }).hidden)).toBe(
      true,
    );
    expect(await metric(n, 'kvstore_admin_auth_failures_total')).toBe(failures);
    await page.close();

    // A page on another origin posts a form to the admin endpoint: refused, nothing starts.
    const { nodes: open2 } = await startCluster(2, []);
    const target = open2[0]!;
    const evil = await browser.newPage();
    await evil.setContent(
      `<form method="post" action="${base(target)}/admin/decommission"></form>`,
    );
    const [response] = await Promise.all([
      evil.waitForResponse((r) => r.url().endsWith('/admin/decommission')),
      evil.$eval('form', (f) => (f as unknown as { submit(): void }).submit()),
    ]);
    expect(response.status()).toBe(403);
    const state = (await (await fetch(`${base(target)}/admin/decommission`)).json()) as {
      status: string;
    };
    expect(state.status).toBe('active');
    await evil.close();
  }, 120_000);
});
