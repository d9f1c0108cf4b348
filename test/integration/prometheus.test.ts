// Alert rules and dashboard through promtool, then a real Prometheus scraping a live 3-node cluster with those rules loaded.

import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ClusterNode, connect, startStaticCluster } from '../helpers/cluster.ts';
import { cleanup, ROOT, tempDir } from '../helpers/node-process.ts';
import {
  COMPOSE_PROMETHEUS,
  concrete,
  type PrometheusProcess,
  RULES,
  startPrometheus,
} from '../helpers/prometheus.ts';

const run = promisify(execFile);
const ALERTS = [
  'KvstoreNodeDown',
  'KvstoreQuorumErrors',
  'KvstoreRebalanceStuck',
  'KvstoreRebalanceWaitsForStorage',
  'KvstoreDiskNearlyFull',
  'KvstoreStorageNotWritable',
  'KvstoreStorageStalled',
  'KvstoreClockOutOfSync',
  'KvstoreReplicationSettingsMismatch',
  'KvstoreMembershipMismatch',
  'KvstoreDecommissionedMemberListed',
  'KvstoreFoundingWait',
  'KvstoreRingHeld',
  'KvstoreHintsBacklog',
  'KvstoreHintsDropped',
  'KvstoreAntiEntropyStale',
];

interface Dashboard {
  __inputs: { name: string; pluginId: string }[];
  templating: { list: { name: string; datasource: { uid: string } }[] };
  panels: {
    title: string;
    datasource: { uid: string };
    targets: { expr: string; datasource: { uid: string } }[];
  }[];
}
const dashboard = JSON.parse(
  readFileSync(join(ROOT, 'monitoring/grafana-dashboard.json'), 'utf8'),
) as Dashboard;
const panelExprs = dashboard.panels.flatMap((p) =>
  p.targets.map((t) => ({ title: p.title, expr: t.expr })),
);

describe('alert rules and dashboard (promtool)', () => {
  it('promtool check rules accepts the alert rules', async () => {
    const { stdout } = await run('promtool', ['check', 'rules', RULES]);
    expect(stdout).toContain(`SUCCESS: ${ALERTS.length} rules found`);
  });

  it('each alert fires on its condition and not otherwise (promtool test rules)', async () => {
    const tests = join(ROOT, 'test/integration/prometheus-rules.promtool.yaml');
    const { stdout } = await run('promtool', ['test', 'rules', tests]);
    expect(stdout).toContain('SUCCESS');
    const covered = readFileSync(tests, 'utf8').match(/alertname: (\w+)/g)!;
    for (const a of ALERTS) expect(covered, a).toContain(`alertname: ${a}`);
  });

  it('every dashboard query parses as PromQL and the panels cover the cluster', async () => {
    const rules = panelExprs.map((p, i) => ({
      record: `dashboard:expr_${i}`,
      expr: concrete(p.expr, '1m'),
    }));
    const file = join(tempDir('kvstore-prom-'), 'dashboard-rules.yaml');
    // JSON is YAML: a rules file with every query as a recording rule.
    writeFileSync(file, JSON.stringify({ groups: [{ name: 'dashboard', rules }] }));
    const { stdout } = await run('promtool', ['check', 'rules', file]);
    expect(stdout).toContain(`SUCCESS: ${rules.length} rules found`);
    const all = panelExprs.map((p) => p.expr).join('\n');
    for (const needle of [
      'rate(kvstore_requests_total',
      'histogram_quantile(0.5, sum by (le) (rate(kvstore_request_duration_seconds_bucket',
      'histogram_quantile(0.99, sum by (le) (rate(kvstore_request_duration_seconds_bucket',
      'sum by (code) (rate(kvstore_errors_total',
      'kvstore_storage_keys',
      'kvstore_members',
      'kvstore_rebalance_keys_sent_total',
      'kvstore_hints_stored',
    ]) {
      expect(all, needle).toContain(needle);
    }
  });

  it('the dashboard takes its Prometheus datasource as the DS_PROMETHEUS input', () => {
    expect(dashboard.__inputs).toEqual([
      expect.objectContaining({ name: 'DS_PROMETHEUS', pluginId: 'prometheus' }),
    ]);
    const uids = [
      ...dashboard.panels.flatMap((p) => [
        p.datasource.uid,
        ...p.targets.map((t) => t.datasource.uid),
      ]),
      ...dashboard.templating.list.map((v) => v.datasource.uid),
    ];
    // biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana's import placeholder, literally
    expect(new Set(uids)).toEqual(new Set(['${DS_PROMETHEUS}']));
  });

  it('the docker-compose Prometheus configuration is valid (promtool check config)', async () => {
    const dir = tempDir('kvstore-prom-');
    writeFileSync(join(dir, 'kvstore.yaml'), readFileSync(RULES));
    const text = readFileSync(COMPOSE_PROMETHEUS, 'utf8').replace(
      '/etc/prometheus/rules/',
      `${dir}/`,
    );
    writeFileSync(join(dir, 'prometheus.yml'), text);
    const { stdout } = await run('promtool', ['check', 'config', join(dir, 'prometheus.yml')]);
    expect(stdout).toContain(`SUCCESS: 1 rule files found`);
  });
});

describe('a real Prometheus scraping a live 3-node cluster', () => {
  let nodes: ClusterNode[];
  let prometheus: PrometheusProcess;
  let api: string;

  beforeAll(async () => {
    nodes = await startStaticCluster(3);
    prometheus = await startPrometheus(nodes.map((n) => `${n.host}:9090`));
    api = prometheus.api;
  }, 60_000);

  afterAll(async () => {
    await prometheus?.stop();
    await cleanup();
  });

  /** Polls `check` until it returns true; fails with the last error or value after `ms`. */
  async function until(what: string, check: () => Promise<boolean>, ms = 30_000): Promise<void> {
    const deadline = Date.now() + ms;
    let last: unknown = null;
    for (;;) {
      try {
        if (await check()) return;
      } catch (err) {
        last = err;
      }
      if (Date.now() > deadline) {
        throw new Error(
          `${what}: not true after ${ms} ms (last error: ${String(last)})\n${prometheus.log()}`,
        );
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  interface Sample {
    metric: Record<string, string>;
    value: [number, string];
  }
  async function query(expr: string): Promise<Sample[]> {
    const res = await fetch(`${api}/api/v1/query?query=${encodeURIComponent(expr)}`);
    const body = (await res.json()) as {
      status: string;
      error?: string;
      data: { result: Sample[] };
    };
    if (body.status !== 'success') throw new Error(`query ${expr}: ${body.error}`);
    return body.data.result;
  }
  const values = (s: Sample[]) => s.map((x) => Number(x.value[1]));

  it('scrapes every node (up == 1) and finds the instance variable values', async () => {
    await until('up == 1 on 3 targets', async () => {
      const up = await query('up{job="kvstore"}');
      return up.length === 3 && values(up).every((v) => v === 1);
    });
    const res = await fetch(`${api}/api/v1/label/instance/values?match[]=kvstore_requests_total`);
    const { data } = (await res.json()) as { data: string[] };
    expect(data.sort()).toEqual(nodes.map((n) => `${n.host}:9090`).sort());
  }, 60_000);

  it('sees the traffic it was sent: puts, keys on every replica, latency quantiles', async () => {
    const PUTS = 30;
    const REMOVES = 10;
    const clients = await Promise.all(nodes.map((n) => connect(n)));
    try {
      for (let i = 0; i < PUTS; i++)
        expect(await clients[i % 3]!.call(`PUT prom:${i} v${i}`)).toBe('OK');
      for (let i = 0; i < PUTS; i++)
        expect(await clients[(i + 1) % 3]!.call(`GET prom:${i}`)).toBe(`v${i}`);
      for (let i = 0; i < REMOVES; i++)
        expect(await clients[i % 3]!.call(`REMOVE prom:${i}`)).toBe('OK');
      expect((await clients[0]!.call('RANGE prom: prom:~')).split(' ')).toHaveLength(
        PUTS - REMOVES,
      );
      expect(await clients[1]!.call('GET')).toMatch(/^ERR WRONG_ARITY/);
    } finally {
      for (const c of clients) c.close();
    }
    await until(`sum of put requests == ${PUTS}`, async () => {
      const v = values(await query('sum(kvstore_requests_total{command="put"})'));
      return v.length === 1 && v[0] === PUTS;
    });
    // RF=3 on 3 nodes: every node holds every live key.
    await until(`kvstore_storage_keys == ${PUTS - REMOVES} on each node`, async () => {
      const v = values(await query('kvstore_storage_keys{job="kvstore"}'));
      return v.length === 3 && v.every((k) => k === PUTS - REMOVES);
    });
    await until('p99 latency finite and positive', async () => {
      const [p99] = values(
        await query(
          'histogram_quantile(0.99, sum by (le) (rate(kvstore_request_duration_seconds_bucket[30s])))',
        ),
      );
      return p99 !== undefined && Number.isFinite(p99) && p99 > 0 && p99 < 10;
    });
    // Polled like the others: the puts' sum can be complete in a scrape of node 1 made between its
    // last PUT and the bad GET after it.
    await until('one WRONG_ARITY error counted', async () => {
      const errors = values(
        await query('sum by (code) (kvstore_errors_total{code="WRONG_ARITY"})'),
      );
      return errors.length === 1 && errors[0] === 1;
    });
  }, 90_000);

  it('answers every dashboard query with data', async () => {
    for (const { title, expr } of panelExprs) {
      await until(
        `dashboard "${title}": ${expr}`,
        async () => (await query(concrete(expr, '30s'))).length > 0,
      );
    }
  }, 90_000);

  it('loads the alert rules, evaluates them without error, each with severity and annotations', async () => {
    interface Rule {
      name: string;
      type: string;
      health: string;
      lastError?: string;
      labels: Record<string, string>;
      annotations: Record<string, string>;
    }
    let rules: Rule[] = [];
    await until('every rule evaluated with health ok', async () => {
      const res = await fetch(`${api}/api/v1/rules`);
      const body = (await res.json()) as { data: { groups: { rules: Rule[] }[] } };
      rules = body.data.groups.flatMap((g) => g.rules);
      return rules.length === ALERTS.length && rules.every((r) => r.health === 'ok');
    });
    expect(rules.map((r) => r.name).sort()).toEqual([...ALERTS].sort());
    for (const r of rules) {
      expect(r.type, r.name).toBe('alerting');
      expect(['critical', 'warning'], r.name).toContain(r.labels.severity);
      expect(r.annotations.summary, r.name).toBeTruthy();
      expect(r.annotations.description, r.name).toBeTruthy();
    }
  }, 90_000);

  it('puts KvstoreNodeDown in pending for a stopped node, and for no other', async () => {
    const victim = nodes[2]!;
    expect(await victim.proc.stop('SIGTERM')).toBe(0);
    const instance = `${victim.host}:9090`;
    interface Alert {
      labels: Record<string, string>;
      state: string;
    }
    let alerts: Alert[] = [];
    await until(`KvstoreNodeDown pending for ${instance}`, async () => {
      const body = (await (await fetch(`${api}/api/v1/alerts`)).json()) as {
        data: { alerts: Alert[] };
      };
      alerts = body.data.alerts.filter((a) => a.labels.alertname === 'KvstoreNodeDown');
      return alerts.length > 0;
    });
    expect(alerts).toEqual([
      expect.objectContaining({
        state: 'pending',
        labels: expect.objectContaining({ instance, job: 'kvstore', severity: 'critical' }),
      }),
    ]);
  }, 90_000);
});
