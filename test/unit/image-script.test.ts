// scripts/image.sh's checks before it builds: with a real docker CLI and no engine answering (a
// socket path nothing listens on), it must say the engine is missing. Before, the CLI check read
// the client's version through `docker version`, which exits 1 without an engine, and a Docker
// 20.10 CLI (Debian's docker.io, which builds with DOCKER_BUILDKIT=1) was then reported as "no
// docker CLI that builds with BuildKit" (session 36's run with dockerd down).

import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const dir = mkdtempSync(join(tmpdir(), 'kv-image-script-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('scripts/image.sh', () => {
  it('says no Docker engine answers when none does, not that the CLI lacks BuildKit', () => {
    const r = spawnSync('bash', ['scripts/image.sh', 'kvstore:never-built'], {
      encoding: 'utf8',
      env: { ...process.env, DOCKER_HOST: `unix://${join(dir, 'no-engine.sock')}` },
      timeout: 60_000,
    });
    const said = `${r.stdout}${r.stderr}`;
    expect(said).toContain('no Docker engine answers');
    expect(said).not.toContain('no docker CLI that builds with BuildKit');
    expect(r.status).toBe(1);
  });
});
