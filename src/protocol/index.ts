// protocol: pure codecs for the client port: the incremental line decoder, the command table, text replies.

export {
  COMMAND_TYPES,
  type Command,
  type CommandLimits,
  type CommandType,
  type Ordering,
  orderingOf,
  parseLimit,
  parseScanPage,
  type ScanPage,
  validateKey,
  validateValue,
} from './command.ts';
export { LineDecoder, type LineFrame } from './line-decoder.ts';
export { encodeTextReply, parseTextLine, type Reply } from './text.ts';
