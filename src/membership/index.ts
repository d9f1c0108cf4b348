// membership: who the members are (static list or DNS), whether each answers, and the rings to route by.

export { dnsSource } from './dns-source.ts';
export {
  Membership,
  type MembershipOptions,
  type MemberView,
  type PeerState,
} from './manager.ts';
export {
  type MemberAddress,
  type PeerSource,
  parseDiscovery,
  parsePeers,
  staticSource,
} from './sources.ts';
export { type Placement, Topology } from './topology.ts';
