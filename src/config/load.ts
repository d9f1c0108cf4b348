// Builds the configuration from defaults, KV_* environment variables and --flags, in that order.

import { envNameWith, flagName, parseOptions } from './flags.ts';
import { type Config, configSchema, DEFAULTS, HELP } from './schema.ts';

export { flagName };

/** camelCase option -> `KV_UPPER_SNAKE` environment variable. */
export function envName(key: string): string {
  return envNameWith('KV', key);
}

export type LoadResult =
  | { readonly kind: 'config'; readonly config: Config }
  | { readonly kind: 'help'; readonly text: string }
  | { readonly kind: 'error'; readonly text: string };

const KEYS = Object.keys(DEFAULTS) as (keyof Config)[];

/** Parses argv (without node and script) and env. Never exits: main decides what to do. */
export function loadConfig(argv: readonly string[], env: NodeJS.ProcessEnv): LoadResult {
  const r = parseOptions({
    schema: configSchema,
    defaults: DEFAULTS,
    envPrefix: 'KV',
    module: 'config',
    argv,
    env,
  });
  if (r.kind === 'help') return { kind: 'help', text: helpText() };
  if (r.kind === 'error') return r;
  const config = r.value;
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
