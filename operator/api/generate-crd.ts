// Writes operator/crd/kvclusters.kvstore.dev.yaml from the zod schema; `--check` fails when stale.

import { readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { CRD_PATH, renderCrdYaml } from './v1alpha1/index.ts';

const file = resolve(import.meta.dirname, '../..', CRD_PATH);
const text = renderCrdYaml();
if (process.argv.includes('--check')) {
  let current = '';
  try {
    current = readFileSync(file, 'utf8');
  } catch {
    // missing counts as stale
  }
  if (current !== text) {
    process.stderr.write(`${CRD_PATH} is stale: run node operator/api/generate-crd.ts\n`);
    process.exitCode = 1;
  }
} else {
  writeFileSync(file, text);
  process.stdout.write(`wrote ${CRD_PATH}\n`);
}
