// Peer messages: msgpack bodies of request and response frames, encoded and validated.

import { Packr } from 'msgpackr';
import { ERROR_CODES, type ErrorCode, KvError } from '../errors/index.ts';
import { FRAME_HEADER_BYTES } from './frame.ts';
import { NOT_PLAIN, readPlain, writePlain } from './msgpack.ts';

/**
 * The msgpack codec of every peer frame body. Plain MessagePack (`useRecords: false`, no msgpackr
 * extensions besides its `undefined` and Date encodings), so any MessagePack implementation can
 * speak the protocol. Messages of plain values (all the data path's) are written and read by
 * msgpack.ts, everything else by msgpackr; the bytes are MessagePack either way, so members of
 * either kind read each other's. What survives a round trip:
 * - objects (string keys), arrays, strings, booleans, null, undefined, finite and non-finite
 *   numbers, bigints within 64 bits (they come back as bigint), Dates;
 * - Buffer and Uint8Array are sent as msgpack `bin` and always come back as a Node `Buffer`: a
 *   view into the decoder's own copy of the frame, never into a socket chunk. The copy is one
 *   `Buffer.allocUnsafe`: under 32 KiB a slice of Node's shared 64 KiB pool, else the frame's
 *   size (a frame that already fills its own memory, FrameDecoder's copy of a large frame that
 *   spanned chunks, is decoded where it is). msgpackr's `copyBuffers` gave every `bin` an
 *   ArrayBuffer of its own instead, 1.5 µs per record of a 3-node read
 *   (`node bench/copy-bench.ts`). What a handler keeps beyond the request it copies (as the
 *   scan cursors and LMDB do); records queued for LMDB are held about a second, as their
 *   copies were;
 * - other typed arrays come back as a Buffer of their bytes, Maps as plain objects (keys become
 *   strings), Sets as arrays; class instances lose their prototype.
 */
const packr = new Packr({ useRecords: false });

/** A request: `i` is the connection-unique id echoed by the response, `m` the method. */
export interface RequestMessage {
  readonly i: number;
  readonly m: string;
  readonly b: unknown;
}

/** A response: exactly one of `r` (the handler's result) or `e` (its error) is meaningful. */
export type ResponseMessage =
  | { readonly i: number; readonly ok: true; readonly r: unknown }
  | { readonly i: number; readonly ok: false; readonly code: ErrorCode; readonly message: string };

/** Largest request id; ids wrap to 1 after it (0 is never used). */
export const MAX_REQUEST_ID = 0xffff_ffff;

function protocolError(message: string, cause?: unknown): KvError {
  return new KvError('KV_ERR_PEER_PROTOCOL', `peer: ${message}`, { cause });
}

/**
 * `value` as a frame: the 4-byte length header (frameHeader) and its msgpack, in one buffer, so
 * that a frame is one socket write. Plain values (nearly every message) take the fast writer
 * (msgpack.ts), anything else msgpackr; the bytes decode the same either way.
 */
function packFrame(value: object): Buffer {
  let frame = writePlain(FRAME_HEADER_BYTES, value);
  if (frame === null) {
    const body = packr.pack(value);
    frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + body.length);
    body.copy(frame, FRAME_HEADER_BYTES);
  }
  frame.writeUInt32BE(frame.length - FRAME_HEADER_BYTES, 0);
  return frame;
}

/** Msgpack of a request body; throws KvError KV_ERR_INTERNAL when `body` cannot be encoded. */
export function encodeRequest(id: number, method: string, body: unknown): Buffer {
  return requestFrame(id, method, body).subarray(FRAME_HEADER_BYTES);
}

function requestFrame(id: number, method: string, body: unknown): Buffer {
  try {
    return packFrame({ i: id, m: method, b: body });
  } catch (err) {
    throw new KvError('KV_ERR_INTERNAL', `peer: request body for ${method} not encodable`, {
      cause: err,
    });
  }
}

/**
 * A request frame (its 4-byte header included, as FrameWriter.write takes it) whose id is set
 * later (setRequestId), so that its size is known before a connection, and with it the id, is
 * chosen: the id is always a msgpack uint32 (`0xce` and four bytes; any decoder reads it as the
 * number), right after the map header and the key `i`. Throws KvError KV_ERR_INTERNAL when
 * `body` cannot be encoded.
 */
export function encodeRequestFrame(method: string, body: unknown): Buffer {
  const frame = requestFrame(MAX_REQUEST_ID, method, body);
  if (idOffset(frame) < 0) {
    throw new KvError('KV_ERR_INTERNAL', `peer: request for ${method} encoded without an id slot`);
  }
  return frame;
}

/** Writes `id` into a frame from encodeRequestFrame (it may be set again, e.g. on a resend). */
export function setRequestId(frame: Buffer, id: number): void {
  frame.writeUInt32BE(id, idOffset(frame));
}

/**
 * Where the uint32 id starts in a request frame: after its header, `{` (fixmap or map16), `"i"`,
 * 0xce.
 */
function idOffset(frame: Buffer): number {
  const at = FRAME_HEADER_BYTES;
  const map =
    frame[at] === 0x83
      ? at + 1
      : frame[at] === 0xde && frame[at + 1] === 0 && frame[at + 2] === 3
        ? at + 3
        : 0;
  if (map === 0 || frame[map] !== 0xa1 || frame[map + 1] !== 0x69 || frame[map + 2] !== 0xce) {
    return -1;
  }
  return map + 3;
}

/**
 * Writes `ms` as the deadline of a request frame whose body's first key is `d`, a float64 (as a
 * wall time in ms since the epoch is written: over 32 bits), right after the method: so that the
 * client sets it as it hands the frame to its socket (PeerClient, `deadline`), not when the body
 * was encoded. Returns false, and leaves the frame as it is, when it is not laid out so.
 */
export function setRequestDeadline(frame: Buffer, ms: number): boolean {
  const id = idOffset(frame);
  if (id < 0) return false;
  let at = id + 4;
  if (frame[at] !== 0xa1 || frame[at + 1] !== 0x6d) return false;
  at += 2;
  const str = frame[at]!;
  if (str >= 0xa0 && str <= 0xbf) at += 1 + (str & 0x1f);
  else if (str === 0xd9) at += 2 + frame[at + 1]!;
  else return false;
  if (frame[at] !== 0xa1 || frame[at + 1] !== 0x62) return false;
  at += 2;
  const map = frame[at]!;
  if (map > 0x80 && map <= 0x8f) at += 1;
  else if (map === 0xde) at += 3;
  else return false;
  if (frame[at] !== 0xa1 || frame[at + 1] !== 0x64 || frame[at + 2] !== 0xcb) return false;
  if (at + 11 > frame.length) return false;
  frame.writeDoubleBE(ms, at + 3);
  return true;
}

/** Msgpack of a success response; throws KvError KV_ERR_INTERNAL when `result` cannot be encoded. */
export function encodeResult(id: number, result: unknown): Buffer {
  return encodeResultFrame(id, result).subarray(FRAME_HEADER_BYTES);
}

/** encodeResult as a frame, its header included (FrameWriter.write). */
export function encodeResultFrame(id: number, result: unknown): Buffer {
  try {
    return packFrame({ i: id, r: result });
  } catch (err) {
    throw new KvError('KV_ERR_INTERNAL', 'peer: handler result not encodable', { cause: err });
  }
}

/** Msgpack of an error response carrying `err.code` and `err.message`. */
export function encodeError(id: number, err: KvError): Buffer {
  return encodeErrorFrame(id, err).subarray(FRAME_HEADER_BYTES);
}

/** encodeError as a frame, its header included (FrameWriter.write). */
export function encodeErrorFrame(id: number, err: KvError): Buffer {
  return packFrame({ i: id, e: { code: err.code, message: err.message } });
}

function unpack(frame: Buffer): unknown {
  // A frame that fills its memory but for the prefix (FrameDecoder's copy of a large frame that
  // spanned chunks) holds nothing else, so its bins may keep it: decoded in place, not copied.
  let own = frame;
  if (frame.buffer.byteLength - frame.length > FRAME_HEADER_BYTES) {
    own = Buffer.allocUnsafe(frame.length);
    own.set(frame);
  }
  const plain = readPlain(own);
  if (plain !== NOT_PLAIN) return plain;
  try {
    return packr.unpack(own);
  } catch (err) {
    throw protocolError(`malformed msgpack frame of ${frame.length} bytes`, err);
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isId(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0;
}

/** A request frame body; throws KvError KV_ERR_PEER_PROTOCOL unless it is `{i: uint, m: string}`. */
export function decodeRequest(frame: Buffer): RequestMessage {
  const msg = unpack(frame);
  if (!isRecord(msg) || !isId(msg.i) || typeof msg.m !== 'string') {
    throw protocolError('request frame is not {i: uint, m: string, b}');
  }
  return { i: msg.i, m: msg.m, b: msg.b };
}

/**
 * A response frame body; throws KvError KV_ERR_PEER_PROTOCOL unless it is `{i: uint, r}` or
 * `{i: uint, e: {code: string, message: string}}`. A code this node does not know (a newer peer)
 * becomes KV_ERR_INTERNAL with the remote code in the message.
 */
export function decodeResponse(frame: Buffer): ResponseMessage {
  const msg = unpack(frame);
  if (!isRecord(msg) || !isId(msg.i)) throw protocolError('response frame is not {i: uint, ...}');
  const e = msg.e;
  if (e === undefined) return { i: msg.i, ok: true, r: msg.r };
  if (!isRecord(e) || typeof e.code !== 'string' || typeof e.message !== 'string') {
    throw protocolError('response error is not {code: string, message: string}');
  }
  if (Object.hasOwn(ERROR_CODES, e.code)) {
    return { i: msg.i, ok: false, code: e.code as ErrorCode, message: e.message };
  }
  return { i: msg.i, ok: false, code: 'KV_ERR_INTERNAL', message: `${e.code}: ${e.message}` };
}
