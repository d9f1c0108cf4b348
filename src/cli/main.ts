// kvctl entry: parse the command line, connect, run one command or the shell, set the exit code.

import { KvClient, KvClientError } from '../client/index.ts';
import { HELP, parseArgs, UsageError } from './args.ts';
import { type CliOutput, printCluster, runCommand } from './commands.ts';
import { runShell } from './shell.ts';
import { ConfigError, clientTls, servesTls } from './tls.ts';

/** Runs kvctl with `argv` (after the script name); resolves with the exit code. */
async function main(argv: readonly string[], env: NodeJS.ProcessEnv): Promise<number> {
  const out: CliOutput = { stdout: process.stdout, stderr: process.stderr };
  let client: KvClient | null = null;
  let plainTarget: { host: string; port: number } | null = null;
  try {
    const args = parseArgs(argv, env);
    const cmd = args.command;
    if (cmd.name === 'help') {
      out.stdout.write(HELP);
      return 0;
    }
    const admin = {
      base: `http://${args.host.includes(':') ? `[${args.host}]` : args.host}:${args.httpPort}`,
      // From the environment only, like the password.
      secret: env.KVCTL_CLUSTER_SECRET || null,
    };
    if (cmd.name === 'verify') {
      // Loaded only here: it brings storage and LMDB, which other commands never need.
      const { verify } = await import('./verify.ts');
      return await verify(cmd.dataDir, out);
    }
    if (cmd.name === 'backup') {
      const { backup } = await import('./backup.ts');
      return await backup(admin, cmd, out);
    }
    if (cmd.name === 'restore') {
      const { restore } = await import('./restore.ts');
      return await restore(admin, cmd, out);
    }
    if (
      cmd.name === 'decommission' ||
      cmd.name === 'decommission-status' ||
      cmd.name === 'recommission'
    ) {
      // Loaded only here: the admin schema brings zod, which other commands never need.
      const { decommission, decommissionStatus, recommission } = await import('./admin.ts');
      if (cmd.name === 'recommission') return await recommission(admin, cmd.wait, out);
      return cmd.name === 'decommission'
        ? await decommission(admin, cmd.wait, out)
        : await decommissionStatus(admin, out);
    }
    if (cmd.name === 'status') {
      const { status } = await import('./status.ts');
      return await status(admin, cmd, out);
    }
    const tls = clientTls(args.tls);
    if (tls === null) plainTarget = { host: args.host, port: args.port };
    client = await KvClient.connect({
      host: args.host,
      port: args.port,
      timeoutMs: args.timeoutMs,
      tls,
    });
    const password = env.KVCTL_PASSWORD;
    if (password) {
      // From the environment only: a --password flag would show in `ps`.
      const answer = await client.raw(`AUTH ${password}`);
      if (answer !== 'OK') throw new Error(`AUTH failed: ${answer}`);
    }
    if (cmd.name === 'shell') return await runShell(client, { ...out, stdin: process.stdin });
    if (cmd.name === 'cluster') return printCluster(await client.raw('CLUSTER'), out);
    return await runCommand(client, cmd, out);
  } catch (err) {
    if (err instanceof UsageError) {
      out.stderr.write(`kvctl: ${err.message} (see kvctl --help)\n`);
      return 2;
    }
    if (err instanceof ConfigError) {
      out.stderr.write(`kvctl: ${err.message}\n`);
      return 2;
    }
    const closed = err instanceof KvClientError && err.code === 'CONNECTION_CLOSED';
    if (closed && plainTarget && (await servesTls(plainTarget.host, plainTarget.port))) {
      const { host, port } = plainTarget;
      out.stderr.write(
        `kvctl: ${host}:${port} serves TLS and closed this plain-text connection: use --tls with --tls-ca-file <ca.pem> (or KVCTL_TLS_CA_FILE)\n`,
      );
      return 1;
    }
    out.stderr.write(`kvctl: ${describe(err)}\n`);
    return 1;
  } finally {
    await client?.close().catch(() => {});
  }
}

/** The message of an error, with the node's or client's code and a connect failure's cause. */
function describe(err: unknown): string {
  if (!(err instanceof KvClientError)) return err instanceof Error ? err.message : String(err);
  return err.remote ? `${err.message} (${err.code})` : err.message;
}

// A reader that leaves (`kvctl status --watch | head`) is no error: without this listener the
// EPIPE would end kvctl with a stack trace. A watch then stops at its next table (status.ts),
// and `backup -` reports its own failed write.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code !== 'EPIPE') throw err;
});
process.exitCode = await main(process.argv.slice(2), process.env);
