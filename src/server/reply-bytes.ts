// How many bytes of replies a connection may be made to hold: at most, before a command runs,
// and exactly, once it answered.

import type { Command, CommandLimits, Reply } from '../protocol/index.ts';

/**
 * The replies a connection holds (the values of commands started and not yet written to its
 * socket), beyond which no further command starts until they are written: the write buffer's
 * own bound (1 MiB) only sees replies already written, and a read that finishes later (a GET a
 * peer answers, an MGET) has not written anything when the next one starts, so one connection
 * that did not read could start --max-pipeline of them (400 GETs of a 1 MiB value held 1.1 GiB).
 * A command counts its replyBound while it runs, a GET the value this node holds of the key
 * (Coordinator.sizeHere: the owners agree, as a rule; 0 when this node owns the key and holds
 * none, replyBound when other nodes own it), then its reply's size until written. The node-wide
 * ReplyBudget (reply-budget.ts) counts the same. With values of the default largest size
 * (1 MiB), a connection has up to 16 GETs in flight at once: answers that come from peers wait
 * for the earlier ones beyond that; small values are not held back by it (before GETs counted
 * their value here, a pipeline of 128 small GETs through a 3-node cluster ran at 0.65x to
 * 0.75x); GETs answered by this node at once hold nothing here.
 */
export const REPLY_HIGH_WATER = 16 * 1024 * 1024;

/**
 * The most bytes of keys and values `cmd`'s reply can hold: a value for the commands that read
 * one, every value an MGET may read, every key a scan may return (an EXEC: its commands'
 * bounds summed, at most --max-multi-read-bytes, connection.ts). 0 for the rest
 * (their replies are a few bytes, or a write's, bounded by the write budget).
 */
export function replyBound(cmd: Command, limits: CommandLimits, maxMultiReadBytes: number): number {
  switch (cmd.type) {
    case 'get':
    case 'getex':
      return limits.maxValueBytes;
    case 'mget':
      return Math.min(maxMultiReadBytes, cmd.keys.length * limits.maxValueBytes);
    case 'range':
    case 'prefix':
      return ((cmd.page.limit ?? limits.maxScanKeys) + 1) * limits.maxKeyBytes;
    default:
      return 0;
  }
}

/** The bytes of keys and values `reply` holds (what replyBound bounds); 0 for the rest. */
export function replySize(reply: Reply): number {
  switch (reply.type) {
    case 'value':
      return reply.value.length;
    case 'keys': {
      let n = 0;
      for (const k of reply.keys) n += k.length;
      return n;
    }
    case 'array': {
      let n = 0;
      if (reply.items !== null) for (const item of reply.items) n += replySize(item);
      return n;
    }
    default:
      return 0;
  }
}
