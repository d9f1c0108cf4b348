import sys, re, collections
# usage: perf script | stacks.py MUST [MUSTNOT]
must = sys.argv[1]; mustnot = sys.argv[2] if len(sys.argv) > 2 else None
total = 0; hit = 0; leaves = collections.Counter()
frames = []; 
def flush():
    global total, hit
    if not frames: return
    total += 1
    s = ' | '.join(frames)
    if must in s and (mustnot is None or mustnot not in s):
        hit += 1; leaves[frames[0]] += 1
for line in sys.stdin:
    line = line.rstrip('\n')
    if not line.strip():
        flush(); frames.clear(); continue
    if line.startswith('\t') or line.startswith(' '):
        parts = line.strip().split(' ', 1)
        if len(parts) == 2:
            sym = re.sub(r'\+0x[0-9a-f]+$', '', parts[1].split(' (')[0])
            frames.append(sym)
flush()
print(f'total {total} hit {hit} ({100*hit/total:.2f}%)')
for k, v in leaves.most_common(25): print(f'{100*v/total:6.2f}%  {k[:120]}')
