#!/bin/bash
# loop.sh R1 R2: rounds of A (plain), B (--no-parallel-scavenge), Redis under lat, order rotated
for r in $(seq $1 $2); do
  case $((r % 3)) in 0) ord="A B R";; 1) ord="B R A";; 2) ord="R A B";; esac
  for w in $ord; do
    case $w in A) f="--max-semi-space-size=16";; B) f="--max-semi-space-size=16 --no-parallel-scavenge";; esac
    l=$(cut -d' ' -f1 /proc/loadavg)
    if [ $w = R ]; then echo "round $r Redis load $l $(O=/tmp/h3/runs/pR$r timeout 120 ./rlat.sh)"; else
    O=/tmp/h3/runs/p$w$r NODEFLAGS="$f" N=200000 timeout 180 ./thr.sh > /tmp/h3/runs/p$w$r.out 2>&1
    echo "round $r $w load $l $(grep -E 'ops/s|did not' /tmp/h3/runs/p$w$r.out)"; node gcx.mjs /tmp/h3/runs/p$w$r | sed 's#/tmp/h3/runs/##'; fi
  done
done
