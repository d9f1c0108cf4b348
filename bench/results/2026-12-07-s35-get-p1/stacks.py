import sys, collections
from perf_stacks import stacks
# usage: perf script | stacks.py MUST [MUSTNOT]
must = sys.argv[1]; mustnot = sys.argv[2] if len(sys.argv) > 2 else None
total = 0; hit = 0; leaves = collections.Counter()
for frames in stacks(sys.stdin):
    total += 1
    s = ' | '.join(frames)
    if must in s and (mustnot is None or mustnot not in s):
        hit += 1; leaves[frames[0]] += 1
print(f'total {total} hit {hit} ({100*hit/total:.2f}%)')
for k, v in leaves.most_common(25): print(f'{100*v/total:6.2f}%  {k[:120]}')
