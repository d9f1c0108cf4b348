// The node-wide bound on the bytes of large replies made and written in one event-loop turn.

/** A reply of this many bytes or more is large: it counts in the TurnBudget and may wait for it. */
export const LARGE_REPLY_BYTES = 64 * 1024;

/**
 * Bytes of large replies the node makes (a value read for a GET, copied or encoded) and writes in
 * one event-loop turn, over every client connection (a TurnBudget, net/turn-budget.ts). Three
 * nodes (RF=3, R=2) beside 40 clients that each kept 16 GETs of 1 MiB in flight: the coordinator
 * started 128 GETs in one turn (the reply budget's 128 MiB), the other replica's headers for all
 * of them came back in one frame, and the turn that completed them made and wrote 128 MiB
 * (0.5-1.9 s at load 13): a 100-byte GET answered in that batch waited for it, a new connection
 * waited for that turn and the next (the node accepts one connection per turn), and the starts
 * and completions went on in lockstep. Why 8 MiB (bench/results/2026-12-07-s30-turn-budget-ab.md):
 * 4 MiB answered small GETs and new connections a little sooner but cost about 15% more CPU per
 * MiB of large replies on one node; with 16 MiB, small GETs on three nodes waited nearly as long
 * as without a bound.
 */
export const NODE_TURN_BYTES = 8 * 1024 * 1024;
