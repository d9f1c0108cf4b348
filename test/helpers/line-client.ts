// A minimal raw line client for protocol tests: send bytes, read reply lines.

import { connect, type Socket } from 'node:net';

/** A raw TCP connection that collects reply lines; independent of src/client on purpose. */
export class LineClient {
  readonly socket: Socket;
  #buf = '';
  #lines: string[] = [];
  #waiters: (() => void)[] = [];
  closed = false;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on('data', (d: Buffer) => {
      this.#buf += d.toString('utf8');
      let nl = this.#buf.indexOf('\n');
      while (nl !== -1) {
        this.#lines.push(this.#buf.slice(0, nl));
        this.#buf = this.#buf.slice(nl + 1);
        nl = this.#buf.indexOf('\n');
      }
      this.#wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.#wake();
    });
    socket.on('error', () => {});
  }

  static connect(port: number, host = '127.0.0.1'): Promise<LineClient> {
    return new Promise((resolve, reject) => {
      const s = connect({ port, host }, () => {
        s.off('error', reject);
        resolve(new LineClient(s));
      });
      s.once('error', reject);
    });
  }

  #wake(): void {
    const w = this.#waiters;
    this.#waiters = [];
    for (const f of w) f();
  }

  send(data: string | Buffer): void {
    this.socket.write(data);
  }

  /**
   * Waits for `n` reply lines (rejects if the connection closes first or after `ms`). The
   * default bounds a hang, not a speed: a 1 MiB PUT through a cluster with a stopped replica
   * took over 10 s at load average 35.
   */
  async lines(n: number, ms = 60_000): Promise<string[]> {
    const deadline = Date.now() + ms;
    while (this.#lines.length < n) {
      if (this.closed) throw new Error(`closed after ${this.#lines.length}/${n} lines`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${this.#lines.length}/${n} lines`);
      await new Promise<void>((res) => {
        const t = setTimeout(res, left);
        this.#waiters.push(() => {
          clearTimeout(t);
          res();
        });
      });
    }
    return this.#lines.splice(0, n);
  }

  /** Sends one line and returns its one-line reply. */
  async call(line: string): Promise<string> {
    this.send(`${line}\n`);
    const [reply] = await this.lines(1);
    return reply!;
  }

  close(): void {
    this.socket.destroy();
  }
}
