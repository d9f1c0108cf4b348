#!/bin/bash
# CPU per GET of mini.mjs stream vs userbuf, alternating, lat client 50 conns P1.
export PATH=/work/wt-h6/node_modules/.bin:$PATH
tck=$(getconf CLK_TCK)
for r in 1 2 3 4; do export SLOW=1;
  if [ $((r % 2)) = 1 ]; then order="stream userbuf"; else order="userbuf stream"; fi
  for m in $order; do
    : > /tmp/h6/mini.log; node /tmp/h6/mini.mjs 46200 $m > /tmp/h6/mini.log 2>&1 &
    P=$!
    for i in $(seq 50); do grep -q listening /tmp/h6/mini.log && break; sleep 0.1; done
    /tmp/h6/lat 127.0.0.1 46200 50 100000 100000 /dev/null > /dev/null
    c0=$(awk '{print $14+$15}' /proc/$P/stat)
    res=$(/tmp/h6/lat 127.0.0.1 46200 50 300000 100000 /dev/null)
    c1=$(awk '{print $14+$15}' /proc/$P/stat)
    echo "round $r $m cpu_us_per_get $(echo "($c1-$c0)*1000000/$tck/300000" | bc -l | cut -c1-5) $res load $(cut -d' ' -f1 /proc/loadavg)"
    kill $P; wait $P 2>/dev/null
  done
done
