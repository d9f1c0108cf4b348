// Builds the configuration from defaults, KV_* environment variables and --flags, in that order.

import { type Config, configSchema, DEFAULTS, HELP } from './schema.ts';

/** camelCase option -> `--kebab-case` flag. */
export function flagName(key: string): string {
  return `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
}

/** camelCase option -> `KV_UPPER_SNAKE` environment variable. */
export function envName(key: string): string {
  return `KV_${key.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`;
}

export type LoadResult =
  | { readonly kind: 'config'; readonly config: Config }
  | { readonly kind: 'help'; readonly text: string }
  | { readonly kind: 'error'; readonly text: string };

const KEYS = Object.keys(DEFAULTS) as (keyof Config)[];

/** Parses argv (without node and script) and env. Never exits: main decides what to do. */
export function loadConfig(argv: readonly string[], env: NodeJS.ProcessEnv): LoadResult {
  const raw: Record<string, unknown> = { ...DEFAULTS };
  for (const key of KEYS) {
    const v = env[envName(key)];
    if (v !== undefined) raw[key] = v;
  }
  const byFlag = new Map(KEYS.map((k) => [flagName(k), k]));
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--help' || arg === '-h') return { kind: 'help', text: helpText() };
    const eq = arg.indexOf('=');
    const flag = eq === -1 ? arg : arg.slice(0, eq);
    const key = byFlag.get(flag);
    if (key === undefined) return { kind: 'error', text: `config: unknown option '${flag}'` };
    const value = eq === -1 ? argv[++i] : arg.slice(eq + 1);
    if (value === undefined) return { kind: 'error', text: `config: ${flag} needs a value` };
    raw[key] = value;
  }
  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((issue) => {
      const key = String(issue.path[0] ?? '');
      const where = key ? `${flagName(key)} (${envName(key)})` : 'config';
      return `  ${where}: ${issue.message}`;
    });
    return { kind: 'error', text: `config: invalid configuration\n${lines.join('\n')}` };
  }
  const config = parsed.data;
  return {
    kind: 'config',
    config: {
      ...config,
      httpHost: config.httpHost || config.host,
      peerHost: config.peerHost || config.host,
    },
  };
}

/** The text of `kvstore --help`: every option, its variable and its default. */
export function helpText(): string {
  const rows = KEYS.map((k) => {
    const def = JSON.stringify(DEFAULTS[k]);
    return `  ${`${flagName(k)} <v>`.padEnd(26)} ${envName(k).padEnd(24)} ${HELP[k]} (default ${def})`;
  });
  return [
    'Usage: kvstore [options]',
    '',
    'Every option is also read from the environment variable beside it; flags win.',
    '',
    ...rows,
    `  ${'--help'.padEnd(26)} ${''.padEnd(24)} print this text`,
  ].join('\n');
}
