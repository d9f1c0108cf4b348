#!/bin/bash
# usage: alloc.sh WORKTREE PORT -> bytes allocated per SET (P16) from --trace-gc-nvp; WORKTREE: a checkout with node_modules (runs src/main.ts)
WT=$1; PORT=$2; D=$(mktemp -d /tmp/alloc.XXXX)
cd $WT
node --max-semi-space-size=16 --no-parallel-scavenge --trace-gc-nvp src/main.ts --node-name a --host 127.0.0.1 --port $PORT --http-port $((PORT+1)) --peer-port $((PORT+2)) --data-dir $D --replication-factor 1 --write-quorum 1 --read-quorum 1 --log-level warn > $D/gc.log 2>&1 &
PID=$!
for i in $(seq 50); do redis-cli -p $PORT ping >/dev/null 2>&1 && break; sleep 0.2; done
redis-benchmark -p $PORT -t set -n 200000 -c 50 -P 16 -r 100000 -d 100 -q >/dev/null
L0=$(wc -l < $D/gc.log)
redis-benchmark -p $PORT -t set -n 800000 -c 50 -P 16 -r 100000 -d 100 -q | tr '\r' '\n' | tail -2
tail -n +$((L0+1)) $D/gc.log | grep -o 'allocated=[0-9]*' | awk -F= '{s+=$2; n++} END {printf "gcs %d allocated %.0f MB, per SET %.0f B\n", n, s/1e6, s/800000}'
tail -n +$((L0+1)) $D/gc.log | grep -o "pause=[0-9.]* mutator=[0-9.]* gc=[a-z]*" | awk "{split(\$1,a,\"=\"); split(\$3,b,\"=\"); s[b[2]]+=a[2]; n[b[2]]++} END {for (k in s) printf \"%s n=%d pause=%.0f ms\\n\", k, n[k], s[k]}"
grep -o "promoted=[0-9]*" $D/gc.log | tail -n +3 | awk -F= "{s+=\$2} END {printf \"promoted total %.0f MB\\n\", s/1e6}"
kill $PID; wait $PID 2>/dev/null; rm -rf $D
