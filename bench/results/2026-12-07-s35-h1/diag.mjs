import v8 from 'node:v8';
import { readFileSync, writeFileSync } from 'node:fs';
const t = setTimeout(() => {
  const sp = v8.getHeapSpaceStatistics().map((s) => `${s.space_name}:${(s.space_size/1024)|0}/${(s.space_used_size/1024)|0}/${(s.physical_space_size/1024)|0}`).join(' ');
  const mu = process.memoryUsage();
  const hs = v8.getHeapStatistics();
  const out = `DIAG rss=${mu.rss>>10} heapTotal=${mu.heapTotal>>10} heapUsed=${mu.heapUsed>>10} external=${mu.external>>10} ab=${mu.arrayBuffers>>10} malloced=${hs.malloced_memory>>10} peakMalloced=${hs.peak_malloced_memory>>10} contexts=${hs.number_of_native_contexts} ${sp}\n`;
  writeFileSync(process.env.DIAG_OUT ?? '/dev/stderr', out, { flag: 'a' });
  if (process.env.DIAG_SNAP) v8.writeHeapSnapshot(process.env.DIAG_SNAP);
}, Number(process.env.DIAG_MS ?? 3500));
t.unref();
