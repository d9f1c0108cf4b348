// Finding sockets' lines in the kernel's TCP tables (/proc/net/tcp, tcp6): read in pieces off
// the event loop, stopping once every socket asked for is found.

/** What each read of the table asks the kernel for (a few hundred lines). */
const PIECE_BYTES = 64 * 1024;

type Answer = (fields: string[] | null) => void;
/** The sockets a scan looks for (`local remote`, as the table writes them), and who asked. */
type Wanted = Map<string, Answer[]>;

/** The scan now reading each file, and the sockets asked for while it runs (the next scan's). */
const scans = new Map<string, { next: Wanted | null }>();

/**
 * The fields of the line of `file` (/proc/net/tcp or tcp6) whose local and remote addresses are
 * `local` and `remote` (procNetAddress), split on whitespace (`sl local rem st tx:rx ...`); null
 * when no line has them or the file cannot be read (no procfs). The table lists every TCP socket
 * of the network namespace (megabytes on a host with many), and the kernel makes it as it is
 * read: one scan at a time reads each file, in PIECE_BYTES reads off the event loop, and stops
 * at the line of the last socket it looks for. Sockets asked for while a scan runs are looked
 * for together by the next one, which starts when it ends (the lines already read may have
 * passed theirs).
 */
export function tcpLine(file: string, local: string, remote: string): Promise<string[] | null> {
  return new Promise((resolve) => {
    const key = `${local} ${remote}`;
    const running = scans.get(file);
    if (running === undefined) {
      const wanted: Wanted = new Map([[key, [resolve]]]);
      const scan = { next: null as Wanted | null };
      scans.set(file, scan);
      void runScans(file, wanted, scan);
      return;
    }
    running.next ??= new Map();
    const answers = running.next.get(key);
    if (answers === undefined) running.next.set(key, [resolve]);
    else answers.push(resolve);
  });
}

/** Scans `file` for `wanted`, then for what was asked meanwhile, until nothing is. */
async function runScans(file: string, first: Wanted, scan: { next: Wanted | null }) {
  let wanted: Wanted | null = first;
  while (wanted !== null) {
    await scanFor(file, wanted);
    wanted = scan.next;
    scan.next = null;
  }
  scans.delete(file);
}

/** Scans of the tables begun since the process started (tests count what callers cost). */
let scansBegun = 0;

/** How many scans of /proc/net/tcp or tcp6 tcpLine has begun in this process. */
export function tcpScansBegun(): number {
  return scansBegun;
}

/** One read of `file` from its start, answering each of `wanted` (null: not found). */
async function scanFor(file: string, wanted: Wanted): Promise<void> {
  scansBegun++;
  const answer = (key: string, fields: string[] | null) => {
    for (const a of wanted.get(key) ?? []) a(fields);
    wanted.delete(key);
  };
  const { open } = process.getBuiltinModule('node:fs/promises');
  let handle: Awaited<ReturnType<typeof open>> | null = null;
  try {
    handle = await open(file, 'r');
    const piece = Buffer.allocUnsafe(PIECE_BYTES);
    let partial = '';
    let ended = false;
    while (wanted.size > 0 && !ended) {
      const { bytesRead } = await handle.read(piece, 0, PIECE_BYTES, null);
      ended = bytesRead === 0;
      // Whole lines only: a socket's addresses may be cut between two reads.
      const text = partial + piece.toString('latin1', 0, bytesRead);
      const cut = ended ? text.length : text.lastIndexOf('\n') + 1;
      partial = text.slice(cut);
      const lines = text.slice(0, cut);
      for (const key of [...wanted.keys()]) {
        const at = lines.indexOf(` ${key} `);
        if (at < 0) continue;
        const end = lines.indexOf('\n', at);
        answer(
          key,
          lines
            .slice(at, end < 0 ? undefined : end)
            .trim()
            .split(/\s+/),
        );
      }
    }
  } catch {
    // No such file (another OS), or a read refused: not known.
  } finally {
    for (const key of [...wanted.keys()]) answer(key, null);
    await handle?.close().catch(() => {});
  }
}
