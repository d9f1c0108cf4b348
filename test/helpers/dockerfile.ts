// Reads the Dockerfile and .dockerignore the way Docker does, so tests can run the image's steps as plain processes.

import { cpSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, posix } from 'node:path';

export interface Instruction {
  /** Upper-case keyword: FROM, RUN, COPY, ENV, ... */
  readonly keyword: string;
  /** Everything after the keyword, continuation lines joined with a space. */
  readonly rest: string;
}

export interface Stage {
  readonly image: string;
  readonly name: string | null;
  readonly instructions: readonly Instruction[];
}

export interface Dockerfile {
  /** ARGs declared before the first FROM, with their defaults. */
  readonly args: Readonly<Record<string, string>>;
  readonly stages: readonly Stage[];
}

/** Splits a Dockerfile into stages of instructions (comments dropped, `\` continuations joined). */
export function parseDockerfile(text: string): Dockerfile {
  const logical: string[] = [];
  let current = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('#') || (line === '' && current === '')) continue;
    if (line.endsWith('\\')) {
      current += `${line.slice(0, -1).trim()} `;
      continue;
    }
    logical.push((current + line).trim());
    current = '';
  }
  const args: Record<string, string> = {};
  const stages: { image: string; name: string | null; instructions: Instruction[] }[] = [];
  for (const line of logical.filter((l) => l !== '')) {
    const m = /^(\S+)\s*(.*)$/s.exec(line)!;
    const ins = { keyword: m[1]!.toUpperCase(), rest: m[2]! };
    if (ins.keyword === 'FROM') {
      const [image, as, name] = ins.rest.split(/\s+/);
      const resolved = image!.replace(/\$\{(\w+)\}|\$(\w+)/g, (_, a, b) => args[a ?? b] ?? '');
      stages.push({
        image: resolved,
        name: as?.toUpperCase() === 'AS' ? name! : null,
        instructions: [],
      });
    } else if (stages.length === 0 && ins.keyword === 'ARG') {
      const [k, v] = ins.rest.split('=', 2);
      args[k!] = v ?? '';
    } else if (stages.length > 0) {
      stages.at(-1)!.instructions.push(ins);
    }
  }
  return { args, stages };
}

export function readDockerfile(root: string): Dockerfile {
  return parseDockerfile(readFileSync(join(root, 'Dockerfile'), 'utf8'));
}

/** The instructions of a stage with `keyword`. */
export function all(stage: Stage, keyword: string): Instruction[] {
  return stage.instructions.filter((i) => i.keyword === keyword);
}

/** The last instruction with `keyword` (ENTRYPOINT, CMD, USER, WORKDIR...), which is the one in force. */
export function last(stage: Stage, keyword: string): Instruction | undefined {
  return all(stage, keyword).at(-1);
}

/** An exec-form (JSON array) argument list; throws on shell form (we use exec form only). */
export function execForm(ins: Instruction | undefined): string[] {
  if (!ins) return [];
  const parsed: unknown = JSON.parse(ins.rest);
  if (!Array.isArray(parsed) || !parsed.every((s) => typeof s === 'string')) {
    throw new Error(`${ins.keyword} is not in exec form: ${ins.rest}`);
  }
  return parsed;
}

/** The environment a stage's ENV instructions set (`ENV K=V K2="v 2"` form). */
export function stageEnv(stage: Stage): Record<string, string> {
  const env: Record<string, string> = {};
  for (const ins of all(stage, 'ENV')) {
    for (const m of ins.rest.matchAll(/(\w+)=("([^"]*)"|\S*)/g)) env[m[1]!] = m[3] ?? m[2]!;
  }
  return env;
}

/** `ln -s <target> <link>` commands in a stage's RUN lines. */
export function symlinks(stage: Stage): { target: string; link: string }[] {
  return runCommands(stage)
    .map((c) => /^ln -s(?:f)? (\S+) (\S+)$/.exec(c))
    .filter((m) => m !== null)
    .map((m) => ({ target: m[1]!, link: m[2]! }));
}

/** A stage's RUN lines split at `&&` into single commands. */
export function runCommands(stage: Stage): string[] {
  return all(stage, 'RUN').flatMap((i) => i.rest.split('&&').map((c) => c.trim()));
}

/** COPY sources and destination, with its --from stage (null: the build context). */
export function copySpec(ins: Instruction): {
  from: string | null;
  sources: string[];
  dest: string;
} {
  const words = ins.rest.split(/\s+/);
  let from: string | null = null;
  while (words[0]?.startsWith('--')) {
    const flag = words.shift()!;
    if (flag.startsWith('--from=')) from = flag.slice('--from='.length);
  }
  const dest = words.pop()!;
  return { from, sources: words, dest };
}

/** A .dockerignore matcher: Docker's rules (last matching pattern wins; a pattern matches a path or any parent). */
export function dockerignore(text: string): (path: string) => boolean {
  const patterns = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => {
      const negate = l.startsWith('!');
      const body = posix.normalize(l.slice(negate ? 1 : 0).replace(/^\/+/, '')).replace(/\/+$/, '');
      return { negate, re: globToRegExp(body) };
    });
  return (path: string) => {
    const parts = path.split('/');
    const prefixes = parts.map((_, i) => parts.slice(0, i + 1).join('/'));
    let excluded = false;
    for (const p of patterns) {
      if (prefixes.some((x) => p.re.test(x))) excluded = !p.negate;
    }
    return excluded;
  };
}

function globToRegExp(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*' && glob[i + 1] === '*') {
      // `**/` matches zero or more directories; a trailing `**` matches anything.
      re += glob[i + 2] === '/' ? '(?:.*/)?' : '.*';
      i += glob[i + 2] === '/' ? 2 : 1;
    } else if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

/**
 * The build context: every file under `root` (relative paths) that .dockerignore keeps. Excluded
 * directories are not walked unless a `!` pattern could re-include something inside them.
 */
export function contextFiles(root: string): string[] {
  const ignoreText = readFileSync(join(root, '.dockerignore'), 'utf8');
  const ignored = dockerignore(ignoreText);
  const negations = ignoreText
    .split('\n')
    .filter((l) => l.trim().startsWith('!'))
    .map((l) => l.trim().slice(1).replace(/^\/+/, ''));
  const out: string[] = [];
  const walk = (rel: string): void => {
    for (const name of readdirSync(join(root, rel))) {
      const path = rel === '' ? name : `${rel}/${name}`;
      const isDir = statSync(join(root, path)).isDirectory();
      if (isDir) {
        const reinclude = negations.some((n) => n.startsWith(`${path}/`) || n.includes('*'));
        if (!ignored(path) || reinclude) walk(path);
      } else if (!ignored(path)) out.push(path);
    }
  };
  walk('');
  return out.sort();
}

/**
 * Runs one COPY from the build context: copies the kept files under each source into `destDir`
 * (the directory `dest` denotes inside the stage), as Docker does (a directory's contents, a file
 * by name). Throws when a source matches nothing, as `docker build` fails.
 */
export function copyFromContext(
  root: string,
  files: readonly string[],
  sources: string[],
  destDir: string,
): void {
  for (const src of sources) {
    const s = posix.normalize(src).replace(/^\.\//, '').replace(/\/+$/, '');
    const matched = files.filter((f) => f === s || f.startsWith(`${s}/`));
    if (matched.length === 0) throw new Error(`COPY ${src}: no such file in the build context`);
    for (const f of matched) {
      const target =
        f === s ? join(destDir, posix.basename(f)) : join(destDir, f.slice(s.length + 1));
      mkdirSync(dirname(target), { recursive: true });
      cpSync(join(root, f), target, { preserveTimestamps: true });
    }
  }
}
