// protocol: pure codecs for the client port: the command table, text lines (seed) and RESP2.

export { ByteParts, PieceCopies } from './byte-parts.ts';
export {
  COMMAND_TYPES,
  type Command,
  type CommandLimits,
  type CommandType,
  type ExpiryChange,
  type ExpirySpec,
  type Ordering,
  orderingOf,
  parseLimit,
  parseScanPage,
  type ScanPage,
  type TtlForm,
  validateBinaryKey,
  validateKey,
  validateValue,
} from './command.ts';
export { httpCommandName, httpRequestLine } from './http-request.ts';
export { LineDecoder, type LineFrame } from './line-decoder.ts';
export {
  errorReply,
  type InfoSection,
  type Reply,
  type ReplySink,
  RespError,
  type RespVersion,
} from './reply.ts';
export {
  ARG_OVERHEAD,
  encodeRespReply,
  encodeRespValueAt,
  type RangeSink,
  RespDecoder,
  type RespFrame,
  type RespLimits,
  renderSections,
} from './resp.ts';
export { helloReply } from './resp-admin.ts';
export {
  decodeScanCursor,
  parseRespRequest,
  patternPrefix,
  RESP_COMMANDS,
} from './resp-commands.ts';
export { NOT_ATOMIC, notAtomic, respErrors, UNSUPPORTED, unsupported } from './resp-errors.ts';
export type { ClientInfo, ClientRegistry } from './resp-inspect.ts';
export type {
  RespContext,
  RespRequest,
  RespSession,
  RespSpec,
  ScanCursors,
  ServerFacts,
  SessionOp,
} from './resp-spec.ts';
export { parseTextLine, textShape } from './text.ts';
export {
  decodeTextReply,
  ERROR_LINE,
  encodeTextReply,
  parseErrorLine,
  readCursor,
  TEXT_REPLY,
  type TextReplyKind,
} from './text-reply.ts';
