import sys, re, collections
groups = [
 ('GC (scavenges, V8 heap)', ['Heap::CollectGarbage','ScavengerCollector','Scavenger::','MinorGC','Heap::Scavenge']),
 ('LMDB lookup (getBinaryFast)', ['getBinaryFast','mdb_']),
 ('reply writes: write(2) in the kernel', ['__GI___libc_write']),
 ('reply writes: JS/C++ around the call', ['writeAll file','writeDirect','_writeGeneric','node::fs::WriteBuffer','afterWriteTick','afterWrite ']),
 ('request reads: callback, parse, dispatch (ours + Node)', ['OnUvRead']),
 ('request reads: read(2)', ['uv__read']),
 ('epoll_pwait', ['epoll_pwait']),
 ('turn end / immediates (other)', ['processImmediate','CheckImmediate']),
]
def classify(frames):
    s = ' | '.join(frames)
    for name, keys in groups:
        if any(k in s for k in keys): return name
    return 'other'
counts = collections.Counter(); total = 0; frames = []
def flush():
    global total
    if frames:
        total += 1; counts[classify(frames)] += 1
for line in sys.stdin:
    line = line.rstrip('\n')
    if not line.strip():
        flush(); frames.clear(); continue
    if line.startswith('\t') or line.startswith(' '):
        parts = line.strip().split(' ', 1)
        if len(parts) == 2: frames.append(re.sub(r'\+0x[0-9a-f]+$', '', parts[1].split(' (')[0]))
flush()
for name, _ in groups + [('other', None)]:
    print(f'{100*counts[name]/total:6.1f}%  {name}')
print(f'samples {total}')
