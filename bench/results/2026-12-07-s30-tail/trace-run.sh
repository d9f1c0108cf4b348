#!/bin/bash
# trace-run.sh LABEL node|redis [REQUESTS] [extra node flags...]
# One server on port 46100, filled; then the C client's GET P1 run under perf sched tracing.
export PATH=/work/wt-h6/node_modules/.bin:$PATH
L=$1; KIND=$2; N=${3:-300000}; shift 3
SCRIPT=${SCRIPT:-/work/wt-h6/src/main.ts}
O=/tmp/h6/runs/$L; rm -rf $O; mkdir -p $O
PORT=46100
if [ $KIND = node ]; then
  D=$O/data; mkdir -p $D
  (cd /work/wt-h6 && MALLOC_MMAP_THRESHOLD_=131072 GCTRACE_OUT=$O/gc.txt exec node --max-semi-space-size=16 "$@" --import /tmp/h6/gctrace.mjs $SCRIPT --node-name n1 --host 127.0.0.1 --port $PORT --http-port 46101 --peer-port 46102 --data-dir $D --log-level warn --replication-factor 1 --write-quorum 1 --read-quorum 1 > $O/node.log 2>&1) &
else
  (exec redis-server --port $PORT --save "" --appendonly no --bind 127.0.0.1 > $O/redis.log 2>&1) &
fi
for i in $(seq 200); do redis-cli -p $PORT ping 2>/dev/null | grep -q PONG && break; sleep 0.2; done
if [ $KIND = node ]; then PID=$(pgrep -f "port $PORT --http-port 46101"); else PID=$(pgrep -f "redis-server.*:$PORT"); fi
echo "pid $PID" > $O/pid
redis-benchmark -p $PORT -t set -c 50 -P 16 -r 100000 -d 100 -n 400000 -q > /dev/null 2>&1
/tmp/h6/lat 127.0.0.1 $PORT 50 100000 100000 /dev/null > /dev/null   # warm-up
echo "load $(cut -d' ' -f1-3 /proc/loadavg)" > $O/summary
ctx0=$(grep nonvoluntary /proc/$PID/status | awk '{print $2}')
perf record -q -a -k mono -e sched:sched_switch -e syscalls:sys_enter_epoll_pwait -e syscalls:sys_exit_epoll_pwait -e syscalls:sys_enter_epoll_wait -e syscalls:sys_exit_epoll_wait -o $O/perf.data -- /tmp/h6/lat 127.0.0.1 $PORT 50 $N 100000 $O/lat.txt >> $O/summary 2> $O/perf.err
ctx1=$(grep nonvoluntary /proc/$PID/status | awk '{print $2}')
echo "involuntary switches (process leader) $((ctx1-ctx0)) $(grep -E 'VmRSS|VmHWM' /proc/$PID/status | tr -s ' \t' ' ' | tr '\n' ' ')" >> $O/summary
kill -TERM $PID
for i in $(seq 100); do kill -0 $PID 2>/dev/null || break; sleep 0.1; done
rm -rf $O/data
perf script -i $O/perf.data -F tid,time,cpu,event,trace --ns 2>/dev/null > $O/sched.txt
rm -f $O/perf.data
cat $O/summary
