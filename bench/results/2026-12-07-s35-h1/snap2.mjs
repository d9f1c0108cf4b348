// biggest nodes of a type with one retainer chain
import { readFileSync } from 'node:fs';
const s = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const want = process.argv[3]; const N = Number(process.argv[4] ?? 20);
const m = s.snapshot.meta; const nf = m.node_fields.length; const ef = m.edge_fields.length; const types = m.node_types[0]; const etypes = m.edge_types[0];
const iT = m.node_fields.indexOf('type'), iN = m.node_fields.indexOf('name'), iS = m.node_fields.indexOf('self_size'), iE = m.node_fields.indexOf('edge_count');
const eT = m.edge_fields.indexOf('type'), eN = m.edge_fields.indexOf('name_or_index'), eTo = m.edge_fields.indexOf('to_node');
const n = s.nodes.length / nf; const ret = new Int32Array(n).fill(-1); const retName = new Array(n);
let e = 0;
for (let i = 0; i < n; i++) { const ec = s.nodes[i * nf + iE]; for (let j = 0; j < ec; j++, e += ef) { const to = s.edges[e + eTo] / nf; const et = etypes[s.edges[e + eT]]; if (et === 'weak') continue; if (ret[to] === -1 || (et !== 'internal' && etypes === 0)) { ret[to] = i; retName[to] = et === 'element' || et === 'hidden' ? `[${s.edges[e + eN]}]` : s.strings[s.edges[e + eN]]; } } }
const desc = (i) => `${types[s.nodes[i * nf + iT]]}:${String(s.strings[s.nodes[i * nf + iN]]).slice(0, 50).replace(/\n/g, ' ')}`;
const list = [];
for (let i = 0; i < n; i++) { const t = types[s.nodes[i * nf + iT]]; const name = s.strings[s.nodes[i * nf + iN]]; if (`${t} ${name}`.startsWith(want)) list.push(i); }
list.sort((a, b) => s.nodes[b * nf + iS] - s.nodes[a * nf + iS]);
for (const i of list.slice(0, N)) { let chain = []; let c = i; for (let k = 0; k < 8 && c >= 0; k++) { chain.push(`${retName[c] ?? ''}<-${desc(ret[c] >= 0 ? ret[c] : c)}`); c = ret[c]; } console.log(s.nodes[i * nf + iS] >> 10, 'KiB', desc(i), '\n   ', chain.join('\n    ')); }
