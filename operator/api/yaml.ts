// A small YAML writer for plain data (objects, arrays, strings, numbers, booleans, null).
// client-node's dumpYaml re-serializes built-in kinds through its models, which drops
// `x-kubernetes-*` schema keys; this writer keeps every key as given.

type Plain = string | number | boolean | null | Plain[] | { [key: string]: Plain };

const PLAIN_STRING = /^[A-Za-z_/][A-Za-z0-9_./ -]*$/;
const RESERVED = new Set(['true', 'false', 'null', 'yes', 'no', 'on', 'off', 'y', 'n', '~']);

function scalar(v: string | number | boolean | null): string {
  if (typeof v !== 'string') return JSON.stringify(v);
  const plain = PLAIN_STRING.test(v) && !RESERVED.has(v.toLowerCase()) && !v.endsWith(' ');
  return plain && !v.includes(': ') && !v.includes(' #') ? v : JSON.stringify(v);
}

function key(k: string): string {
  return /^[A-Za-z_$][A-Za-z0-9_.$-]*$/.test(k) && !RESERVED.has(k.toLowerCase())
    ? k
    : JSON.stringify(k);
}

function isEmpty(v: Plain): boolean {
  return Array.isArray(v)
    ? v.length === 0
    : typeof v === 'object' && v !== null && !Object.keys(v).length;
}

function block(v: Plain, indent: string): string[] {
  if (Array.isArray(v)) {
    return v.flatMap((item) => {
      const lines =
        isEmpty(item) || typeof item !== 'object' || item === null
          ? [inline(item)]
          : block(item, `${indent}  `).map((l) => l.slice(indent.length + 2));
      return lines.map((l, i) => (i === 0 ? `${indent}- ${l}` : `${indent}  ${l}`));
    });
  }
  if (typeof v === 'object' && v !== null) {
    return Object.entries(v).flatMap(([k, child]) => {
      if (typeof child === 'object' && child !== null && !isEmpty(child)) {
        return [`${indent}${key(k)}:`, ...block(child, `${indent}  `)];
      }
      return [`${indent}${key(k)}: ${inline(child)}`];
    });
  }
  return [`${indent}${inline(v)}`];
}

function inline(v: Plain): string {
  if (Array.isArray(v)) return '[]';
  if (typeof v === 'object' && v !== null) return '{}';
  return scalar(v);
}

/** YAML for `value`; `undefined` members are skipped (as JSON.stringify does). */
export function toYaml(value: unknown): string {
  const plain = JSON.parse(JSON.stringify(value)) as Plain;
  return `${block(plain, '').join('\n')}\n`;
}
