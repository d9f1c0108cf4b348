#!/bin/bash
# run.sh LABEL TREE [N]  — one node from TREE, filled; lat GET P1 50 conns traced; then redis-benchmark GET P1.
L=$1; TREE=$2; N=${3:-300000}
export PATH=$TREE/node_modules/.bin:$PATH
O=/tmp/h8/runs/$L; rm -rf $O; mkdir -p $O; D=$O/data; mkdir -p $D
PORT=23800
(cd $TREE && MALLOC_MMAP_THRESHOLD_=131072 KVTRACE_OUT=$O/trace.txt exec node --max-semi-space-size=16 --no-parallel-scavenge --import /tmp/h8/trace.mjs src/main.ts --node-name n1 --host 127.0.0.1 --port $PORT --http-port 23801 --peer-port 23802 --data-dir $D --log-level warn --replication-factor 1 --write-quorum 1 --read-quorum 1 > $O/node.log 2>&1) &
for i in $(seq 200); do kill -0 $! 2>/dev/null || { echo "node exited: $(tail -1 $O/node.log)"; exit 1; }; redis-cli -p $PORT ping 2>/dev/null | grep -q PONG && break; sleep 0.2; done
PID=$(pgrep -f "port $PORT --http-port 23801")
redis-benchmark -p $PORT -t set -c 50 -P 16 -r 100000 -d 100 -n 400000 -q > /dev/null 2>&1
/tmp/h8/lat 127.0.0.1 $PORT 50 100000 100000 /dev/null > /dev/null
echo "load $(cut -d' ' -f1-3 /proc/loadavg)" > $O/summary
c0=$(awk '/ctxt/{print $2}' /proc/$PID/status | tr '\n' ' ')
/tmp/h8/lat 127.0.0.1 $PORT 50 $N 100000 $O/lat.txt >> $O/summary
c1=$(awk '/ctxt/{print $2}' /proc/$PID/status | tr '\n' ' ')
echo "ctxt vol/invol before $c0 after $c1" >> $O/summary
redis-benchmark -p $PORT -t get -c 50 -P 1 -r 100000 -d 100 -n 500000 --csv >> $O/summary 2>&1
kill -TERM $PID; for i in $(seq 100); do kill -0 $PID 2>/dev/null || break; sleep 0.1; done
rm -rf $D; cat $O/summary
