// Makes docs/console.png: the web console of a real 3-node cluster (loopback processes) while one
// node decommissions, photographed by Debian's chromium, headless, through playwright-core.
//
//   node scripts/console-screenshot.ts [out.png]     (needs /usr/bin/chromium: apt-get install chromium)
//
// Every process and directory it makes is removed at the end, also when it fails.

import { resolve } from 'node:path';
import { chromium } from 'playwright-core';
import { connect, startStaticCluster } from '../test/helpers/cluster.ts';
import { cleanup } from '../test/helpers/node-process.ts';

const ROOT = resolve(import.meta.dirname, '..');
if (process.argv.includes('--help') || process.argv.includes('-h')) {
  process.stdout.write(
    'Usage: node scripts/console-screenshot.ts [out.png] (default docs/console.png)\n',
  );
  process.exit(0);
}
const out = resolve(process.argv[2] ?? `${ROOT}/docs/console.png`);

async function main(): Promise<void> {
  const nodes = await startStaticCluster(3, [
    '--replication-factor',
    '2',
    '--rebalance-rate-bytes',
    '6000',
  ]);
  const c = await connect(nodes[0]!);
  // Some traffic for the charts: writes, reads, a miss and a bad command (an error code).
  for (let round = 0; round < 5; round++) {
    const lines = Array.from({ length: 400 }, (_, i) => `PUT user:${round}:${i} profile-${i}`);
    c.send(`${lines.join('\n')}\n`);
    await c.lines(lines.length);
    const reads = Array.from({ length: 200 }, (_, i) => `GET user:${round}:${i * 2}`);
    c.send(`${reads.join('\n')}\nGET missing\nFROB x\n`);
    await c.lines(reads.length + 2);
    await new Promise((r) => setTimeout(r, 1000));
  }
  c.close();
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox'],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const n0 = nodes[0]!;
    await page.goto(`http://${n0.host}:${n0.proc.httpPort}/`);
    await page.waitForSelector('body[data-loaded]');
    await page.fill('#owners-key', 'user:1:42');
    await page.click('#owners-form button');
    await page.waitForSelector('.owners');
    const n2 = nodes[2]!;
    await fetch(`http://${n2.host}:${n2.proc.httpPort}/admin/decommission`, { method: 'POST' });
    // Mid-transfer: the bar between 20% and 80%, an ETA shown.
    for (;;) {
      const v = await page
        .$eval('[role=progressbar]', (b) => Number(b.getAttribute('aria-valuenow')))
        .catch(() => 0);
      if (v >= 20 && v <= 80) break;
      if (v > 80) throw new Error('the decommission went past 80% between two looks');
      await new Promise((r) => setTimeout(r, 200));
    }
    // One more poll of the page, so the figures next to the bar are drawn from the same view.
    await page.waitForTimeout(2100);
    await page.screenshot({ path: out, fullPage: true });
    process.stdout.write(`wrote ${out}\n`);
  } finally {
    await browser.close();
  }
}

try {
  await main();
} finally {
  await cleanup();
}
