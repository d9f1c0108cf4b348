// runtime: the controller machinery: informers, work queue, backoff, leader election, API calls.

export { Backoff, type BackoffOptions, backoffDelay } from './backoff.ts';
export { type InformerEvent, type InformerOptions, RestartingInformer } from './informer.ts';
export { errorMessage, FIELD_MANAGER, Kube, type ObjectRef, statusCode } from './kube.ts';
export { LeaderElector, type LeaderOptions } from './leader.ts';
export {
  type Handler,
  type HandlerResult,
  type QueueOptions,
  runWorkers,
  WorkQueue,
} from './queue.ts';
