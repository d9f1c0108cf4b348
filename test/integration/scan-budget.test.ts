import { afterEach, describe, expect, it } from 'vitest';
import { SCAN_PIECE_RECORDS, SCAN_TURN_RECORDS } from '../../src/replica/index.ts';
import {
  type ClusterNode,
  loopbackBlock,
  metric,
  openClient,
  startMember,
  startStaticCluster,
} from '../helpers/cluster.ts';
import { defer } from '../helpers/defer.ts';
import type { LineClient } from '../helpers/line-client.ts';
import { cleanup } from '../helpers/node-process.ts';
import { RawResp } from '../helpers/resp-tools.ts';
import {
  infoStat,
  peerRequestsReceived,
  resumeUntilAnswered,
  stop,
} from '../helpers/stopped-node.ts';
import { until } from '../helpers/write-log.ts';

afterEach(cleanup);

const KEYS = 9000;
const SCANNERS = 20;
/** RANGEs each scanner pipelines: two start at once (10 MiB of replies counted each). */
const SCANS = 4;
/** Clients of the 3-node test, one RANGE each. */
const CLUSTER_SCANNERS = 8;
const RANGE = 'RANGE key:000000 key:999999';
const keyOf = (i: number) => `key:${String(i).padStart(6, '0')}`;
/** The keys RANGE answers: every key, ascending. */
const ALL = Array.from({ length: KEYS }, (_, i) => keyOf(i)).join(' ');

/**
 * Writes key:000000 .. key:008999 through `node`, 1000 pipelined PUTs at a time. A PUT a loaded
 * machine failed (a peer's answer later than --peer-timeout-ms: ERR UNAVAILABLE, nothing
 * acknowledged) is sent again, up to five times.
 */
async function load(node: ClusterNode): Promise<LineClient> {
  const c = await openClient(node);
  let left = Array.from({ length: KEYS }, (_, i) => i);
  for (let tries = 0; left.length > 0; tries++) {
    expect(tries, `PUTs still failing: ${left.length}`).toBeLessThan(5);
    const failed: number[] = [];
    for (let at = 0; at < left.length; at += 1000) {
      const batch = left.slice(at, at + 1000);
      c.send(batch.map((i) => `PUT ${keyOf(i)} v\n`).join(''));
      const replies = await c.lines(batch.length, 120_000);
      replies.forEach((r, j) => {
        if (r === 'OK') return;
        expect(r).toMatch(/^ERR UNAVAILABLE /);
        failed.push(batch[j]!);
      });
    }
    left = failed;
  }
  return c;
}

/** The node's INFO total_scan_records, as `client`'s INFO runs on the node. */
const scanRecords = (client: RawResp) => infoStat(client, 'total_scan_records', 120_000);

/**
 * Lets the stopped node `pid` go on and checks what it counted before the INFO `answer` ran:
 * some scan work, and one turn's at most.
 */
async function expectOneTurn(pid: number, answer: Promise<number>, before: number, what: string) {
  process.kill(pid, 'SIGCONT');
  const ahead = (await answer) - before;
  console.log(`records ${what} before the small client's INFO: ${ahead}`);
  expect(ahead).toBeGreaterThan(0);
  expect(ahead).toBeLessThanOrEqual(TURN_BOUND);
}

/** `n` scanners and a RESP client for INFO, each a connection of `node` before the test goes on. */
async function clients(node: ClusterNode, n: number) {
  const scanners = await Promise.all(Array.from({ length: n }, () => openClient(node)));
  const small = await RawResp.open(node.host, node.proc.port);
  defer(() => small.socket.destroy());
  // The node takes one connection a turn: each is its connection before it is stopped.
  await until(
    async () => (await metric(node, 'kvstore_connections')) >= n + 1,
    30_000,
    'the node to accept every client',
  );
  return { scanners, small };
}

/** Every scanner's `n` replies: each the whole answer, as one node holding every key gives it. */
async function expectAnswers(scanners: readonly LineClient[], n: number): Promise<void> {
  const all = await Promise.all(scanners.map((s) => s.lines(n, 120_000)));
  expect(all.flat().every((l) => l === ALL)).toBe(true);
}

/** Most records a turn reads and merges: the turn's count and a piece past it (inPieces). */
const TURN_BOUND = SCAN_TURN_RECORDS + SCAN_PIECE_RECORDS;

describe("the node-wide bound on a turn's scan work", () => {
  it("answers a client's INFO beside 20 clients whose unpaged RANGEs of 9,000 keys arrived together, after one turn's records of them at most", async () => {
    const node = await startMember('kvstore-0', `${loopbackBlock()}.1`, []);
    const setup = await load(node);
    const { scanners, small } = await clients(node, SCANNERS);
    const before = await scanRecords(small);
    // A round trip of another client after it: the node's poll since then dropped the small
    // client's socket from epoll's list of ready ones (level-triggered, it stays listed until a
    // later poll finds it idle), so its next request is read after the scanners' that came first.
    expect(await setup.call('PING')).toBe('PONG');
    // Every scanner's RANGEs and the small client's INFO, last, reach the node together: written
    // while it is stopped, read in one pass once it goes on.
    const pid = stop(node);
    for (const s of scanners) s.send(`${RANGE}\n`.repeat(SCANS));
    await until(async () => scanners.every((s) => s.socket.writableLength === 0), 10_000, 'sent');
    // Before the bound each RANGE read and merged its 9,000 records in the turn its line was
    // read: 20 connections started two each, 360,000 reads and as many merges ran first. Now
    // the first scan reads a turn's records, and the others wait for later turns.
    await expectOneTurn(pid, scanRecords(small), before, 'scanned');
    await expectAnswers(scanners, SCANS);
    expect(await metric(node, 'kvstore_scan_turn_waits_total')).toBeGreaterThan(0);
  }, 180_000);

  it("answers a client's INFO on a coordinator whose peers answered 8 clients' RANGEs together, after one turn's merges at most", async () => {
    // The scans wait for a peer's answer as long as the test needs them to.
    const nodes = await startStaticCluster(3, ['--peer-timeout-ms', '120000']);
    const [coord, ...others] = nodes as [ClusterNode, ...ClusterNode[]];
    const setup = await load(coord);
    // Fewer scans than the reply budget lets start (about 12 unpaged): all start at once, and
    // each through three members takes five rounds on a machine that may be loaded.
    const { scanners, small } = await clients(coord, CLUSTER_SCANNERS);
    const received = await peerRequestsReceived(others);
    // The coordinator reads its own records and waits for the stopped peers' (R=2, every member
    // is asked); the scans the reply budget holds back start once these are answered.
    for (const peer of others) stop(peer);
    for (const s of scanners) s.send(`${RANGE}\n`);
    const asked = () => metric(coord, 'kvstore_peer_requests_in_flight{side="client"}');
    let last = -1;
    let lastAsked = -1;
    await until(
      async () => {
        // Its own reads are done once the counts stand still while requests wait for peers.
        const now = await scanRecords(small);
        const inFlight = await asked();
        const still = now === last && inFlight === lastAsked && inFlight >= 2;
        last = now;
        lastAsked = inFlight;
        return still;
      },
      60_000,
      'every scan to read its own records and wait for the peers',
    );
    const before = last;
    // The small client's next INFO is read after the peers' replies (the first test's PING).
    expect(await setup.call('PING')).toBe('PONG');
    // The peers answer while the coordinator is stopped: every reply reaches it at once.
    const pid = stop(coord);
    await resumeUntilAnswered(others, received, lastAsked, 60_000);
    // The small client's INFO, last, is read in the same pass as the replies.
    const answer = scanRecords(small);
    await until(async () => small.socket.writableLength === 0, 10_000, 'sent');
    // Before the bound the turn that read the peers' replies merged every scan's 27,000
    // entries (three members' 9,000 keys each) before the INFO ran (189,000 with 7 of 20
    // clients' scans started), and with rounds of 2,048 entries a member (SCAN_ROUND_RECORDS)
    // but no bound per turn, 16,384.
    await expectOneTurn(pid, answer, before, 'merged');
    await expectAnswers(scanners, 1);
  }, 240_000);
});
