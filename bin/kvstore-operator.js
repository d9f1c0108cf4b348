#!/usr/bin/env node
// npm bin shim: Node 24 runs the TypeScript sources directly (type stripping).
import '../operator/main.ts';
