// A writer for the rolling-upgrade test, run on the node's network (nsenter) against a Service's ClusterIP: writes w-0, w-1, ... one at a time, prints `ACK <key>` for each OK, reconnects after a failure, stops on SIGTERM with `DONE <acked> <failed>`.
//
// Usage: node test/k8s/cluster-writer.ts <host> <port> <prefix>

import { KvClient } from '../../src/client/index.ts';

const [host, port, prefix] = process.argv.slice(2);
if (!host || !port || !prefix) {
  console.error('usage: cluster-writer.ts <host> <port> <prefix>');
  process.exit(2);
}
let stopping = false;
process.on('SIGTERM', () => {
  stopping = true;
});
let acked = 0;
let failed = 0;
let client: KvClient | undefined;
for (let i = 0; !stopping; ) {
  const key = `${prefix}-${i}`;
  try {
    client ??= await KvClient.connect({ host, port: Number(port), timeoutMs: 5_000 });
    await client.put(key, `value of ${key}`);
    console.log(`ACK ${key}`);
    acked++;
    i++;
  } catch {
    // Unacknowledged: written again (same key, same value) on a new connection.
    failed++;
    await client?.close().catch(() => {});
    client = undefined;
    await new Promise((r) => setTimeout(r, 200));
  }
}
await client?.close().catch(() => {});
console.log(`DONE ${acked} ${failed}`);
