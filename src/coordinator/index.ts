// coordinator: decides where a command runs and merges what comes back into one reply.

export { successorOfPrefix } from './keyspace.ts';
export {
  applyCursor,
  type Coordinator,
  type CoordinatorOptions,
  LocalCoordinator,
} from './local.ts';
