#!/bin/bash
# pair.sh: lat GET P1 (300,000, 50 conns) on main and on the branch, alternating, 2 pairs; GC + timers traced (no read/write events).
uptime
for i in 1 2; do
  for w in base:/tmp/h8-base br:/work/wt-h8; do
    /tmp/h8/run.sh p$i-${w%%:*} ${w#*:} 300000 > /dev/null
    echo "p$i ${w%%:*}: $(grep -E 'ops/s|load|ctxt' /tmp/h8/runs/p$i-${w%%:*}/summary | tr '\n' ' ') gcs $(grep -c '^gc' /tmp/h8/runs/p$i-${w%%:*}/trace.txt.meta)"
    grep '"GET"' /tmp/h8/runs/p$i-${w%%:*}/summary
  done
done
uptime
