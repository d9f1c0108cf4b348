// KVCluster API: the committed CRD is current, structural, and the zod schema validates like it.

import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { loadYaml } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import {
  buildCrd,
  CRD_PATH,
  kvClusterSpecSchema,
  NODE_SETTINGS,
  openApiSchema,
  parseKVCluster,
  renderCrdYaml,
  type SchemaNode,
  STALE_READS_RULE,
  structuralViolations,
  toStructural,
} from '../../operator/api/v1alpha1/index.ts';
import { toYaml } from '../../operator/api/yaml.ts';
import { quorumsOverlap } from '../../src/config/index.ts';

const ROOT = resolve(import.meta.dirname, '../..');

function at(schema: SchemaNode, path: string): SchemaNode {
  let node = schema;
  for (const part of path.split('.')) {
    node = (node.properties as Record<string, SchemaNode>)[part]!;
    expect(node, path).toBeDefined();
  }
  return node;
}

describe('generated CRD', () => {
  it('matches the committed file (run node operator/api/generate-crd.ts when this fails)', () => {
    const committed = readFileSync(resolve(ROOT, CRD_PATH), 'utf8');
    expect(committed).toBe(renderCrdYaml());
  });

  it('parses back as the same object', () => {
    const text = renderCrdYaml();
    // loadYaml re-types built-in kinds through client-node's models, which drop x-kubernetes-*
    // keys; a non-built-in apiVersion keeps the plain parse.
    const parsed = loadYaml<SchemaNode>(text.replace('apiextensions.k8s.io/v1', 'example.test/v1'));
    expect({ ...parsed, apiVersion: 'apiextensions.k8s.io/v1' }).toEqual(buildCrd());
  });

  it('is structural', () => {
    expect(structuralViolations(openApiSchema())).toEqual([]);
  });

  it('has scale and status subresources and printer columns', () => {
    const crd = buildCrd() as { spec: { versions: SchemaNode[]; names: SchemaNode } };
    const v = crd.spec.versions[0]!;
    expect(v.subresources).toEqual({
      status: {},
      scale: {
        specReplicasPath: '.spec.replicas',
        statusReplicasPath: '.status.replicas',
        labelSelectorPath: '.status.selector',
      },
    });
    const columns = (v.additionalPrinterColumns as { name: string }[]).map((c) => c.name);
    expect(columns).toEqual(['Replicas', 'Ready', 'Phase', 'Progress', 'Image', 'Age']);
    expect(crd.spec.names.shortNames).toEqual(['kvc']);
  });

  it('writes quantities as int-or-string and Kubernetes objects as preserved', () => {
    const schema = openApiSchema();
    const limits = at(schema, 'spec.resources.limits').additionalProperties as SchemaNode;
    expect(limits['x-kubernetes-int-or-string']).toBe(true);
    expect(limits.anyOf).toEqual([{ type: 'integer' }, { type: 'string' }]);
    expect(typeof limits.pattern).toBe('string');
    expect(at(schema, 'spec.affinity')).toMatchObject({
      type: 'object',
      'x-kubernetes-preserve-unknown-fields': true,
    });
    expect(at(schema, 'spec.affinity').additionalProperties).toBeUndefined();
    expect(at(schema, 'spec.tolerations').items).toMatchObject({
      'x-kubernetes-preserve-unknown-fields': true,
    });
  });

  it('carries defaults and CEL rules', () => {
    const schema = openApiSchema();
    // Object defaults are written filled in: the apiserver runs CEL rules on defaults as written.
    const parsed = parseKVCluster('x', {});
    expect(at(schema, 'spec').default).toEqual(parsed.ok && parsed.spec);
    expect(at(schema, 'spec.replicas').default).toBe(3);
    expect(at(schema, 'spec.storage').default).toEqual({
      size: '1Gi',
      retainOnScaleDown: false,
      retainOnDelete: true,
    });
    expect(at(schema, 'spec.storage.retainOnDelete').default).toBe(true);
    const rules = (at(schema, 'spec')['x-kubernetes-validations'] as { rule: string }[]).map(
      (r) => r.rule,
    );
    expect(rules).toContain('self.readQuorum <= self.replicationFactor');
    expect(rules).toContain('self.replicationFactor <= self.replicas');
    // Quorums that do not overlap are refused unless the spec accepts stale reads.
    expect(rules).toContain(
      'self.readQuorum + self.writeQuorum > self.replicationFactor || self.allowStaleReads',
    );
    expect(at(schema, 'spec.allowStaleReads')).toMatchObject({ type: 'boolean', default: false });
    // The storage class cannot change; the size may grow (the operator refuses a shrink).
    const storage = JSON.stringify(at(schema, 'spec.storage'));
    expect(storage).toContain('self.storageClassName == oldSelf.storageClassName');
    expect(storage).not.toContain('oldSelf.size');
  });

  it('lists conditions and members as maps (server-side apply merges them by key)', () => {
    const schema = openApiSchema();
    expect(at(schema, 'status.conditions')['x-kubernetes-list-map-keys']).toEqual(['type']);
    expect(at(schema, 'status.members')['x-kubernetes-list-map-keys']).toEqual(['name']);
  });
});

describe('structural check', () => {
  it('finds what the apiserver rejects', () => {
    const bad: SchemaNode = {
      type: 'object',
      properties: {
        a: { $ref: '#/x' },
        b: { anyOf: [{ type: 'string' }, { type: 'number' }] },
        c: { type: 'string', pattern: '^(?!x)' },
        d: { type: 'object', properties: {}, additionalProperties: false },
        e: { description: 'no type' },
      },
    };
    const found = structuralViolations(bad).join('\n');
    expect(found).toContain('.a: $ref');
    expect(found).toContain('.b: anyOf');
    expect(found).toContain('.c: pattern uses lookaround');
    expect(found).toContain('.d: additionalProperties beside properties');
    expect(found).toContain('.e: no type');
  });

  it('toStructural drops zod artifacts', () => {
    const out = toStructural({
      type: 'object',
      properties: { n: { type: 'integer', minimum: Number.MIN_SAFE_INTEGER, maximum: 5 } },
      additionalProperties: false,
    });
    expect(out).toEqual({ type: 'object', properties: { n: { type: 'integer', maximum: 5 } } });
  });
});

describe('parseKVCluster (the operator validates with the same schema)', () => {
  it('fills every default from an empty spec', () => {
    const r = parseKVCluster('demo', {});
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.spec).toMatchObject({
      replicas: 3,
      // The image `npm run image` builds: kvstore:<package.json version>.
      image: `kvstore:${(JSON.parse(readFileSync(resolve(ROOT, 'package.json'), 'utf8')) as { version: string }).version}`,
      replicationFactor: 3,
      readQuorum: 2,
      writeQuorum: 2,
      storage: { size: '1Gi', retainOnScaleDown: false, retainOnDelete: true },
      ports: { client: 8081, http: 9090, peer: 7946 },
      metrics: { enabled: true, serviceMonitor: { enabled: false, interval: '30s' } },
      podDisruptionBudget: { enabled: true, maxUnavailable: 1 },
      paused: false,
    });
  });

  it('applies the CEL rules too, with the same messages', () => {
    const r = parseKVCluster('demo', { replicationFactor: 2, readQuorum: 3 });
    expect(r).toEqual({ ok: false, message: 'spec: readQuorum must not exceed replicationFactor' });
    const p = parseKVCluster('demo', { ports: { client: 1, http: 1 } });
    expect(p.ok ? '' : p.message).toContain('must differ');
    // RF 5 on 3 nodes: the nodes would keep 3 copies, and no scale-down could pass 5.
    const rf = parseKVCluster('demo', { replicas: 3, replicationFactor: 5 });
    expect(rf.ok ? '' : rf.message).toMatch(/^spec: replicationFactor must not exceed replicas/);
    // The default replicationFactor (3) counts: one node needs replicationFactor 1.
    expect(parseKVCluster('demo', { replicas: 1 }).ok).toBe(false);
    const one = { replicas: 1, replicationFactor: 1, readQuorum: 1, writeQuorum: 1 };
    expect(parseKVCluster('demo', one).ok).toBe(true);
  });

  it('leaves quorums that do not overlap to the apiserver: one stored before the rule is not Invalid', () => {
    // R 1 + W 1 <= RF 3: the apiserver refuses it new or changed (STALE_READS_RULE); a
    // KVCluster stored before keeps its pods reconciled and shows the StaleReads condition.
    const weak = { replicas: 3, replicationFactor: 3, readQuorum: 1, writeQuorum: 1 };
    const r = parseKVCluster('demo', weak);
    expect(r.ok && r.spec.allowStaleReads).toBe(false);
    expect(parseKVCluster('demo', { ...weak, allowStaleReads: true }).ok).toBe(true);
    expect(STALE_READS_RULE.check).toBeUndefined();
    expect(STALE_READS_RULE.message).toMatch(/set allowStaleReads: true/);
    // The node's own rule agrees on which quorums overlap.
    expect(quorumsOverlap(weak)).toBe(false);
    expect(quorumsOverlap({ ...weak, writeQuorum: 3 })).toBe(true);
    expect(quorumsOverlap({ replicationFactor: 1, readQuorum: 1, writeQuorum: 1 })).toBe(true);
  });

  it('rejects bad fields and names with a path', () => {
    const r = parseKVCluster('demo', { replicas: 0, storage: { size: 'lots' } });
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.message).toMatch(/spec\.replicas: .*spec\.storage\.size/);
    expect(parseKVCluster('9lives', {}).ok).toBe(false);
    expect(parseKVCluster('a'.repeat(53), {}).ok).toBe(false);
  });

  it("takes node settings by their option names, with the node's own bounds and rules", () => {
    const settings = { maxValueBytes: 4 << 20, maxLineBytes: (4 << 20) + 2048, maxHints: 0 };
    const r = parseKVCluster('demo', { settings });
    expect(r.ok && r.spec.settings).toEqual(settings);
    // A setting the operator owns, or no setting at all: refused, with its path.
    for (const bad of [{ port: 1 }, { maxValueByte: 1 }]) {
      const p = parseKVCluster('demo', { settings: bad });
      expect(p.ok ? '' : p.message).toMatch(/^spec\.settings: Unrecognized key/);
    }
    // The node's bounds: its option's schema is the one checked.
    const low = parseKVCluster('demo', { settings: { maxPeerBufferBytes: 1024 } });
    expect(low.ok ? '' : low.message).toMatch(/^spec\.settings\.maxPeerBufferBytes: /);
    // The rules between options, which the node would refuse at start (a crash loop): a value
    // limit above what a line may hold, a tombstone grace inside the peer timeout.
    const big = parseKVCluster('demo', { settings: { maxValueBytes: 4 << 20 } });
    expect(big).toEqual({
      ok: false,
      message:
        'spec.settings.maxLineBytes: must be at least max-key-bytes + max-value-bytes + 8 so every valid PUT fits',
    });
    const grace = parseKVCluster('demo', { settings: { tombstoneGraceMs: 1000 } });
    expect(grace.ok ? '' : grace.message).toMatch(
      /^spec\.settings\.tombstoneGraceMs: must be more/,
    );
  });

  it("lists every node setting in the CRD with the node's bounds", () => {
    const props = at(openApiSchema(), 'spec.settings').properties as Record<
      string,
      { type: string; minimum?: number; maximum?: number; exclusiveMinimum?: boolean }
    >;
    expect(Object.keys(props)).toEqual([...NODE_SETTINGS]);
    expect(props.maxKeyBytes).toMatchObject({
      type: 'integer',
      minimum: 0,
      exclusiveMinimum: true,
    });
    expect(props.maxKeyBytes!.maximum).toBe(1900);
    expect(props.readRepairChance).toMatchObject({ type: 'number', minimum: 0, maximum: 1 });
    expect(props.antiEntropyIntervalMs).toMatchObject({ type: 'integer', minimum: 0 });
  });

  it('accepts quantities as numbers or strings', () => {
    const r = kvClusterSpecSchema.safeParse({ resources: { limits: { cpu: 2, memory: '512Mi' } } });
    expect(r.success).toBe(true);
    expect(
      kvClusterSpecSchema.safeParse({ resources: { limits: { cpu: '2 cores' } } }).success,
    ).toBe(false);
  });
});

describe('toYaml', () => {
  it('round-trips awkward strings and nesting', () => {
    const value = {
      apiVersion: 'example.test/v1',
      kind: 'X',
      data: ['yes', 'on', '1', 1, null, '', ' a', 'a: b', '#c', { c: [], d: {} }, [1, [2]]],
      'x-k': { true: 'False', multi: 'a\nb', quote: "it's" },
    };
    expect(loadYaml(toYaml(value))).toEqual(value);
  });
});
