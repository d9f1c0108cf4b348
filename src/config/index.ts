// config: the node's one configuration schema, its defaults, and loading from flags and KV_* env.

export {
  defaultsOf,
  envNameWith,
  formatHelp,
  type OptionShape,
  type Parsed,
  parseOptions,
} from './flags.ts';
export { envName, flagName, helpText, type LoadResult, loadConfig } from './load.ts';
export {
  type Config,
  configSchema,
  DEFAULTS,
  MAX_TIMER_MS,
  MAX_VALUE_BYTES,
  quorumsOverlap,
} from './schema.ts';
