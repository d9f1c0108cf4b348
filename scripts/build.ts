// `npm run build`: src/ and operator/ compiled to JavaScript in dist/ (tsc, tsconfig.build.json).
//
// Node 24 runs the .ts sources directly, but its type stripping keeps a WebAssembly compiler in
// every process (about 28 MiB more RSS for an empty node, measured by `npm run bench`). The image
// runs this output (the Dockerfile copies dist/src over src/, where the bin shims look first);
// development, tests and the repository's bins run the sources. The layout mirrors the sources
// (dist/src, dist/operator, dist/package.json), with the files that are not TypeScript (console
// assets, operator manifests) copied beside the compiled modules, so relative paths still hold.
//
// Usage: node scripts/build.ts [--out-dir DIR]   (default dist/; DIR is replaced; --help)

import { execFileSync } from 'node:child_process';
import { cpSync, readdirSync, rmSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';

const ROOT = resolve(import.meta.dirname, '..');
const USAGE = `Usage: node scripts/build.ts [--out-dir DIR]   (npm run build)
  Compiles src/ and operator/ to JavaScript in DIR (default dist/, replaced) with tsc
  (tsconfig.build.json) and copies the files that are not TypeScript beside them.`;
const { values } = parseArgs({
  options: { 'out-dir': { type: 'string' }, help: { type: 'boolean', default: false } },
});
if (values.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}
const out = resolve(values['out-dir'] ?? join(ROOT, 'dist'));

rmSync(out, { recursive: true, force: true });
const tsc = join(ROOT, 'node_modules/typescript/bin/tsc');
execFileSync(process.execPath, [tsc, '-p', join(ROOT, 'tsconfig.build.json'), '--outDir', out], {
  stdio: 'inherit',
});
let copied = 0;
for (const top of ['src', 'operator']) {
  for (const f of readdirSync(join(ROOT, top), { recursive: true, withFileTypes: true })) {
    if (!f.isFile() || f.name.endsWith('.ts')) continue;
    const from = join(f.parentPath, f.name);
    cpSync(from, join(out, relative(ROOT, from)));
    copied++;
  }
}
process.stdout.write(
  `build: ${relative(process.cwd(), out) || '.'} (tsc, ${copied} other files)\n`,
);
