// What an error reply may echo of a client's bytes: printable text only.

/**
 * Control characters (C0, DEL, C1), format characters (bidirectional overrides, zero-width
 * characters) and line or paragraph separators: a reply or a log line that echoed them could
 * end the line early (CR, LF), or move or recolour a terminal's text (ESC), where the reply is
 * shown.
 */
const UNPRINTABLE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/gu;

/**
 * `input` as an error reply may show it: at most `maxBytes` of it (decoded as UTF-8, so a
 * character cut in two becomes U+FFFD), every unprintable character replaced by a space, as
 * Redis replaces CR and LF in its error lines.
 */
export function echo(input: Buffer | string, maxBytes: number): string {
  const text =
    typeof input === 'string' ? input.slice(0, maxBytes) : input.toString('utf8', 0, maxBytes);
  return text.replace(UNPRINTABLE, ' ');
}
