// The failure detector measures liveness (a member behind a slow link full of replica data stays up, a stopped one goes down); hints get through a slow link.

import { afterEach, describe, expect, it } from 'vitest';
import { metric, peersOf, restart, startStaticCluster } from '../helpers/cluster.ts';
import { defer } from '../helpers/defer.ts';
import { gauge, lanCluster, linkOutage, scrape, writeBulk } from '../helpers/lan-cluster.ts';
import { shapeLink } from '../helpers/netns.ts';
import { cleanup } from '../helpers/node-process.ts';
import { until } from '../helpers/write-log.ts';

/** How long the stopped member refuses handshakes, and the most redials of it that may take. */
const PAUSE_S = 30;
const MAX_DIALS = 6;
/** The hints of 4 MiB the hint delivery test makes a keep for the stopped b. */
const HINTS = 1;

describe('the failure detector', () => {
  afterEach(cleanup);

  it('keeps a member up while megabytes of replica writes queue to it over a slow link', async () => {
    const { lan, procs, a, b } = await lanCluster();
    // Members probed before the others listened called them down once: only what follows counts.
    const from = new Map([...procs].map(([n, p]) => [n, p.logs.length]));
    const since = (n: string) => procs.get(n)!.logs.slice(from.get(n));
    // 8 Mbit/s both ways for b: every 4 MiB copy a sends it takes over 4 s on the wire.
    await shapeLink(b, { rateKbit: 8000, lossPct: 0 });
    const result = await writeBulk(lan, a, 20, 2);
    const hello = (await scrape(lan, a))
      .split('\n')
      .filter((l) => l.includes('method="hello"'))
      .join('\n');
    const downs = [...procs.keys()].flatMap((n) =>
      since(n)
        .filter((l) => l.msg === 'member down')
        .map((l) => `${n} called ${l.member} down: ${(l.err as { message?: string }).message}`),
    );
    const stalls = since('a').filter((l) => l.msg === 'peer not reading, connection closed');
    console.log(JSON.stringify({ result, downs, stalls: stalls.length }), '\n', hello);
    expect(result.ok).toBeGreaterThan(0);
    expect(downs).toEqual([]);
    // Nor is the data connection to b taken for one that does not read.
    expect(stalls).toEqual([]);
  }, 180_000);

  // A node that (re)connects to a stopped member gets a connection from its kernel and no answer
  // to its challenge: each lane's handshake timed out, again at every redial, every 4 s (a 2 s
  // handshake timeout, then a fixed 2 s backoff), each a 'peer handshake refused' warning.
  // PAUSE_S of the member stopped tells the two apart: a redial every 4 s makes 7 or 8 dials in
  // it; the backoff doubling after each refusal (1-2 s, 2-4 s, then 4-8 s, each after the 2 s
  // handshake timeout) at most 6, at 0 s and at the earliest 3, 7, 13, 19 and 25 s.
  // Meanwhile b, which saw c up before it stopped and keeps running, calls it down, and up
  // again once it runs (b's probes, not a's connections, are what that looks at).
  it('calls a stopped member down and up again once it runs; says once that it refuses handshakes, and redials it less and less often', async () => {
    const args = ['--peers', '', '--cluster-secret', 'stopped-member-secret'];
    const nodes = await startStaticCluster(3, args.slice(2));
    const [a, b, c] = nodes;
    // Where b logged `msg` about c after line `after`, or -1.
    const about = (msg: string, after: number) =>
      b!.proc.logs.findIndex((l, i) => i > after && l.msg === msg && l.member === c!.name);
    const from = b!.proc.logs.length - 1;
    // Stopped, its kernel still accepts and acknowledges: only the process does not answer.
    c!.proc.child.kill('SIGSTOP');
    defer(() => c!.proc.child.kill('SIGCONT'));
    // a restarts while c is stopped: its connections to c are new, and none gets past the handshake.
    await a!.proc.stop('SIGKILL');
    args[1] = peersOf(nodes);
    await restart(a!, args);
    const peer = `${c!.host}:7946`;
    const lines = (msg: string) => a!.proc.logs.filter((l) => l.msg === msg && l.peer === peer);
    const dials = async () =>
      (await metric(a!, 'kvstore_peer_connects_total{result="ok"}')) +
      (await metric(a!, 'kvstore_peer_connects_total{result="error"}'));
    const dialsBefore = await dials();
    // The pause's length is the scenario, not a wait for something.
    await new Promise((r) => setTimeout(r, PAUSE_S * 1000));
    const dialled = (await dials()) - dialsBefore;
    const refused = lines('peer handshake refused');
    console.log(JSON.stringify({ dialled, refusedLines: refused.length }));
    // Three probes of 2 s (the peer timeout) each, every 200 ms: about 7 s, well inside the pause.
    await until(
      () => about('member down', from) >= 0,
      20_000,
      () => 'b did not call the stopped c down',
    );
    c!.proc.child.kill('SIGCONT');
    await until(
      () => about('member up', about('member down', from)) >= 0,
      20_000,
      () => 'b did not call c up again',
    );
    await until(
      () => lines('peer handshake accepted again').length > 0,
      30_000,
      () => 'a did not complete a handshake with c again',
    );
    const accepted = lines('peer handshake accepted again')[0]!;
    console.log(JSON.stringify(accepted));
    // Before: 15 warnings and 15 dials in 60 s. Now one warning per episode, the rest at debug,
    // and the end of the episode with the count; each refusal in a row doubles the wait before
    // the next dial (above).
    expect(refused.length).toBe(1);
    expect(accepted.refused as number).toBeGreaterThanOrEqual(2);
    expect(dialled).toBeLessThanOrEqual(MAX_DIALS);
  }, 180_000);

  it('calls a member up again over a new probe connection once its link is back after an outage', async () => {
    const { procs, b } = await lanCluster();
    const logs = procs.get('a')!.logs;
    const from = logs.length;
    const peer = `${b.ip}:7946`;
    type Line = Record<string, unknown>;
    const about = (l: Line, msg: string) => l.msg === msg && l.member === 'b';
    const probes = (l: Line, msg: string) =>
      l.msg === msg && l.peer === peer && l.lane === 'control';
    // b's link goes down until a calls b down (linkOutage: nothing of a's probes or b's answers
    // gets through, and TCP resends them further and further apart), then comes back.
    await linkOutage(b, () => logs.slice(from).some((l) => about(l, 'member down')), 0);
    await until(
      () => logs.slice(from).some((l) => about(l, 'member up')),
      60_000,
      () => 'a did not call b up',
    );
    // What a logged about b's probe connection, in order, up to calling b up: the mechanism, not
    // a time (how soon depends on the machine's load). Before, the probes kept their connection,
    // whose segments (and b's answers) waited for TCP's next resend, and b was called up on it
    // (12.8 s after an outage of 8 s, 3.4 s and 5.8 s after 4 and 1.6 s; 6.8 s after this one):
    // nothing below was logged. Now the probe that timed out with nothing back closes it, and b
    // is called up on a connection made once the link was back (no connect succeeds while it is
    // down), which the old one's retransmission backoff cannot hold up.
    const lines = logs.slice(from);
    const up = lines.findIndex((l) => about(l, 'member up'));
    const seen = lines.slice(0, up).flatMap((l) => {
      if (probes(l, 'peer connection lost')) {
        return [`lost: ${(l.err as { message?: string } | undefined)?.message}`];
      }
      return probes(l, 'peer connected') ? ['connected'] : [];
    });
    // (A connection made as the link came back may lose its first probe too: closed the same way.)
    expect({ first: seen[0], last: seen.at(-1) }, seen.join(', ')).toEqual({
      first: 'lost: nothing received in the 2000 ms hello waited',
      last: 'connected',
    });
    for (const s of seen)
      expect(s).toMatch(/^(connected|lost: nothing received in the 2000 ms hello waited)$/);
  }, 120_000);
});

describe('hint delivery', () => {
  afterEach(cleanup);

  // Each hint batch went with the peer timeout (2 s) as its timeout and deadline: a batch the
  // link carries in more than that timed out, was refused as expired when it arrived, and was
  // sent again a second later, for good; the link carried nothing but those copies. One hint
  // shows it as well as more: each is a batch of its own (4 MiB), over 4 s on the wire.
  it('delivers hints to a member back behind a slow link, while the link stays slow', async () => {
    const { lan, procs, a, b } = await lanCluster();
    const stopped = procs.get('b')!.child;
    stopped.kill('SIGSTOP');
    defer(() => stopped.kill('SIGCONT'));
    const t0 = Date.now();
    // b's copies of 2 writes of 4 MiB (acknowledged by a and c) become hints on a. What of the
    // copies the kernels took crosses the link (to be refused as late) before the hints do.
    // (Each copy to c has time for its bytes: with 2 s, one took longer on a loaded machine.)
    expect(await writeBulk(lan, a, 0, 1, HINTS)).toEqual({ ok: HINTS, other: {} });
    const written = Date.now();
    await until(
      async () => (await gauge(lan, a, 'kvstore_hints_stored')) >= HINTS,
      30_000,
      () => `a did not keep ${HINTS} hints for the stopped b`,
      200,
    );
    // 8 Mbit/s: one 4 MiB hint takes over 4 s on the wire.
    await shapeLink(b, { rateKbit: 8000, lossPct: 0 });
    stopped.kill('SIGCONT');
    const resumed = Date.now();
    let left = Number.NaN;
    await until(
      async () => {
        left = await gauge(lan, a, 'kvstore_hints_stored');
        return left === 0;
      },
      180_000,
      () => `a still holds ${left} of its hints for b after 180 s over the slow link`,
      200,
    );
    const s = (from: number, to: number) => (to - from) / 1000;
    console.log(
      `written in ${s(t0, written)} s, hints kept ${s(written, resumed)} s later, ` +
        `${HINTS * 4} MiB of hints delivered over 8 Mbit/s in ${s(resumed, Date.now())} s`,
    );
  }, 300_000);
});
