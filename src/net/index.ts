// net: what every TCP/HTTP listener of the node shares (binding that reports its error).

export { listen } from './listen.ts';
export { atTurnEnd } from './turn.ts';
