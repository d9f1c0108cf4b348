// Aggregate a .heapsnapshot by (type, name) self size; print top N. usage: node snap.mjs file [N]
import { readFileSync } from 'node:fs';
const s = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const m = s.snapshot.meta; const nf = m.node_fields.length; const types = m.node_types[0];
const iT = m.node_fields.indexOf('type'), iN = m.node_fields.indexOf('name'), iS = m.node_fields.indexOf('self_size');
const agg = new Map(); let total = 0;
for (let i = 0; i < s.nodes.length; i += nf) {
  const t = types[s.nodes[i + iT]]; let n = s.strings[s.nodes[i + iN]];
  if (t === 'string' || t === 'concatenated string' || t === 'sliced string') n = n.length > 40 ? `len>40` : 'short';
  if (t === 'code') n = n.slice(0, 30);
  const k = `${t} ${n}`; const sz = s.nodes[i + iS]; total += sz;
  const a = agg.get(k) ?? [0, 0]; a[0] += sz; a[1]++; agg.set(k, a);
}
console.log('total', total >> 10, 'KiB');
for (const [k, [sz, c]] of [...agg].sort((a, b) => b[1][0] - a[1][0]).slice(0, Number(process.argv[3] ?? 40))) console.log(String(sz >> 10).padStart(7), 'KiB', String(c).padStart(7), k);
