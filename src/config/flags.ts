// Shared by every entry point: `--kebab-flag value` over `PREFIX_UPPER_SNAKE` env over defaults, and --help from the schema.

import type * as z from 'zod';

/** Options as a zod object shape: each with `.default()` and `.describe()` (its --help line). */
export type OptionShape = Readonly<Record<string, z.ZodType>>;

/** Each option's default (what parsing nothing gives). Throws for an option without one. */
export function defaultsOf<S extends OptionShape>(shape: S): { [K in keyof S]: z.output<S[K]> } {
  const out: Record<string, unknown> = {};
  for (const [key, schema] of Object.entries(shape)) {
    const r = schema.safeParse(undefined);
    if (!r.success || r.data === undefined) throw new Error(`config: option ${key} has no default`);
    out[key] = r.data;
  }
  return out as { [K in keyof S]: z.output<S[K]> };
}

/**
 * The --help text: `intro` lines, a blank line, then one row per option of `shape` (flag,
 * `<envPrefix>_*` variable, its description, its default) padded to the given widths, and --help.
 */
export function formatHelp(opts: {
  readonly intro: readonly string[];
  readonly shape: OptionShape;
  readonly envPrefix: string;
  readonly flagWidth: number;
  readonly envWidth: number;
}): string {
  const { shape, envPrefix, flagWidth, envWidth } = opts;
  const defaults = defaultsOf(shape);
  const rows = Object.entries(shape).map(([key, schema]) => {
    const flag = `${flagName(key)} <v>`.padEnd(flagWidth);
    const env = envNameWith(envPrefix, key).padEnd(envWidth);
    return `  ${flag} ${env} ${schema.description} (default ${JSON.stringify(defaults[key])})`;
  });
  return [
    ...opts.intro,
    '',
    ...rows,
    `  ${'--help'.padEnd(flagWidth)} ${''.padEnd(envWidth)} print this text`,
  ].join('\n');
}

/** camelCase option -> `--kebab-case` flag. */
export function flagName(key: string): string {
  return `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
}

/** camelCase option -> `<prefix>_UPPER_SNAKE` environment variable. */
export function envNameWith(prefix: string, key: string): string {
  return `${prefix}_${key.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`;
}

/** `error` text is one line: `<module>: <flag> (<VAR>): <problem>[; ...]`. */
export type Parsed<T> =
  | { readonly kind: 'ok'; readonly value: T }
  | { readonly kind: 'help' }
  | { readonly kind: 'error'; readonly text: string };

/**
 * Builds the raw options from `defaults`, then `<envPrefix>_*` variables, then flags (later
 * wins), and validates them with `schema`. Errors name the flag and the variable; `module`
 * starts every message. Never exits.
 */
export function parseOptions<S extends z.ZodType>(opts: {
  readonly schema: S;
  readonly defaults: Readonly<Record<string, unknown>>;
  readonly envPrefix: string;
  readonly module: string;
  readonly argv: readonly string[];
  readonly env: NodeJS.ProcessEnv;
}): Parsed<z.output<S>> {
  const { defaults, envPrefix, module } = opts;
  const keys = Object.keys(defaults);
  const raw: Record<string, unknown> = { ...defaults };
  for (const key of keys) {
    const v = opts.env[envNameWith(envPrefix, key)];
    if (v !== undefined) raw[key] = v;
  }
  const byFlag = new Map(keys.map((k) => [flagName(k), k]));
  for (let i = 0; i < opts.argv.length; i++) {
    const arg = opts.argv[i]!;
    if (arg === '--help' || arg === '-h') return { kind: 'help' };
    const eq = arg.indexOf('=');
    const flag = eq === -1 ? arg : arg.slice(0, eq);
    const key = byFlag.get(flag);
    if (key === undefined) return { kind: 'error', text: `${module}: unknown option '${flag}'` };
    const value = eq === -1 ? opts.argv[++i] : arg.slice(eq + 1);
    if (value === undefined) return { kind: 'error', text: `${module}: ${flag} needs a value` };
    raw[key] = value;
  }
  const parsed = opts.schema.safeParse(raw);
  if (parsed.success) return { kind: 'ok', value: parsed.data };
  const problems = parsed.error.issues.map((issue) => {
    const key = String(issue.path[0] ?? '');
    const where = key ? `${flagName(key)} (${envNameWith(envPrefix, key)})` : 'options';
    return `${where}: ${issue.message}`;
  });
  return { kind: 'error', text: `${module}: ${problems.join('; ')}` };
}
