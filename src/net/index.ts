// net: what every TCP/HTTP listener of the node shares (binding that reports its error), and
// the end-of-turn pass where sockets are written (client replies, peer frames) and log groups start,
// and the bounds of work per event-loop turn (TurnBudget).

export { checkBindable, type ListenAddress } from './bindable.ts';
export { listen } from './listen.ts';
export { onReads, type Reads } from './reads.ts';
export { type SlotOutcome, Slots } from './slots.ts';
export { atNextTurn, atTurnEnd, currentJob, turnPasses } from './turn.ts';
export { inPieces, TurnBudget } from './turn-budget.ts';
export { directBytes, directWrites, writeDirect } from './writes.ts';
