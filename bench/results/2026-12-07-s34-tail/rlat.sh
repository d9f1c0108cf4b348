#!/bin/bash
PORT=21350; O=${O:-/tmp/h3/runs/redis}; mkdir -p $O
(exec redis-server --port $PORT --save "" --appendonly no --bind 127.0.0.1 > /dev/null 2>&1) &
for i in $(seq 200); do redis-cli -p $PORT ping 2>/dev/null | grep -q PONG && break; sleep 0.1; done
PID=$(pgrep -f "redis-server.*:$PORT")
redis-benchmark -p $PORT -t set -c 50 -P 16 -r 100000 -d 100 -n 400000 -q > /dev/null 2>&1
/tmp/h3/lat 127.0.0.1 $PORT 50 100000 100000 /dev/null > /dev/null
/tmp/h3/lat 127.0.0.1 $PORT 50 ${N:-200000} 100000 $O/lat.txt
kill -TERM $PID; for i in $(seq 50); do kill -0 $PID 2>/dev/null || break; sleep 0.1; done
