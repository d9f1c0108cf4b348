// The Helm chart's files that come from elsewhere: synced copies, the README table, values.schema.json, k8s/ RBAC.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { NODE_SETTINGS } from '../../operator/api/v1alpha1/index.ts';
import { leafPaths, parseValues, renderTables, showValue } from '../../scripts/chart-readme.ts';
import { provisionedDashboard, staleFiles } from '../../scripts/sync-chart.ts';

const ROOT = join(import.meta.dirname, '../..');
const CHART = join(ROOT, 'charts/kvstore');
const read = (path: string) => readFileSync(join(ROOT, path), 'utf8');

interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
  rules?: unknown[];
  subjects?: unknown[];
  roleRef?: unknown;
}

function objects(path: string): K8sObject[] {
  return parseAllDocuments(read(path))
    .map((d) => d.toJS() as K8sObject | null)
    .filter((o): o is K8sObject => o !== null);
}

interface Schema {
  type?: string | string[];
  properties?: Record<string, Schema>;
  additionalProperties?: boolean | Schema;
}

/** Dotted paths of a JSON schema's declared properties, down to objects without `properties`. */
function schemaPaths(s: Schema, prefix = ''): string[] {
  if (!s.properties) return prefix ? [prefix] : [];
  return Object.entries(s.properties).flatMap(([k, v]) =>
    schemaPaths(v, prefix ? `${prefix}.${k}` : k),
  );
}

describe('chart files synced from the repository', () => {
  it('are up to date (else: node scripts/sync-chart.ts)', () => {
    expect(staleFiles()).toEqual([]);
  });

  it('Chart.yaml: apiVersion v2, appVersion is package.json version', () => {
    const chart = parse(read('charts/kvstore/Chart.yaml')) as Record<string, string>;
    const pkg = JSON.parse(read('package.json')) as { version: string };
    expect(chart.apiVersion).toBe('v2');
    expect(chart.name).toBe('kvstore');
    expect(chart.appVersion).toBe(pkg.version);
  });

  it('the provisioned dashboard resolves DS_PROMETHEUS through a data source variable', () => {
    const source = read('monitoring/grafana-dashboard.json');
    const out = JSON.parse(provisionedDashboard(source)) as Record<string, unknown> & {
      templating: { list: { name: string; type: string; query?: string }[] };
    };
    expect(out.__inputs).toBeUndefined();
    expect(out.templating.list[0]).toMatchObject({
      name: 'DS_PROMETHEUS',
      type: 'datasource',
      query: 'prometheus',
    });
    const original = JSON.parse(source) as Record<string, unknown>;
    expect(out.panels).toEqual(original.panels);
    const refs = (text: string) => text.match(/\$\{DS_PROMETHEUS\}/g)?.length ?? 0;
    expect(refs(JSON.stringify(out))).toBe(refs(source));
    expect(refs(source)).toBeGreaterThan(0);
    // The chart's copy is that transformation.
    expect(read('charts/kvstore/files/grafana-dashboard.json')).toBe(provisionedDashboard(source));
  });
});

describe('values.yaml documentation and schema', () => {
  const valuesText = read('charts/kvstore/values.yaml');
  const values = parse(valuesText) as unknown;
  const schema = JSON.parse(read('charts/kvstore/values.schema.json')) as Schema;

  it('documents every value with ## @param (the README table is generated from them)', () => {
    const sections = parseValues(valuesText);
    const params = sections.flatMap((s) => s.params.map((p) => p.path));
    for (const leaf of leafPaths(values)) {
      expect(
        params.some((p) => leaf === p || leaf.startsWith(`${p}.`)),
        leaf,
      ).toBe(true);
    }
    expect(read('charts/kvstore/README.md')).toContain(renderTables(sections));
  });

  it('rejects undocumented values and @params of missing values', () => {
    expect(() => parseValues('## @section S\n## @param a A\na: 1\nb: 2\n')).toThrow(
      /b: no ## @param comment/,
    );
    expect(() => parseValues('## @section S\n## @param a A\n## @param c C\na: 1\n')).toThrow(
      /@param c: no such value/,
    );
    expect(() => parseValues('## @param a A\na: 1\n')).toThrow(/before any @section/);
    expect(showValue('')).toBe('`""`');
    expect(showValue({ a: '|' })).toBe('`{"a":"\\|"}`');
  });

  it('values.schema.json declares exactly the values in values.yaml', () => {
    const declared = schemaPaths(schema);
    const leaves = leafPaths(values);
    // Every value is in the schema (itself, or inside an object the schema leaves open) ...
    for (const leaf of leaves) {
      expect(
        declared.some((d) => leaf === d || leaf.startsWith(`${d}.`)),
        `${leaf} in values.schema.json`,
      ).toBe(true);
    }
    // ... and the schema names no value that values.yaml lacks.
    for (const d of declared) {
      expect(
        leaves.some((l) => l === d || l.startsWith(`${d}.`)),
        `${d} in values.yaml`,
      ).toBe(true);
    }
    expect(schema.additionalProperties).toBe(false);
  });

  it('cluster.settings takes exactly the node settings the KVCluster takes', () => {
    const cluster = schema.properties!.cluster!.properties!.settings as unknown as {
      propertyNames: { enum: string[] };
    };
    expect(cluster.propertyNames.enum).toEqual([...NODE_SETTINGS]);
  });
});

describe('k8s/ RBAC', () => {
  // The chart reads these rules from files/rbac.yaml (a synced copy); k8s/ is rendered from the
  // chart (test/k8s/kustomize.test.ts checks that): the operator's own file is the one source.
  const source = objects('operator/rbac.yaml');
  const rendered = objects('k8s/operator/rbac.yaml');
  const strip = (o: K8sObject) => ({
    kind: o.kind,
    name: o.metadata.name,
    namespace: o.metadata.namespace,
    rules: o.rules,
    subjects: o.subjects,
    roleRef: o.roleRef,
  });

  it('grants exactly what operator/rbac.yaml grants, to the same ServiceAccount', () => {
    const kinds = ['ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding'];
    const pick = (list: K8sObject[]) =>
      list
        .filter((o) => kinds.includes(o.kind))
        .map(strip)
        .sort((a, b) => `${a.kind}/${a.name}`.localeCompare(`${b.kind}/${b.name}`));
    expect(pick(rendered)).toEqual(pick(source));
    const sa = objects('k8s/operator/serviceaccount.yaml')[0]!;
    const want = source.find((o) => o.kind === 'ServiceAccount')!;
    expect([sa.metadata.name, sa.metadata.namespace]).toEqual([
      want.metadata.name,
      want.metadata.namespace,
    ]);
  });

  it('the chart copy of the rules is the operator file', () => {
    expect(read('charts/kvstore/files/rbac.yaml')).toContain(read('operator/rbac.yaml'));
    expect(readFileSync(join(CHART, 'crds/kvclusters.kvstore.dev.yaml'), 'utf8')).toContain(
      read('operator/crd/kvclusters.kvstore.dev.yaml'),
    );
  });
});
