import sys, re, collections
def parse(p):
    maps=[]; cur=None
    for line in open(p):
        if re.match(r'^[0-9a-f]+-[0-9a-f]+ ', line):
            parts=line.split()
            a,b=[int(x,16) for x in parts[0].split('-')]
            name=parts[5] if len(parts)>5 else ''
            cur={'size':(b-a)//1024,'name':name,'perm':parts[1],'addr':parts[0]}
            maps.append(cur)
        elif cur is not None and ':' in line:
            k,v=line.split(':',1)
            v=v.strip().split()
            if v and v[0].isdigit(): cur[k]=int(v[0])
    return maps
def cls(m):
    n=m['name']
    if n.endswith('/node'): return 'node binary'
    if n.startswith('/'): return 'file:'+n.split('/')[-1]
    if n: return n
    s=m['size']
    if s==256: return 'anon 256K (V8 page)'
    return 'anon other'
for p in sys.argv[1:]:
    maps=parse(p)
    agg=collections.Counter(); cnt=collections.Counter()
    for m in maps:
        agg[cls(m)]+=m.get('Rss',0); cnt[cls(m)]+=1
    print(p, 'total', sum(agg.values()))
    for k,v in agg.most_common(40):
        if v>=100: print(f'  {v:7d} kB  {cnt[k]:4d}  {k}')
