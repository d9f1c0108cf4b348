// A Chrome DevTools Protocol session with a node started with `--inspect` (Node 24 has a WebSocket
// client built in): what the memory probe's forced GC and the goal profiles speak.

export interface Inspector {
  /** Sends one CDP command; resolves with its result, rejects with its error. */
  call(method: string, params?: object): Promise<unknown>;
  close(): void;
}

/** Connects to the first target the inspector at `host:port` lists. */
export async function openInspector(port: number, host = '127.0.0.1'): Promise<Inspector> {
  const list = (await (await fetch(`http://${host}:${port}/json/list`)).json()) as {
    webSocketDebuggerUrl: string;
  }[];
  if (list[0] === undefined)
    throw new Error(`bench: the inspector at ${host}:${port} lists no target`);
  const ws = new WebSocket(list[0].webSocketDebuggerUrl);
  await new Promise((res, rej) => {
    ws.addEventListener('open', res);
    ws.addEventListener('error', () => rej(new Error('bench: inspector connection failed')));
  });
  const pending = new Map<number, { res: (r: unknown) => void; rej: (e: Error) => void }>();
  ws.addEventListener('message', (e) => {
    const m = JSON.parse(String(e.data)) as {
      id?: number;
      result?: unknown;
      error?: { message: string };
    };
    if (m.id === undefined) return;
    const p = pending.get(m.id);
    pending.delete(m.id);
    if (m.error !== undefined) p?.rej(new Error(`bench: inspector: ${m.error.message}`));
    else p?.res(m.result);
  });
  ws.addEventListener('close', () => {
    for (const p of pending.values()) p.rej(new Error('bench: the inspector connection closed'));
    pending.clear();
  });
  let id = 0;
  return {
    call: (method, params = {}) =>
      new Promise<unknown>((res, rej) => {
        pending.set(++id, { res, rej });
        ws.send(JSON.stringify({ id, method, params }));
      }),
    close: () => ws.close(),
  };
}

/** `process.memoryUsage()` of the inspected process. */
export async function memoryUsage(inspector: Inspector): Promise<NodeJS.MemoryUsage> {
  const expression = 'JSON.stringify(process.memoryUsage())';
  const r = (await inspector.call('Runtime.evaluate', { expression })) as {
    result: { value: string };
  };
  return JSON.parse(r.result.value) as NodeJS.MemoryUsage;
}
