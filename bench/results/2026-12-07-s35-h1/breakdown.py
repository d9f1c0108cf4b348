import sys, re, collections, statistics
import os; exec(open(os.path.join(os.path.dirname(__file__), 'smaps.py')).read().split('for p in sys.argv')[0])
def cat(m):
    n=m['name']; a=int(m['addr'].split('-')[0],16); sz=m['size']
    if n.endswith('/node'): return 'node binary'
    if n.endswith('.node'): return 'native addons (.node files)'
    if n=='[heap]': return 'glibc main heap'
    if n.startswith('/'): return 'shared libraries (libc, libstdc++, libm, ld)'
    if n: return 'other ('+n+')'
    if sz == 32768: return 'xxhash addon allocator (32 MiB reserved)'
    if 'x' in m['perm']: return 'V8 heap, code and JIT (V8 mappings)'
    if a < 0x7e0000000000: return 'V8 heap, code and JIT (V8 mappings)'
    if a % (64<<20) == 0: return 'glibc thread arenas'
    if sz in (8192, 8196): return 'thread stacks'
    return 'other anon (mmapped buffers, absl, libuv)'
groups=collections.defaultdict(list)
for label,files in [(a.split('=')[0], a.split('=')[1].split(',')) for a in sys.argv[1:]]:
    per=[]
    for f in files:
        c=collections.Counter()
        for m in parse(f): c[cat(m)]+=m.get('Rss',0)
        c['total']=sum(v for k,v in c.items())
        per.append(c)
    keys=sorted(set(k for c in per for k in c))
    groups[label]={k: statistics.median([c.get(k,0) for c in per]) for k in keys}
labels=list(groups)
keys=sorted(set(k for g in groups.values() for k in g), key=lambda k: -groups[labels[-1]].get(k,0))
print('| kB (median) | ' + ' | '.join(labels)+' |')
for k in keys: print(f'| {k} | ' + ' | '.join(str(int(groups[l].get(k,0))) for l in labels) + ' |')
