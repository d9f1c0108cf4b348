import sys,re
# RSS by kind of mapping: V8 heap pages (256 KiB anon), glibc heap/arenas, stacks, file-backed, other anon
def load(f):
    out={}; cur=None
    for l in open(f):
        if re.match(r'^[0-9a-f]+-[0-9a-f]+ ',l):
            p=l.split(); a,b=p[0].split('-'); size=(int(b,16)-int(a,16))//1024; name=p[5] if len(p)>5 else ''
            if name=='[heap]': k='glibc [heap]'
            elif name.startswith('[stack'): k='[stack]'
            elif name.startswith('/'): k='file-backed'
            elif name: k=name
            elif size==256: k='anon 256 KiB (V8 heap pages)'
            elif size in (65536,131072) or size>=60000 and size<=65536: k='anon ~64 MiB (glibc arenas)'
            else: k='other anon'
            cur=k; out.setdefault(k,[0,0])[1]+=1
        elif l.startswith('Rss:'): out[cur][0]+=int(l.split()[1])
    return out
A=load(sys.argv[1]); B=load(sys.argv[2])
print(f"{'mapping kind':32s} {'RSS kB before':>14s} {'after':>8s} {'diff':>7s}  mappings before/after")
for k in sorted(set(A)|set(B)):
    a=A.get(k,[0,0]); b=B.get(k,[0,0])
    print(f"{k:32s} {a[0]:14d} {b[0]:8d} {b[0]-a[0]:7d}  {a[1]}/{b[1]}")
