// api/v1alpha1: the KVCluster schema (zod), its CRD, and the structural-schema rules.

export { buildCrd, CRD_NAME, CRD_PATH, openApiSchema, renderCrdYaml } from './crd.ts';
export {
  API_VERSION,
  CONDITION_TYPES,
  type Condition,
  type ConditionType,
  GROUP,
  KIND,
  type KVClusterSpec,
  type KVClusterSpecInput,
  type KVClusterStatus,
  kvClusterSpecSchema,
  kvClusterStatusSchema,
  MAX_NAME_LENGTH,
  type Member,
  NODE_SETTINGS,
  type NodeSetting,
  type ParseResult,
  PHASES,
  type Phase,
  PLURAL,
  parseKVCluster,
  STALE_READS_RULE,
  VERSION,
} from './schema.ts';
export { type SchemaNode, structuralViolations, toStructural } from './structural.ts';
