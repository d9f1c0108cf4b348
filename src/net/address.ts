// IP addresses written out the ways the kernel and DNS name them.

import { isIPv4 } from 'node:net';
import { endianness } from 'node:os';

/**
 * The 32 hex digits (lower case) of an IPv6 address, `::` expanded, an embedded IPv4 tail
 * (`::ffff:10.0.0.1`) as its two groups, a zone (`%eth0`) dropped. For a valid address only.
 */
export function ipv6Hex(ip: string): string {
  const [head = '', tail] = (ip.split('%')[0] ?? '').split('::');
  const groups = (s: string | undefined) => (s ? s.split(':').flatMap(ipv4Groups) : []);
  const h = groups(head);
  const t = groups(tail);
  const zeros = tail === undefined ? [] : new Array<string>(8 - h.length - t.length).fill('0');
  return [...h, ...zeros, ...t].map((g) => g.toLowerCase().padStart(4, '0')).join('');
}

function ipv4Groups(part: string): string[] {
  if (!isIPv4(part)) return [part];
  const [a, b, c, d] = part.split('.').map(Number) as [number, number, number, number];
  return [((a << 8) | b).toString(16), ((c << 8) | d).toString(16)];
}

/**
 * `ip:port` as a line of /proc/net/tcp (an IPv4 address) or /proc/net/tcp6 (an IPv6 one) shows
 * it: the address's bytes as the kernel stores them, printed as 32-bit words in the machine's
 * byte order (on a little-endian machine 127.0.0.1 is `0100007F`; an IPv6 address is four such
 * words), then `:` and the port in four hex digits, all upper case.
 */
export function procNetAddress(ip: string, port: number): string {
  const hex = isIPv4(ip) ? ipv6Hex(`::${ip}`).slice(24) : ipv6Hex(ip);
  let out = hex;
  if (LITTLE_ENDIAN) {
    out = '';
    for (let w = 0; w < hex.length; w += 8) {
      const word = hex.slice(w, w + 8);
      out += word.slice(6, 8) + word.slice(4, 6) + word.slice(2, 4) + word.slice(0, 2);
    }
  }
  return `${out.toUpperCase()}:${port.toString(16).toUpperCase().padStart(4, '0')}`;
}

const LITTLE_ENDIAN = endianness() === 'LE';
