// A backup directory as a tar stream (POSIX ustar, regular files only), and back.

import { once } from 'node:events';
import { createReadStream, statSync } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { KvError } from '../errors/index.ts';

const BLOCK = 512;

function fail(message: string): KvError {
  return new KvError('KV_ERR_BACKUP', `backup: tar stream: ${message}`);
}

function octal(value: number, width: number): string {
  return `${value.toString(8).padStart(width - 1, '0')}\0`;
}

function header(name: string, size: number, mtime: number): Buffer {
  const h = Buffer.alloc(BLOCK);
  h.write(name, 0, 100, 'utf8');
  h.write(octal(0o644, 8), 100);
  h.write(octal(0, 8), 108);
  h.write(octal(0, 8), 116);
  h.write(octal(size, 12), 124);
  h.write(octal(Math.floor(mtime / 1000), 12), 136);
  h.write('        ', 148); // checksum counted as spaces
  h.write('0', 156);
  h.write('ustar\0', 257);
  h.write('00', 263);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
  return h;
}

async function write(out: NodeJS.WritableStream, chunk: Buffer): Promise<void> {
  if (!out.write(chunk)) await once(out, 'drain');
}

/** Writes `paths` (regular files, by their base names, in this order) to `out` as one tar. */
export async function writeTar(
  out: NodeJS.WritableStream,
  paths: readonly string[],
): Promise<void> {
  for (const path of paths) {
    const st = statSync(path);
    await write(out, header(basename(path), st.size, st.mtimeMs));
    let n = 0;
    for await (const chunk of createReadStream(path)) {
      n += (chunk as Buffer).length;
      await write(out, chunk as Buffer);
    }
    if (n !== st.size) throw fail(`${path} changed size while being written`);
    const pad = (BLOCK - (st.size % BLOCK)) % BLOCK;
    if (pad > 0) await write(out, Buffer.alloc(pad));
  }
  await write(out, Buffer.alloc(2 * BLOCK));
}

function parseHeader(h: Buffer): { name: string; size: number; type: string } | null {
  if (h.every((b) => b === 0)) return null;
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 32 : h[i]!;
  const stored = Number.parseInt(h.toString('latin1', 148, 156).replace(/[\0 ]/g, ''), 8);
  if (stored !== sum) throw fail('a header fails its checksum (not a tar stream, or damaged)');
  const name = h.toString('utf8', 0, 100).replace(/\0.*$/s, '');
  const size = Number.parseInt(h.toString('latin1', 124, 136).replace(/[\0 ]/g, '') || '0', 8);
  return { name, size, type: String.fromCharCode(h[156] || 48) };
}

/**
 * Reads a tar stream from `input` into `dir`: only the regular files named in `allowed` (a `./`
 * prefix is dropped, the `./` entry skipped); any other entry (a directory, a link, another
 * name) is refused. Throws KV_ERR_BACKUP for
 * a damaged or cut stream. Resolves with the names written.
 */
export async function extractTar(
  input: AsyncIterable<Buffer>,
  dir: string,
  allowed: ReadonlySet<string>,
): Promise<string[]> {
  let buf: Buffer = Buffer.alloc(0);
  let file: { fh: FileHandle; left: number; pad: number } | null = null;
  let ended = false;
  const names: string[] = [];
  const step = async (): Promise<boolean> => {
    if (file !== null) {
      if (file.left > 0) {
        if (buf.length === 0) return false;
        const part = buf.subarray(0, Math.min(file.left, buf.length));
        buf = buf.subarray(part.length);
        file.left -= part.length;
        for (let off = 0; off < part.length; ) {
          off += (await file.fh.write(part, off, part.length - off)).bytesWritten;
        }
        return true;
      }
      if (buf.length < file.pad) return false;
      buf = buf.subarray(file.pad);
      const { fh } = file;
      file = null;
      await fh.close();
      return true;
    }
    if (buf.length < BLOCK) return false;
    const h = parseHeader(buf.subarray(0, BLOCK));
    buf = buf.subarray(BLOCK);
    if (h === null) {
      ended = true;
      return false;
    }
    // `tar -C dir -cf - .` names files ./NAME and adds ./ itself.
    const name = h.name.replace(/^\.\//, '');
    if (h.type === '5' && (name === '' || name === '.')) return true;
    if (h.type !== '0' || !allowed.has(name) || names.includes(name)) {
      throw fail(`unexpected entry '${h.name.slice(0, 100)}' (type ${h.type})`);
    }
    names.push(name);
    // A file handle, not a write stream: every write and its failure (a full disk, the name
    // taken) is awaited here, and nothing is still in flight once this function has settled.
    const fh = await open(join(dir, name), 'wx');
    file = { fh, left: h.size, pad: (BLOCK - (h.size % BLOCK)) % BLOCK };
    return true;
  };
  try {
    for await (const chunk of input) {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      while (!ended && (await step()));
      if (ended) break;
    }
    while (!ended && (await step()));
  } finally {
    // On failure the failure is what the caller hears; the close of the half-written file is not.
    if (file !== null) await (file as { fh: FileHandle }).fh.close().catch(() => undefined);
  }
  if (!ended) throw fail('the stream ended inside an entry (cut short)');
  return names;
}
