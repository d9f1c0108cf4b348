#!/bin/bash
# thr.sh [node flags...]: per-thread CPU (ticks) of the node over a 300k GET P1 lat run, plus GC trace
export PATH=/work/wt-h3/node_modules/.bin:$PATH
SCRIPT=${SCRIPT:-/work/wt-h3/src/main.ts}; PORT=21320; O=${O:-/tmp/h3/runs/thr}; mkdir -p $O
D=$(mktemp -d /tmp/h3/d.XXXX)
(MALLOC_MMAP_THRESHOLD_=131072 GCTRACE_OUT=$O/gc.txt exec node ${NODEFLAGS:---max-semi-space-size=16} --import /tmp/h3/gctrace.mjs $SCRIPT --node-name n1 --host 127.0.0.1 --port $PORT --http-port 21321 --peer-port 21322 --data-dir $D --log-level warn --replication-factor 1 --write-quorum 1 --read-quorum 1 > $D.log 2>&1) &
for i in $(seq 200); do redis-cli -p $PORT ping 2>/dev/null | grep -q PONG && break; sleep 0.2; done
PID=$(pgrep -f "port $PORT --http-port 21321"); [ -z "$PID" ] && { echo "node did not start: $(cat $D.log)"; rm -rf $D $D.log; exit 1; }
redis-benchmark -p $PORT -t set -c 50 -P 16 -r 100000 -d 100 -n 400000 -q > /dev/null 2>&1
/tmp/h3/lat 127.0.0.1 $PORT 50 100000 100000 /dev/null > /dev/null
snap() { for t in /proc/$PID/task/*; do echo "$(basename $t) $(cat $t/comm | tr ' ' _) $(cut -d' ' -f14,15 $t/stat)"; done; }
snap > $O/t0; grep -c . $O/gc.txt 2>/dev/null; 
/tmp/h3/lat 127.0.0.1 $PORT 50 ${N:-300000} 100000 $O/lat.txt
snap > $O/t1
join <(sort $O/t0) <(sort $O/t1) | awk '{d=($5+$6)-($3+$4); if (d>0) print $2, "user+sys ticks", ($5-$3), ($6-$4)}'
kill -TERM $PID; for i in $(seq 100); do kill -0 $PID 2>/dev/null || break; sleep 0.1; done
rm -rf $D $D.log
