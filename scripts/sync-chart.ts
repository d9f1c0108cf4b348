// Copies the files the Helm chart shares with the rest of the repository into charts/kvstore, and regenerates its README tables.
//
//   node scripts/sync-chart.ts           write them
//   node scripts/sync-chart.ts --check   exit 1 listing every stale file (test/unit/chart-files.test.ts)
//
// Sources (edit these, never the copies):
//   operator/crd/kvclusters.kvstore.dev.yaml -> charts/kvstore/crds/ (and, through it, the
//                                               chart's pre-upgrade CRD hook)
//   operator/rbac.yaml                       -> charts/kvstore/files/rbac.yaml (the chart's RBAC rules)
//   monitoring/prometheus-rules.yaml         -> charts/kvstore/files/prometheus-rules.yaml
//   monitoring/grafana-dashboard.json        -> charts/kvstore/files/grafana-dashboard.json, with
//                                               its DS_PROMETHEUS import input turned into a
//                                               data source variable (a provisioned dashboard
//                                               has no import step to fill the input)
//   charts/kvstore/values.yaml               -> the tables of charts/kvstore/README.md

import { readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { CHART, generatedReadme, ROOT } from './chart-readme.ts';

function header(source: string): string {
  return `# COPIED from ${source} by scripts/sync-chart.ts: edit the source, then run \`node scripts/sync-chart.ts\`.\n`;
}

function copyYaml(source: string): string {
  return header(source) + readFileSync(join(ROOT, source), 'utf8');
}

interface Dashboard {
  __inputs?: { name: string; pluginId?: string }[];
  templating?: { list?: Record<string, unknown>[] };
  [key: string]: unknown;
}

/**
 * The dashboard for provisioning (the Grafana sidecar): every `${DS_PROMETHEUS}` reference stays,
 * and resolves to a `datasource` variable of that name (the first Prometheus data source unless
 * the viewer picks another) instead of an import-time input.
 */
export function provisionedDashboard(text: string): string {
  const d = JSON.parse(text) as Dashboard;
  const inputs = d.__inputs ?? [];
  const variables = inputs
    .filter((i) => i.pluginId === 'prometheus')
    .map((i) => ({
      name: i.name,
      label: 'Data source',
      type: 'datasource',
      query: 'prometheus',
      current: {},
      hide: 0,
      refresh: 1,
      regex: '',
      options: [],
    }));
  const { __inputs: _dropped, ...rest } = d;
  const list = (rest.templating?.list ?? []).filter(
    (v) => !variables.some((n) => n.name === v.name),
  );
  return `${JSON.stringify({ ...rest, templating: { ...rest.templating, list: [...variables, ...list] } }, null, 2)}\n`;
}

/** Every synced file: absolute path -> wanted content. */
export function syncedFiles(): Map<string, string> {
  return new Map([
    [
      join(CHART, 'crds/kvclusters.kvstore.dev.yaml'),
      copyYaml('operator/crd/kvclusters.kvstore.dev.yaml'),
    ],
    [join(CHART, 'files/rbac.yaml'), copyYaml('operator/rbac.yaml')],
    [join(CHART, 'files/prometheus-rules.yaml'), copyYaml('monitoring/prometheus-rules.yaml')],
    [
      join(CHART, 'files/grafana-dashboard.json'),
      provisionedDashboard(readFileSync(join(ROOT, 'monitoring/grafana-dashboard.json'), 'utf8')),
    ],
    [join(CHART, 'README.md'), generatedReadme()],
  ]);
}

/** Paths (relative to the repository) whose content differs from what the sync would write. */
export function staleFiles(): string[] {
  const stale: string[] = [];
  for (const [path, want] of syncedFiles()) {
    let have = '';
    try {
      have = readFileSync(path, 'utf8');
    } catch {
      // missing counts as stale
    }
    if (have !== want) stale.push(relative(ROOT, path));
  }
  return stale;
}

if (import.meta.main) {
  if (process.argv.includes('--check')) {
    const stale = staleFiles();
    if (stale.length) {
      process.stderr.write(
        `stale chart files (run node scripts/sync-chart.ts):\n  ${stale.join('\n  ')}\n`,
      );
      process.exit(1);
    }
  } else {
    for (const [path, want] of syncedFiles()) writeFileSync(path, want);
  }
}
