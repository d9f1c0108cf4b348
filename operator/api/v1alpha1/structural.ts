// Turns zod's OpenAPI 3.0 output into a structural CRD schema, and lists what is not structural.

/** A JSON schema node as plain data. */
export type SchemaNode = { [key: string]: unknown };

const INT_OR_STRING = 'x-kubernetes-int-or-string';
const PRESERVE = 'x-kubernetes-preserve-unknown-fields';
/** zod writes these bounds for every z.int(); they say nothing the type does not. */
const SAFE_BOUNDS = new Set([Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER]);
/** Lookaround and backreferences: RE2 (the apiserver's regex engine) has none of them. */
const NON_RE2 = /\(\?[=!<]|\\[1-9]|\\k</;

function isNode(v: unknown): v is SchemaNode {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Returns a structural copy of `node`: see DESIGN.md "Control plane" for the rules. */
export function toStructural(node: SchemaNode): SchemaNode {
  const out: SchemaNode = {};
  for (const [key, value] of Object.entries(node)) {
    if ((key === 'minimum' || key === 'maximum') && SAFE_BOUNDS.has(value as number)) continue;
    out[key] = transformChild(key, value);
  }
  if (out[INT_OR_STRING] === true) {
    // The one anyOf the apiserver accepts: integer or string, validations beside it.
    const pattern = findPattern(node);
    delete out.type;
    out.anyOf = [{ type: 'integer' }, { type: 'string' }];
    if (pattern) out.pattern = pattern;
  }
  if (out[PRESERVE] === true) {
    out.type = 'object';
    delete out.additionalProperties;
    delete out.properties;
  }
  // Unknown fields are pruned by the apiserver; `additionalProperties: false` is not allowed.
  if (out.properties !== undefined || out.additionalProperties === false) {
    delete out.additionalProperties;
  }
  fillDefault(out);
  return out;
}

/**
 * The apiserver validates a `default` (CEL rules included) as written, without the defaults of
 * its fields: `default: {}` from zod's `.prefault({})` becomes the object with its fields'
 * defaults filled in (children are already filled, as this runs bottom-up).
 */
function fillDefault(node: SchemaNode): void {
  if (!isNode(node.default) || !isNode(node.properties)) return;
  const filled: SchemaNode = { ...node.default };
  for (const [name, child] of Object.entries(node.properties)) {
    if (isNode(child) && child.default !== undefined && filled[name] === undefined) {
      filled[name] = child.default;
    }
  }
  node.default = filled;
}

function transformChild(key: string, value: unknown): unknown {
  if (key === 'properties' && isNode(value)) {
    const props: SchemaNode = {};
    for (const [name, child] of Object.entries(value)) {
      props[name] = isNode(child) ? toStructural(child) : child;
    }
    return props;
  }
  if ((key === 'items' || key === 'additionalProperties') && isNode(value)) {
    return toStructural(value);
  }
  if (key === 'anyOf' && Array.isArray(value)) {
    return value.map((v: unknown) => (isNode(v) ? toStructural(v) : v));
  }
  return value;
}

function findPattern(node: SchemaNode): string | undefined {
  if (typeof node.pattern === 'string') return node.pattern;
  const branches = Array.isArray(node.anyOf) ? node.anyOf : [];
  for (const b of branches) if (isNode(b) && typeof b.pattern === 'string') return b.pattern;
  return undefined;
}

/** Every reason `node` is not a structural schema the apiserver accepts; empty when it is. */
export function structuralViolations(node: SchemaNode, path = ''): string[] {
  const at = path || '<root>';
  const out: string[] = [];
  if ('$ref' in node) out.push(`${at}: $ref`);
  for (const k of ['allOf', 'oneOf', 'not', 'definitions', '$defs']) {
    if (k in node) out.push(`${at}: ${k}`);
  }
  out.push(...anyOfViolations(node, at));
  if (node.properties !== undefined && node.additionalProperties !== undefined) {
    out.push(`${at}: additionalProperties beside properties`);
  }
  if (node.additionalProperties === false) out.push(`${at}: additionalProperties: false`);
  const special = node[INT_OR_STRING] === true || node[PRESERVE] === true;
  if (typeof node.type !== 'string' && !special) out.push(`${at}: no type`);
  if (typeof node.pattern === 'string' && NON_RE2.test(node.pattern)) {
    out.push(`${at}: pattern uses lookaround or backreferences`);
  }
  if (typeof node.pattern === 'string' && !isValidRegex(node.pattern)) {
    out.push(`${at}: pattern does not compile`);
  }
  return out.concat(childViolations(node, path));
}

function anyOfViolations(node: SchemaNode, at: string): string[] {
  if (!('anyOf' in node)) return [];
  const ok =
    node[INT_OR_STRING] === true &&
    node.type === undefined &&
    JSON.stringify(node.anyOf) === JSON.stringify([{ type: 'integer' }, { type: 'string' }]);
  return ok ? [] : [`${at}: anyOf (only integer-or-string is allowed)`];
}

function childViolations(node: SchemaNode, path: string): string[] {
  const out: string[] = [];
  if (isNode(node.properties)) {
    for (const [name, child] of Object.entries(node.properties)) {
      if (isNode(child)) out.push(...structuralViolations(child, `${path}.${name}`));
    }
  }
  if (isNode(node.items)) out.push(...structuralViolations(node.items, `${path}[]`));
  if (isNode(node.additionalProperties)) {
    out.push(...structuralViolations(node.additionalProperties, `${path}{}`));
  }
  return out;
}

function isValidRegex(source: string): boolean {
  try {
    new RegExp(source);
    return true;
  } catch {
    return false;
  }
}
