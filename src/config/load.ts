// Builds the configuration from defaults, KV_* environment variables and --flags, in that order.

import { envNameWith, flagName, formatHelp, parseOptions } from './flags.ts';
import { type Config, configSchema, DEFAULTS } from './schema.ts';

export { flagName };

/** Option -> its `KV_UPPER_SNAKE` environment variable (a typo in `key` does not compile). */
export function envName(key: keyof Config): string {
  return envNameWith('KV', key);
}

export type LoadResult =
  | { readonly kind: 'config'; readonly config: Config }
  | { readonly kind: 'help'; readonly text: string }
  | { readonly kind: 'error'; readonly text: string };

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
  return formatHelp({
    intro: [
      'Usage: kvstore [options]',
      '',
      'Every option is also read from the environment variable beside it; flags win.',
    ],
    shape: configSchema.shape,
    envPrefix: 'KV',
    flagWidth: 26,
    envWidth: 24,
  });
}
