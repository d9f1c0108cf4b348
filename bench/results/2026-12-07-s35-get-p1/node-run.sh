#!/bin/bash
# usage: node-run.sh SCRIPT PORT MODE(plain|strace|perf|cpuprof|gc|heap) N  (heap: HEAPOUT=file; the preload is session 34's heapsample.mjs)
set -u
SCRIPT=$1; PORT=$2; MODE=$3; N=${4:-300000}
export PATH=/work/main/node_modules/.bin:$PATH
D=$(mktemp -d /tmp/h3s35/data-XXXX)
EXTRA=""
[ "$MODE" = cpuprof ] && EXTRA="--cpu-prof --cpu-prof-dir=/tmp/h3s35/cpuprof --cpu-prof-interval 100"
[ "$MODE" = perf ] && EXTRA="--perf-basic-prof"
[ "$MODE" = gc ] && EXTRA="--trace-gc"
[ "$MODE" = heap ] && EXTRA="--import /work/wt-h3/bench/results/2026-12-07-s34-tail/heapsample.mjs"
MALLOC_MMAP_THRESHOLD_=131072 node --max-semi-space-size=16 --no-parallel-scavenge $EXTRA $SCRIPT --node-name k --host 127.0.0.1 --port $PORT --http-port 0 --peer-port 0 --data-dir $D --replication-factor 1 --write-quorum 1 --read-quorum 1 --log-level error > $D.log 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf $D $D.log' EXIT
for i in $(seq 100); do redis-cli -p $PORT ping >/dev/null 2>&1 && break; sleep 0.1; done
redis-benchmark -p $PORT -t set -n 200000 -r 100000 -d 100 -c 50 -P 16 -q >/dev/null
redis-benchmark -p $PORT -t get -n 100000 -r 100000 -d 100 -c 50 -P 1 -q >/dev/null
cpu() { awk '{print $14+$15}' /proc/$PID/stat; }
C0=$(cpu); G0=$(grep -c Scavenge $D.log)
case $MODE in
  strace) strace -c -f -p $PID -o /tmp/h3s35/strace-$PORT.txt & SP=$!; sleep 0.5;;
  perf) perf record -g -p $PID -o /tmp/h3s35/perf-$PORT.data 2>/dev/null & SP=$!; sleep 0.5;;
esac
[ "$MODE" = heap ] && kill -USR2 $PID
T0=$(date +%s.%N)
redis-benchmark -p $PORT -t get -n $N -r 100000 -d 100 -c 50 -P 1 --csv | tail -1
T1=$(date +%s.%N)
[ "$MODE" = heap ] && { kill -USR2 $PID; sleep 3; }
C1=$(cpu); G1=$(grep -c Scavenge $D.log); echo "scavenges=$((G1-G0))"
[ "$MODE" = strace -o "$MODE" = perf ] && { kill -INT $SP; wait $SP; }
echo "cpu_us_per_get=$(echo "($C1-$C0)*10000/$N" | bc -l | cut -c1-6) wall=$(echo "$T1-$T0"|bc) load=$(cut -d' ' -f1 /proc/loadavg)"
