// membership: who the members are (static list or DNS), whether each answers, and the rings to route by.

export { type AddressBook, stateAddressBook } from './address-book.ts';
export { Callers } from './callers.ts';
export { ClockCheck, type ClockCheckOptions, type ClockRefusal } from './clock-check.ts';
export {
  NOTICE_WAIT_MS,
  readDecommissionedNotice,
  tellDecommissioned,
} from './decommission-notice.ts';
export { dnsSource } from './dns-source.ts';
export {
  FOUNDING_LOG_EVERY_MS,
  type FoundingBlock,
  type FoundingWait,
  registerFoundingMetrics,
  untilFoundable,
} from './founding-wait.ts';
export { readHello } from './hello.ts';
export { loadIncarnation } from './incarnation.ts';
export {
  type ClockOffset,
  type Duplicate,
  Membership,
  type MembershipOptions,
  type MemberView,
  type PeerState,
} from './manager.ts';
export {
  listsDiffer,
  MembershipCheck,
  type MembershipCheckOptions,
  membershipSpreadMs,
  type OwnList,
} from './membership-check.ts';
export { type RingMetrics, registerRingMetrics, type SettledChange } from './metrics.ts';
export { ReplicationCheck, type ReplicationCheckOptions } from './replication-check.ts';
export { RingFencing, type RingFencingOptions } from './ring-fencing.ts';
export {
  RingKeeper,
  type RingKeeperOptions,
  type StartingRings,
  settleSpreadMs,
  startingTopology,
} from './ring-keeper.ts';
export {
  holdsDataIn,
  lostAt,
  newerSettled,
  newestReported,
  parseSettled,
  settledRing,
} from './settled.ts';
export {
  type MemberAddress,
  type PeerSource,
  parseDiscovery,
  parsePeers,
  peerAddressOf,
  staticSource,
} from './sources.ts';
export { type Placement, type RingChanges, RingTerms, Topology } from './topology.ts';
export { type ClusterViewParts, clusterInfo } from './view.ts';
