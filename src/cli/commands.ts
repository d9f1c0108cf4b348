// kvctl one-shot commands: one call to the node, its result on stdout, an exit code.

import type { KvClient } from '../client/index.ts';
import type { CliCommand } from './args.ts';

/** Where a command writes; process.stdout/stderr in kvctl, buffers in tests. */
export interface CliOutput {
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream;
}

type OneShot = Exclude<
  CliCommand,
  {
    name:
      | 'shell'
      | 'help'
      | 'cluster'
      | 'decommission'
      | 'decommission-status'
      | 'recommission'
      | 'verify'
      | 'backup'
      | 'restore'
      | 'status';
  }
>;

/**
 * Runs one command and returns the exit code: 0 on success, 1 when get/remove found no key
 * ("(not found)" on stderr). Client errors are thrown to the caller.
 */
export async function runCommand(client: KvClient, cmd: OneShot, out: CliOutput): Promise<number> {
  switch (cmd.name) {
    case 'put':
      await client.put(cmd.key, cmd.value);
      out.stdout.write('OK\n');
      return 0;
    case 'get': {
      const value = await client.get(cmd.key);
      if (value === null) return notFound(out);
      out.stdout.write(`${value}\n`);
      return 0;
    }
    case 'remove':
      if (!(await client.remove(cmd.key))) return notFound(out);
      out.stdout.write('OK\n');
      return 0;
    case 'range': {
      const opts = { limit: cmd.limit, cursor: cmd.cursor };
      const page = await client.range(cmd.start, cmd.end, opts);
      return printKeys(page.keys, page.next, out);
    }
    case 'prefix': {
      const opts = { limit: cmd.limit, cursor: cmd.cursor };
      const page = await client.prefix(cmd.prefix, opts);
      return printKeys(page.keys, page.next, out);
    }
    case 'ping':
      await client.ping();
      out.stdout.write('PONG\n');
      return 0;
    default: {
      const never: never = cmd;
      throw new Error(`kvctl: unhandled command ${JSON.stringify(never)}`);
    }
  }
}

function notFound(out: CliOutput): number {
  out.stderr.write('(not found)\n');
  return 1;
}

function printKeys(keys: readonly string[], next: string | null, out: CliOutput): number {
  if (keys.length > 0) out.stdout.write(`${keys.join('\n')}\n`);
  if (next !== null) out.stderr.write(`next cursor: ${next}\n`);
  return 0;
}

/** Pretty-prints the JSON line CLUSTER answers. */
export function printCluster(json: string, out: CliOutput): number {
  out.stdout.write(`${JSON.stringify(JSON.parse(json), null, 2)}\n`);
  return 0;
}
