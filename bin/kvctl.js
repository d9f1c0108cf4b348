#!/usr/bin/env node
// npm bin shim: the compiled JavaScript beside the sources when it is there (the image: `npm run
// build` output, no TypeScript type stripping, about 28 MiB less RSS), else the TypeScript
// sources run directly by Node 24 (type stripping, development).
import { existsSync } from 'node:fs';

const js = new URL('../src/cli/main.js', import.meta.url);
await import(existsSync(js) ? js.href : new URL('../src/cli/main.ts', import.meta.url).href);
