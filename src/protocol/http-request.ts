// Recognizes an HTTP request sent to the client port, so that nothing in it runs as commands.

const SPACE = 0x20;
/** ` HTTP/1.1`: a space, the protocol name, a digit, a dot, a digit. */
const VERSION_BYTES = 9;
const VERSION_PREFIX = Buffer.from(' HTTP/', 'latin1');

const isDigit = (b: number | undefined) => b !== undefined && b >= 0x30 && b <= 0x39;

/** True when `line` ends with ` HTTP/<digit>.<digit>` (byte compares: every text line is asked). */
function endsWithVersion(line: Buffer): boolean {
  const at = line.length - VERSION_BYTES;
  return (
    line.compare(VERSION_PREFIX, 0, VERSION_PREFIX.length, at, at + VERSION_PREFIX.length) === 0 &&
    isDigit(line[at + 6]) &&
    line[at + 7] === 0x2e &&
    isDigit(line[at + 8])
  );
}

/**
 * True when `name` (a command's first word, any case) is `POST`, or starts with `Host:` (the
 * header, with or without a space after the colon): Redis's two words. Neither is a command.
 */
export function httpCommandName(name: Buffer): boolean {
  // The first letter before any string is made: most names are neither (GET, PUT, SET, ...).
  const first = (name[0] ?? 0) | 0x20;
  if (name.length === 4 && first === 0x70) return name.toString('latin1').toUpperCase() === 'POST';
  if (name.length < 5 || first !== 0x68 || name[4] !== 0x3a) return false;
  return name.toString('latin1', 0, 4).toUpperCase() === 'HOST';
}

/**
 * True when a text line (without its terminator) is the start of an HTTP request: its first word
 * is `POST` or starts with `Host:` (any case, as Redis checks), or the line is a request line,
 * `<method> <target> HTTP/<digit>.<digit>`: three fields, one space apart. A browser sends a
 * cross-site POST with a `text/plain` body to any port without asking first, so a page elsewhere
 * could make a browser on the node's network run the body's lines as commands; a forged request
 * (a service made to call a URL) may use any method, and `PUT /key HTTP/1.1` is a valid PUT. Any
 * request line is followed by `Host:` (HTTP/1.1 requires it), so a request whose line is not
 * recognized still stops there.
 */
export function httpRequestLine(line: Buffer): boolean {
  let start = 0;
  while (start < line.length && line[start] === SPACE) start++;
  let end = line.indexOf(SPACE, start);
  if (end === -1) end = line.length;
  if (httpCommandName(line.subarray(start, end))) return true;
  if (start !== 0 || line.length < VERSION_BYTES + 3) return false;
  if (!endsWithVersion(line)) return false;
  const at = line.length - VERSION_BYTES;
  // Exactly one space between the method and the target, none inside either.
  const first = line.indexOf(SPACE);
  return first > 0 && first < at - 1 && line.indexOf(SPACE, first + 1) === at;
}
