"""The samples of `perf script` output, each as its list of frame symbols (leaf first)."""
import re


def stacks(lines):
    frames = []
    for line in lines:
        line = line.rstrip('\n')
        if not line.strip():
            if frames:
                yield frames
            frames = []
            continue
        if line.startswith('\t') or line.startswith(' '):
            parts = line.strip().split(' ', 1)
            if len(parts) == 2:
                frames.append(re.sub(r'\+0x[0-9a-f]+$', '', parts[1].split(' (')[0]))
    if frames:
        yield frames
