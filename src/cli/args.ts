// kvctl command line: global options, env fallbacks and per-command arguments (pure).

/** A mistake in how kvctl was called: printed with a hint, exit code 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export type CliCommand =
  | { readonly name: 'put'; readonly key: string; readonly value: string }
  | { readonly name: 'get'; readonly key: string }
  | { readonly name: 'remove'; readonly key: string }
  | {
      readonly name: 'range';
      readonly start: string;
      readonly end: string;
      readonly limit?: number;
      readonly cursor?: string;
    }
  | {
      readonly name: 'prefix';
      readonly prefix: string;
      readonly limit?: number;
      readonly cursor?: string;
    }
  | { readonly name: 'ping' }
  | { readonly name: 'cluster' }
  | { readonly name: 'decommission'; readonly wait: boolean }
  | { readonly name: 'decommission-status' }
  | { readonly name: 'recommission'; readonly wait: boolean }
  | { readonly name: 'status'; readonly watch: boolean; readonly json: boolean }
  | { readonly name: 'shell' }
  | { readonly name: 'verify'; readonly dataDir: string }
  | {
      readonly name: 'backup';
      readonly target: string;
      readonly node?: string;
      readonly summaryFile?: string;
    }
  | {
      readonly name: 'restore';
      readonly source: string;
      readonly force: boolean;
      readonly rateBytes: number;
      readonly summaryFile?: string;
    }
  | { readonly name: 'help' };

/** TLS to the client port: on with --tls, --tls-ca-file or --tls-insecure (or their KVCTL_* vars). */
export interface CliTls {
  /** PEM file of the CA that signed the node's certificate; absent: the system's CAs. */
  readonly caFile?: string;
  /** Skip verifying the node's certificate. */
  readonly insecure: boolean;
}

export interface CliArgs {
  readonly host: string;
  readonly port: number;
  /** The node's HTTP port, for admin commands (decommission). */
  readonly httpPort: number;
  readonly timeoutMs: number;
  /** Null: plain TCP. */
  readonly tls: CliTls | null;
  readonly command: CliCommand;
}

export const HELP = `kvctl: command-line client of a kvstore node

usage: kvctl [--host H] [--port P] [--timeout-ms N] [--tls ...] <command> [args]

commands:
  put <key> <value...>                       store a value (the words joined by spaces)
  get <key>                                  print the value; exit 1 if absent
  remove <key>                               remove a key; exit 1 if absent
  range <start> <end> [--limit n] [--cursor c]  keys with start <= key <= end, one per line
  prefix <prefix> [--limit n] [--cursor c]   keys that start with prefix, one per line
  ping                                       check the node answers (prints PONG)
  cluster                                    members, states, ring shares and transfers (JSON)
  decommission [--wait]                      hand this node's data to the others (admin, HTTP
                                             port); --wait prints progress until it is done
  decommission-status                        the node's decommission state and progress
  recommission [--wait]                      take a decommissioned node back with its data
                                             directory (admin, HTTP port): it drops its stale
                                             records and receives its share again; --wait
                                             prints progress until the ring settled with it
  status [--watch] [--json]                  a table of the members as this node sees them:
                                             state, keys, bytes, owns %, hints, transfer %;
                                             --watch redraws it every 2 s, --json prints the
                                             node's raw view (GET /admin/cluster)
  verify <data-dir>                          check a node's data directory offline (log CRCs,
                                             LMDB file and entries, metadata); exit 1 on problems
  backup <dir|-> [--node NAME]               back up the whole cluster (every key once, newest
                                             version, tombstones included) or NAME's records into
                                             a new directory ({time} in it: the UTC start time),
                                             or as a tar on stdout (-); admin, HTTP port; progress
                                             on stderr (docs/backup.md); --summary-file F: the
                                             outcome as JSON (backup and restore)
  restore <dir|-> [--force] [--rate-bytes N] check a backup (directory, or tar on stdin), then
                                             write every record, version kept, to its owners in
                                             this cluster; refused into a cluster holding data
                                             unless --force; run again to finish an interrupted one
  shell                                      interactive session: type protocol lines
                                             (PUT k v, GET k, RANGE a b LIMIT 10, ...);
                                             reads piped stdin too; exit, quit or EOF leave

options:
  --host H        node address (env KVCTL_HOST, default 127.0.0.1)
  --port P        client port (env KVCTL_PORT, default 8081)
  --http-port P   HTTP/admin port (env KVCTL_HTTP_PORT, default 9090)
  (env KVCTL_PASSWORD: sent with AUTH first, for nodes that require a password)
  (env KVCTL_CLUSTER_SECRET: proves the admin calls (decommission, status) to nodes that
                   have a cluster secret)
  --timeout-ms N  per-request timeout in ms, 0 for none (default 10000)
  --tls           speak TLS to the client port (env KVCTL_TLS=1); the node's certificate is
                  checked against the system CAs and must name --host
  --tls-ca-file F  ... or against the CA in PEM file F (env KVCTL_TLS_CA_FILE); implies --tls;
                  --ca F is the same
  --tls-insecure  TLS without checking the certificate (env KVCTL_TLS_INSECURE=1; testing only);
                  --insecure is the same
  -h, --help      this help

With --limit, when more keys remain, range/prefix print "next cursor: <c>" on stderr;
pass it as --cursor to get the next page. Errors go to stderr as "kvctl: <message>" with
exit code 1; usage mistakes exit 2.
`;

function intOption(name: string, raw: string | undefined, min: number, max: number): number {
  if (raw === undefined || !/^[0-9]+$/.test(raw) || Number(raw) < min || Number(raw) > max) {
    throw new UsageError(`${name} must be an integer from ${min} to ${max}, got '${raw ?? ''}'`);
  }
  return Number(raw);
}

/** Splits `--name=value` into its parts; other words come back as they are. */
function splitEquals(word: string): [string, string | undefined] {
  const eq = word.indexOf('=');
  return word.startsWith('--') && eq !== -1
    ? [word.slice(0, eq), word.slice(eq + 1)]
    : [word, undefined];
}

/**
 * Parses argv (without node and the script). Global options come before the command; env
 * KVCTL_HOST / KVCTL_PORT are the fallbacks. Throws UsageError.
 */
export function parseArgs(argv: readonly string[], env: NodeJS.ProcessEnv): CliArgs {
  let host = env.KVCTL_HOST || '127.0.0.1';
  let port = env.KVCTL_PORT ? intOption('KVCTL_PORT', env.KVCTL_PORT, 1, 65535) : 8081;
  let httpPort = env.KVCTL_HTTP_PORT
    ? intOption('KVCTL_HTTP_PORT', env.KVCTL_HTTP_PORT, 1, 65535)
    : 9090;
  let timeoutMs = 10_000;
  let useTls = envFlag(env, 'KVCTL_TLS');
  let insecure = envFlag(env, 'KVCTL_TLS_INSECURE');
  let caFile = env.KVCTL_TLS_CA_FILE || undefined;
  const tlsOf = (): CliTls | null =>
    useTls || insecure || caFile ? { insecure, ...(caFile ? { caFile } : {}) } : null;
  let i = 0;
  for (; i < argv.length; i++) {
    const [flag, inline] = splitEquals(argv[i]!);
    if (flag === '-h' || flag === '--help')
      return { host, port, httpPort, timeoutMs, tls: tlsOf(), command: { name: 'help' } };
    if (!flag.startsWith('-')) break;
    if (flag === '--tls' || flag === '--tls-insecure' || flag === '--insecure') {
      if (inline !== undefined) throw new UsageError(`${flag} takes no value`);
      if (flag === '--tls') useTls = true;
      else insecure = true;
      continue;
    }
    const value = inline ?? argv[++i];
    switch (flag) {
      case '--tls-ca-file':
      case '--ca':
        if (!value) throw new UsageError(`${flag} needs a value`);
        caFile = value;
        break;
      case '--host':
        if (!value) throw new UsageError('--host needs a value');
        host = value;
        break;
      case '--port':
        port = intOption('--port', value, 1, 65535);
        break;
      case '--http-port':
        httpPort = intOption('--http-port', value, 1, 65535);
        break;
      case '--timeout-ms':
        timeoutMs = intOption('--timeout-ms', value, 0, 2_147_483_647);
        break;
      default:
        throw new UsageError(`unknown option '${flag}'`);
    }
  }
  const name = argv[i];
  if (name === undefined) throw new UsageError('no command given');
  const command = parseCommand(name, argv.slice(i + 1));
  return { host, port, httpPort, timeoutMs, tls: tlsOf(), command };
}

/** A boolean KVCTL_* variable: 1/true/yes on, 0/false/no/empty off; anything else is a mistake. */
function envFlag(env: NodeJS.ProcessEnv, name: string): boolean {
  const raw = (env[name] ?? '').toLowerCase();
  if (raw === '' || raw === '0' || raw === 'false' || raw === 'no') return false;
  if (raw === '1' || raw === 'true' || raw === 'yes') return true;
  throw new UsageError(`${name} must be 1 or 0, got '${env[name]}'`);
}

function exactly(name: string, args: readonly string[], n: number, want: string): void {
  if (args.length !== n) throw new UsageError(`${name} expects ${want}`);
}

function parseCommand(name: string, args: readonly string[]): CliCommand {
  switch (name) {
    case 'put':
      if (args.length < 2) throw new UsageError('put expects <key> <value...>');
      return { name, key: args[0]!, value: args.slice(1).join(' ') };
    case 'get':
    case 'remove':
      exactly(name, args, 1, '<key>');
      return { name, key: args[0]! };
    case 'range': {
      const { positional, limit, cursor } = scanArgs(name, args);
      exactly(name, positional, 2, '<start> <end> [--limit n] [--cursor c]');
      return { name, start: positional[0]!, end: positional[1]!, limit, cursor };
    }
    case 'prefix': {
      const { positional, limit, cursor } = scanArgs(name, args);
      exactly(name, positional, 1, '<prefix> [--limit n] [--cursor c]');
      return { name, prefix: positional[0]!, limit, cursor };
    }
    case 'ping':
    case 'shell':
    case 'cluster':
    case 'decommission-status':
      exactly(name, args, 0, 'no arguments');
      return { name };
    case 'decommission':
    case 'recommission':
      if (args.length > 1 || (args.length === 1 && args[0] !== '--wait')) {
        throw new UsageError(`${name} expects [--wait]`);
      }
      return { name, wait: args.length === 1 };
    case 'status': {
      const unknown = args.filter((a) => a !== '--watch' && a !== '--json');
      if (unknown.length > 0) throw new UsageError('status expects [--watch] [--json]');
      return { name, watch: args.includes('--watch'), json: args.includes('--json') };
    }
    case 'verify':
      exactly(name, args, 1, '<data-dir>');
      return { name, dataDir: args[0]! };
    case 'backup': {
      const { positional, values } = options(name, args, ['--node', '--summary-file'], []);
      exactly(name, positional, 1, '<dir|-> [--node NAME] [--summary-file F]');
      const node = values.get('--node');
      const summaryFile = values.get('--summary-file');
      return {
        name,
        target: positional[0]!,
        ...(node ? { node } : {}),
        ...(summaryFile ? { summaryFile } : {}),
      };
    }
    case 'restore': {
      const valued = ['--rate-bytes', '--summary-file'];
      const { positional, values, flags } = options(name, args, valued, ['--force']);
      exactly(name, positional, 1, '<dir|-> [--force] [--rate-bytes N] [--summary-file F]');
      const rate = values.get('--rate-bytes');
      const rateBytes = rate === undefined ? 0 : intOption('--rate-bytes', rate, 1, 2 ** 40);
      const summaryFile = values.get('--summary-file');
      const force = flags.has('--force');
      return {
        name,
        source: positional[0]!,
        force,
        rateBytes,
        ...(summaryFile ? { summaryFile } : {}),
      };
    }
    case 'help':
      return { name };
    default:
      throw new UsageError(`unknown command '${name}'`);
  }
}

/** Splits a command's words into positionals, `--name value` options and `--flag`s. */
function options(
  name: string,
  args: readonly string[],
  valued: readonly string[],
  bare: readonly string[],
): { positional: string[]; values: Map<string, string>; flags: Set<string> } {
  const out = {
    positional: [] as string[],
    values: new Map<string, string>(),
    flags: new Set<string>(),
  };
  for (let i = 0; i < args.length; i++) {
    const [flag, inline] = splitEquals(args[i]!);
    if (!flag.startsWith('--') || flag === '-') {
      out.positional.push(args[i]!);
    } else if (valued.includes(flag)) {
      const value = inline ?? args[++i];
      if (!value) throw new UsageError(`${name}: ${flag} needs a value`);
      out.values.set(flag, value);
    } else if (bare.includes(flag) && inline === undefined) {
      out.flags.add(flag);
    } else {
      throw new UsageError(`${name}: unknown option '${flag}'`);
    }
  }
  return out;
}

interface ScanArgs {
  positional: string[];
  limit: number | undefined;
  cursor: string | undefined;
}

/** Separates --limit/--cursor from the positional arguments of range/prefix; `--` ends options. */
function scanArgs(name: string, args: readonly string[]): ScanArgs {
  const out: ScanArgs = { positional: [], limit: undefined, cursor: undefined };
  let optionsEnded = false;
  for (let i = 0; i < args.length; i++) {
    const [flag, inline] = splitEquals(args[i]!);
    if (optionsEnded || !flag.startsWith('--')) {
      out.positional.push(args[i]!);
    } else if (flag === '--') {
      optionsEnded = true;
    } else if (flag === '--limit') {
      out.limit = intOption('--limit', inline ?? args[++i], 1, 1_000_000_000);
    } else if (flag === '--cursor') {
      const value = inline ?? args[++i];
      if (!value) throw new UsageError('--cursor needs a value');
      out.cursor = value;
    } else {
      throw new UsageError(`${name}: unknown option '${flag}' (use -- before keys starting --)`);
    }
  }
  if (out.cursor !== undefined && out.limit === undefined) {
    throw new UsageError(`${name}: --cursor needs --limit`);
  }
  return out;
}
