// `kvstore-operator apply-crd` (the chart's CRD upgrade hook): options and the CRD file are checked before any API call.

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { loadApplyCrdOptions, readCrd } from '../../operator/apply-crd.ts';
import { KvError } from '../../src/errors/index.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const dir = mkdtempSync(join(tmpdir(), 'kvstore-apply-crd-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

function configError(f: () => unknown): string {
  try {
    f();
  } catch (err) {
    expect(err).toBeInstanceOf(KvError);
    expect((err as KvError).code).toBe('KV_ERR_CONFIG');
    return (err as KvError).message;
  }
  throw new Error('no error');
}

describe('apply-crd options', () => {
  it('needs --file; takes flags over KVSTORE_CRD_* over defaults', () => {
    const none = loadApplyCrdOptions([], {});
    expect(none).toMatchObject({ kind: 'error' });
    expect(none.kind === 'error' && none.text).toContain('--file (KVSTORE_CRD_FILE)');
    const r = loadApplyCrdOptions(['--file=/crd/crd.yaml', '--timeout-ms', '5000'], {
      KVSTORE_CRD_FIELD_MANAGER: 'gitops',
      KVSTORE_CRD_TIMEOUT_MS: '1',
    });
    expect(r).toEqual({
      kind: 'options',
      options: { file: '/crd/crd.yaml', kubeconfig: '', fieldManager: 'gitops', timeoutMs: 5000 },
    });
    expect(loadApplyCrdOptions(['--file=x'], {})).toMatchObject({
      options: { fieldManager: 'helm', timeoutMs: 60_000 },
    });
    expect(loadApplyCrdOptions(['--help'], {})).toMatchObject({ kind: 'help' });
    expect(loadApplyCrdOptions(['--file=x', '--force'], {})).toMatchObject({
      kind: 'error',
      text: "config: unknown option '--force'",
    });
  });
});

describe('the CRD file', () => {
  it('reads a CRD as plain JSON: every key as written, none renamed by a client model', () => {
    const crd = parse(
      readFileSync(join(ROOT, 'charts/kvstore/crds/kvclusters.kvstore.dev.yaml'), 'utf8'),
    );
    const read = readCrd(file('crd.json', JSON.stringify(crd)));
    expect(read).toEqual(crd);
    const text = JSON.stringify(read);
    expect(text).toContain('"default":');
    expect(text).toContain('"x-kubernetes-validations":');
    expect(text).not.toContain('_default');
  });

  it('refuses a missing file, a non-JSON file and anything but one named v1 CRD, saying which', () => {
    expect(configError(() => readCrd(join(dir, 'absent.json')))).toBe(
      `config: cannot read --file ${join(dir, 'absent.json')}`,
    );
    const yamlFile = file('crd.yaml', 'kind: CustomResourceDefinition\n');
    expect(configError(() => readCrd(yamlFile))).toMatch(/is not JSON: /);
    const v1 = { apiVersion: 'apiextensions.k8s.io/v1', kind: 'CustomResourceDefinition' };
    const cases: [string, unknown][] = [
      ['null.json', null],
      ['list.json', [{ ...v1, metadata: { name: 'x' } }]],
      ['configmap.json', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'x' } }],
      ['beta.json', { ...v1, apiVersion: 'apiextensions.k8s.io/v1beta1', metadata: { name: 'x' } }],
      ['nameless.json', { ...v1, metadata: {} }],
    ];
    for (const [name, doc] of cases) {
      const path = file(name, JSON.stringify(doc));
      expect(
        configError(() => readCrd(path)),
        name,
      ).toBe(
        `config: --file ${path} is not an apiextensions.k8s.io/v1 CustomResourceDefinition with a name`,
      );
    }
  });
});
