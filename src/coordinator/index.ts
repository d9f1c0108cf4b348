// coordinator: decides where a command runs and merges what comes back into one reply.

export {
  ClusterCoordinator,
  type ClusterOptions,
  type Coordinator,
  type ValueUse,
} from './cluster.ts';
export { applyCursor, successorOfPrefix } from './keyspace.ts';
export { MULTI_READ_BYTES } from './multi.ts';
export { type QuorumGroup, quorum } from './quorum.ts';
