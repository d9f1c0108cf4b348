import sys, collections
from perf_stacks import stacks
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
counts = collections.Counter(); total = 0
for frames in stacks(sys.stdin):
    total += 1; counts[classify(frames)] += 1
for name, _ in groups + [('other', None)]:
    print(f'{100*counts[name]/total:6.1f}%  {name}')
print(f'samples {total}')
