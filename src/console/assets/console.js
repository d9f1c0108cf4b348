// The kvstore console: polls GET /admin/console and draws it. Everything from the node is set
// as text (textContent, setAttribute), never parsed as HTML, so names, keys and values show as
// they are, markup included.

import { adminAuthorization } from './hmac.js';

const POLL_MS = 2000;
const SVG = 'http://www.w3.org/2000/svg';
const COLORS = [
  '#2f81f7',
  '#e16f24',
  '#1a7f37',
  '#a475f9',
  '#cf222e',
  '#0598bc',
  '#bf8700',
  '#6e7781',
  '#d63384',
  '#20c997',
];
const $ = (id) => document.getElementById(id);

let secret = sessionStorage.getItem('kvstore-secret');
let last = null;
let failingSince = null;

function el(tag, attrs = {}, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = String(text);
  return e;
}

function swatch(color) {
  const s = el('span', { class: 'swatch' });
  s.style.background = color;
  return s;
}

function svg(tag, attrs = {}) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  return e;
}

function bytes(n) {
  if (n === null || n === undefined) return '?';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < u.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(1)} ${u[i]}`;
}

function duration(s) {
  if (s === null || s === undefined) return 'unknown';
  const t = Math.max(0, Math.round(s));
  if (t < 60) return `${t}s`;
  if (t < 3600) return `${Math.floor(t / 60)}m${String(t % 60).padStart(2, '0')}s`;
  return `${Math.floor(t / 3600)}h${String(Math.floor((t % 3600) / 60)).padStart(2, '0')}m`;
}

/** The node's nonce for this tab's proofs (asked at the first call, renewed when stale). */
let nonce = null;
let nc = 0;

async function newNonce() {
  const res = await fetch('/admin/nonce', { cache: 'no-store' });
  if (!res.ok) throw new Error(`HTTP ${res.status}`);
  nonce = (await res.json()).nonce;
  nc = 0;
}

/**
 * GET an admin path, with the proof of the cluster secret once one was entered: it covers the
 * path and query as the browser sends them, this tab's nonce and counter. A 401 that says the
 * nonce is stale (too old, the node restarted) is tried once more with the new one it offers.
 */
async function get(path, query = '') {
  const url = new URL(path + query, location.href);
  const target = url.pathname + url.search;
  let res;
  for (let attempt = 0; ; attempt++) {
    const headers = {};
    if (secret) {
      if (nonce === null) await newNonce();
      if (nonce !== null) {
        nc += 1;
        headers.authorization = adminAuthorization(secret, 'GET', target, nonce, nc);
      }
    }
    res = await fetch(url, { headers, cache: 'no-store' });
    if (res.status !== 401 || attempt > 0) break;
    const challenge = /^KVSTORE-HMAC nonce="([0-9a-f.]+)", stale=true$/.exec(
      res.headers.get('www-authenticate') ?? '',
    );
    if (!challenge || !secret) break;
    nonce = challenge[1];
    nc = 0;
  }
  if (res.status === 401) {
    const e = new Error('the cluster secret is needed');
    e.auth = true;
    throw e;
  }
  const body = await res.json();
  if (!res.ok) throw new Error(body.error || `HTTP ${res.status}`);
  return body;
}

function colorOf(names) {
  const sorted = [...names].sort();
  return (n) => COLORS[sorted.indexOf(n) % COLORS.length] || '#999';
}

function replace(parent, ...children) {
  parent.replaceChildren(...children);
}

function arcPath(r0, r1, a0, a1) {
  const p = (r, a) => `${(r * Math.sin(a)).toFixed(2)} ${(-r * Math.cos(a)).toFixed(2)}`;
  const large = a1 - a0 > Math.PI ? 1 : 0;
  return `M ${p(r1, a0)} A ${r1} ${r1} 0 ${large} 1 ${p(r1, a1)} L ${p(r0, a1)} A ${r0} ${r0} 0 ${large} 0 ${p(r0, a0)} Z`;
}

let ownersShown = null;

function drawRing(rings, color) {
  const g = $('ring');
  const parts = [];
  const band = (shares, r0, r1, label) => {
    let a = 0;
    const names = Object.keys(shares).sort();
    for (const n of names) {
      const span = shares[n] * 2 * Math.PI;
      if (span <= 0) continue;
      const hot =
        ownersShown && (ownersShown.settled.includes(n) || ownersShown.target.includes(n));
      const path = svg('path', {
        d: arcPath(r0, r1, a, Math.min(a + span, 2 * Math.PI - 1e-6)),
        fill: color(n),
        stroke: hot ? '#000' : '#fff',
        'stroke-width': hot ? 2 : 1,
        'data-member': n,
        'data-ring': label,
      });
      const title = svg('title');
      title.textContent = `${n}: ${(shares[n] * 100).toFixed(1)}% of the ${label} ring`;
      path.append(title);
      parts.push(path);
      a += span;
    }
  };
  band(rings.target.shares, 72, 100, 'target');
  band(rings.settled.shares, 40, 66, 'settled');
  const t1 = svg('text', { x: 0, y: -4, 'text-anchor': 'middle', 'font-size': 9 });
  t1.textContent = 'outer: target';
  const t2 = svg('text', { x: 0, y: 8, 'text-anchor': 'middle', 'font-size': 9 });
  t2.textContent = 'inner: settled';
  replace(g, ...parts, t1, t2);
  $('ring-note').textContent = rings.moving
    ? `Data is moving: the settled ring (inner) still serves reads; the target ring (outer) receives the data. Replication factor ${rings.replicationFactor}.`
    : `Settled: both rings are the same. Replication factor ${rings.replicationFactor}.`;
  const names = [
    ...new Set([...Object.keys(rings.target.shares), ...Object.keys(rings.settled.shares)]),
  ].sort();
  replace(
    $('ring-legend'),
    ...names.map((n) => {
      const li = el('li');
      li.append(
        swatch(color(n)),
        el('span', {}, `${n} ${((rings.target.shares[n] ?? 0) * 100).toFixed(1)}%`),
      );
      return li;
    }),
  );
}

/**
 * What a member's last hello said it refuses (this node's own row: now), as `kvctl status` says
 * it: a stalled disk (docs/storage.md), writes for its clock (docs/observability.md, Readiness),
 * replicas of writes for a full disk (docs/storage.md).
 */
function refusals(m) {
  return [
    m.storageStalled === true ? 'disk stalled' : null,
    m.clockRefusing === true ? 'refusing writes (clock)' : null,
    m.storageNotWritable === true ? 'storage not writable' : null,
  ].filter((n) => n !== null);
}

function stateCell(m) {
  const notes = refusals(m);
  const known = ['up', 'down', 'unknown'].includes(m.state) ? m.state : 'unknown';
  // A stalled disk: still a member and up, but down for data: shown as down. A member that
  // refuses writes serves reads: shown apart from both.
  const cls =
    m.storageStalled === true ? 'down' : notes.length > 0 && known === 'up' ? 'refusing' : known;
  return el('td', { class: `state state-${cls}` }, [m.state, ...notes].join(', '));
}

function drawMembers(cluster, now) {
  const rows = cluster.members.map((m) => {
    const tr = el('tr', { 'data-name': m.name });
    const ago = m.lastContact
      ? `${Math.max(0, Math.round((now - Date.parse(m.lastContact)) / 1000))}s ago`
      : 'never';
    tr.append(
      el('td', { class: 'name' }, m.name + (m.name === cluster.node ? ' (this node)' : '')),
      stateCell(m),
      el('td', { class: 'phase' }, m.phase ?? ''),
      el('td', { class: 'address' }, m.address),
      el('td', { class: 'num keys' }, m.keys ?? '?'),
      el('td', { class: 'num bytes' }, bytes(m.bytes)),
      el('td', { class: 'num share' }, `${(m.share * 100).toFixed(1)}%`),
      el('td', { class: 'num hints' }, m.hintsHeldFor ?? 0),
      el('td', { class: 'contact' }, ago),
    );
    return tr;
  });
  replace($('members').tBodies[0], ...rows);
}

function drawTransfers(cluster) {
  const items = cluster.members.filter((m) => m.transfer);
  if (items.length === 0) {
    replace(
      $('transfers'),
      el(
        'p',
        { class: 'muted' },
        'No rebalance or decommission has run since these nodes started.',
      ),
    );
    return;
  }
  replace(
    $('transfers'),
    ...items.map((m) => {
      const t = m.transfer;
      const box = el('div', { class: 'transfer', 'data-member': m.name, 'data-kind': t.kind });
      const pct = Math.max(0, Math.min(100, t.percent));
      const bar = el('div', {
        class: `bar${t.done ? ' done' : ''}`,
        role: 'progressbar',
        'aria-valuemin': 0,
        'aria-valuemax': 100,
        'aria-valuenow': pct,
        'aria-label': `${t.kind} of ${m.name}`,
      });
      const fill = el('div');
      // Through the CSSOM: the page's Content-Security-Policy refuses style attributes.
      fill.style.width = `${pct}%`;
      bar.append(fill);
      const rate = t.done
        ? 'done'
        : `${t.rate} records/s, ${bytes(t.bytesRate)}/s, ETA ${duration(t.etaSeconds)}`;
      box.append(
        el('strong', {}, `${t.kind}: ${m.name}`),
        bar,
        el(
          'span',
          { class: 'figures' },
          `${t.scanned}/${t.total} records (${pct}%), ${bytes(t.bytes)} sent, ${rate}`,
        ),
      );
      // Members whose storage refuses its batches (a full disk): the transfer waits for them.
      for (const [member, reason] of Object.entries((!t.done && t.waitingFor) || {})) {
        box.append(
          el('span', { class: 'waits' }, `waits for ${member}, which refuses writes (${reason})`),
        );
      }
      return box;
    }),
  );
}

/** Lines over time: series is { name: [values by point] }. */
function chart(id, legendId, times, series, color, unit) {
  const g = $(id);
  const W = 400;
  const H = 160;
  const pad = { l: 56, r: 8, t: 8, b: 18 };
  const names = Object.keys(series).sort();
  const max = Math.max(1e-9, ...names.flatMap((n) => series[n].filter((v) => v !== null)));
  const x = (i) => pad.l + (times.length <= 1 ? 0 : (i / (times.length - 1)) * (W - pad.l - pad.r));
  const y = (v) => H - pad.b - (v / max) * (H - pad.t - pad.b);
  const parts = [
    svg('line', { x1: pad.l, y1: H - pad.b, x2: W - pad.r, y2: H - pad.b, stroke: '#ccc' }),
    svg('line', { x1: pad.l, y1: pad.t, x2: pad.l, y2: H - pad.b, stroke: '#ccc' }),
  ];
  const top = svg('text', { x: pad.l - 4, y: pad.t + 8, 'text-anchor': 'end', 'font-size': 10 });
  top.textContent = `${Number(max.toPrecision(3))}${unit}`;
  const zero = svg('text', { x: pad.l - 4, y: H - pad.b, 'text-anchor': 'end', 'font-size': 10 });
  zero.textContent = '0';
  parts.push(top, zero);
  if (times.length > 0) {
    const span = svg('text', { x: W - pad.r, y: H - 4, 'text-anchor': 'end', 'font-size': 10 });
    span.textContent = `${duration((times.at(-1) - times[0]) / 1000)} shown`;
    parts.push(span);
  }
  for (const n of names) {
    const pts = series[n]
      .map((v, i) => (v === null ? null : `${x(i).toFixed(1)},${y(v).toFixed(1)}`))
      .filter(Boolean);
    if (pts.length === 0) continue;
    const line = svg('polyline', {
      points: pts.join(' '),
      fill: 'none',
      stroke: color(n),
      'stroke-width': 1.5,
      'data-series': n,
    });
    if (n.endsWith(' p99')) line.setAttribute('stroke-dasharray', '4 2');
    parts.push(line);
  }
  if (names.length === 0) {
    const none = svg('text', {
      x: W / 2,
      y: H / 2,
      'text-anchor': 'middle',
      'font-size': 12,
      fill: '#777',
    });
    none.textContent = 'none';
    parts.push(none);
  }
  replace(g, ...parts);
  replace(
    $(legendId),
    ...names.map((n) => {
      const li = el('li');
      li.append(swatch(color(n)), el('span', {}, n));
      return li;
    }),
  );
}

function drawTraffic(points) {
  const times = points.map((p) => p.t);
  const collect = (pick, scale = 1, suffix = '') => {
    const names = new Set(points.flatMap((p) => Object.keys(pick(p))));
    const out = {};
    for (const n of names)
      out[n + suffix] = points.map((p) => (pick(p)[n] === undefined ? null : pick(p)[n] * scale));
    return out;
  };
  const rate = collect((p) => p.rate);
  const color = colorOf(Object.keys(rate));
  chart('chart-rate', 'legend-rate', times, rate, color, '/s');
  const lat = { ...collect((p) => p.p50, 1000, ' p50'), ...collect((p) => p.p99, 1000, ' p99') };
  chart(
    'chart-latency',
    'legend-latency',
    times,
    lat,
    (n) => color(n.replace(/ p(50|99)$/, '')),
    'ms',
  );
  const errors = collect((p) => p.errors);
  chart('chart-errors', 'legend-errors', times, errors, colorOf(Object.keys(errors)), '');
}

function kvRows(tbody, entries) {
  replace(
    tbody,
    ...entries.map(([k, v]) => {
      const tr = el('tr');
      tr.append(el('td', {}, k), el('td', {}, typeof v === 'object' ? JSON.stringify(v) : v));
      return tr;
    }),
  );
}

function drawFacts(f) {
  kvRows($('facts').tBodies[0], [
    ['name', f.name],
    ['version', `kvstore ${f.version} (Node.js ${f.node})`],
    ['started', `${f.startedAt} (up ${duration(f.uptimeSeconds)})`],
    ['data directory', `${f.dataDir} (${bytes(f.dataDirBytes)})`],
  ]);
  kvRows($('storage').tBodies[0], Object.entries(f.storage));
  kvRows($('config').tBodies[0], Object.entries(f.config));
}

/** CLUSTER's memberListsDiffer: members that list other members than this node (docs/cluster.md). */
function drawMemberLists(cluster) {
  const differ = Object.entries(cluster.memberListsDiffer ?? {}).sort(([a], [b]) =>
    a < b ? -1 : a > b ? 1 : 0,
  );
  const p = $('member-lists');
  p.hidden = differ.length === 0;
  p.textContent =
    differ.length === 0
      ? ''
      : `Member lists differ: ${differ.map(([n, l]) => `${n} lists ${l.join(',')}`).join('; ')}; this node lists ${cluster.members.map((m) => m.name).join(',')}. They route by other rings and the cluster is never at rest (no tombstone collection, no anti-entropy): give every member the same --peers (or --discovery name).`;
}

/**
 * What this node refuses now (CLUSTER's `refusing`: its clients' commands; `notWritable`: the
 * replicas of writes, a full disk), one sentence each, as `kvctl status` says it.
 */
function drawRefusing(cluster) {
  const lines = [];
  const r = cluster.refusing;
  if (r) {
    const what = r.commands === 'all' ? 'every command' : 'writes';
    const ready = r.ready
      ? 'it stays ready (/readyz 200, degraded): no other member answers that could take its clients.'
      : 'it is not ready (/readyz 503): its clients go to other nodes.';
    lines.push(`This node refuses ${what}: ${r.reason}; ${ready}`);
  }
  if (cluster.notWritable) {
    lines.push(
      `This node's storage refuses writes: ${cluster.notWritable}; it serves reads and coordinates writes, which the other replicas store.`,
    );
  }
  const p = $('refusing');
  p.hidden = lines.length === 0;
  p.textContent = lines.join(' ');
}

function draw(v) {
  const color = colorOf(v.cluster.members.map((m) => m.name));
  document.title = `kvstore ${v.facts.name}`;
  $('node-name').textContent = v.facts.name;
  const up = v.cluster.members.filter((m) => m.state === 'up').length;
  const refusing = v.cluster.members.filter((m) => refusals(m).length > 0).length;
  $('summary').textContent =
    `${up}/${v.cluster.members.length} members up${refusing > 0 ? ` (${refusing} refusing)` : ''} · ring ${v.rings.moving ? 'moving' : 'settled'} (epoch ${v.cluster.ring.epoch}) · status ${v.cluster.status} · hints held here ${v.cluster.hints}`;
  drawRing(v.rings, color);
  drawRefusing(v.cluster);
  drawMemberLists(v.cluster);
  drawMembers(v.cluster, Date.parse(v.time));
  drawTransfers(v.cluster);
  drawTraffic(v.traffic);
  drawFacts(v.facts);
}

function showBanner(text) {
  const b = $('banner');
  b.hidden = text === null;
  b.textContent = text ?? '';
}

async function poll() {
  try {
    last = await get('/admin/console');
    failingSince = null;
    $('login').hidden = true;
    $('main').hidden = false;
    showBanner(null);
    draw(last);
    document.body.dataset.loaded = String(Date.now());
  } catch (err) {
    if (err.auth) {
      $('login').hidden = false;
      $('main').hidden = true;
      showBanner(secret ? 'That secret was refused.' : null);
    } else {
      failingSince ??= new Date();
      const name = last ? last.facts.name : location.host;
      showBanner(
        `${name} does not answer since ${failingSince.toLocaleTimeString()} (${err.message}); ${last ? 'showing its last view' : 'nothing to show yet'}. Retrying.`,
      );
      document.body.dataset.unreachable = 'true';
    }
  }
  setTimeout(poll, POLL_MS);
}

$('login').addEventListener('submit', (e) => {
  e.preventDefault();
  secret = $('secret').value;
  sessionStorage.setItem('kvstore-secret', secret);
  $('secret').value = '';
});

$('owners-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const key = $('owners-key').value;
  const hex = $('owners-hex').checked;
  const box = $('owners');
  // In hex, the key's bytes, each sent as its percent-escape: the node takes ?key= as bytes.
  const digits = key.replace(/\s+/g, '');
  if (hex && !/^(?:[0-9a-fA-F]{2})+$/.test(digits)) {
    replace(box, el('p', { class: 'error' }, 'A key in hex is an even number of digits 0-9, a-f.'));
    return;
  }
  const query = hex ? digits.replace(/../g, (b) => `%${b}`) : encodeURIComponent(key);
  try {
    const o = await get('/admin/owners', `?key=${query}`);
    ownersShown = o;
    const p = el('p', { class: 'owners' });
    p.append(
      el('code', { class: 'owners-key' }, hex ? `hex ${o.keyHex}` : o.key),
      document.createTextNode(
        ` → settled: ${o.settled.join(', ')}; target: ${o.target.join(', ')}`,
      ),
    );
    replace(box, p);
    if (last) drawRing(last.rings, colorOf(last.cluster.members.map((m) => m.name)));
  } catch (err) {
    replace(box, el('p', { class: 'error' }, err.message));
  }
});

poll();
