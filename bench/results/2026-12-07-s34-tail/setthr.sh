#!/bin/bash
# setthr.sh: node SET P1 (redis-benchmark) with GC trace; prints ops, CPU per SET (process, main thread), GC pauses in the run
export PATH=/work/wt-h3/node_modules/.bin:$PATH
SCRIPT=${SCRIPT:-/work/wt-h3/src/main.ts}; PORT=21340; O=${O:-/tmp/h3/runs/set}; mkdir -p $O
D=$(mktemp -d /tmp/h3/d.XXXX)
(MALLOC_MMAP_THRESHOLD_=131072 GCTRACE_OUT=$O/gc.txt exec node ${NODEFLAGS:---max-semi-space-size=16} --import /tmp/h3/gctrace.mjs $SCRIPT --node-name n1 --host 127.0.0.1 --port $PORT --http-port 21341 --peer-port 21342 --data-dir $D --log-level warn --replication-factor 1 --write-quorum 1 --read-quorum 1 > $D.log 2>&1) &
for i in $(seq 200); do redis-cli -p $PORT ping 2>/dev/null | grep -q PONG && break; sleep 0.2; done
PID=$(pgrep -f "port $PORT --http-port 21341")
redis-benchmark -p $PORT -t set -c 50 -P 16 -r 100000 -d 100 -n 200000 -q > /dev/null 2>&1
redis-benchmark -p $PORT -t set -c 50 -P 1 -r 100000 -d 100 -n 20000 -q > /dev/null 2>&1
p0=$(cut -d' ' -f14,15 /proc/$PID/stat); m0=$(cut -d' ' -f14,15 /proc/$PID/task/$PID/stat); t0=$(cut -d' ' -f1 /proc/uptime)
R=$(redis-benchmark -p $PORT -t set -c 50 -P 1 -r 100000 -d 100 -n ${N:-60000} --csv 2>/dev/null | tail -1)
p1=$(cut -d' ' -f14,15 /proc/$PID/stat); m1=$(cut -d' ' -f14,15 /proc/$PID/task/$PID/stat); t1=$(cut -d' ' -f1 /proc/uptime)
kill -TERM $PID; for i in $(seq 100); do kill -0 $PID 2>/dev/null || break; sleep 0.1; done
rm -rf $D $D.log
node -e '
const [p0,p1,m0,m1,t0,t1,n,r,f]=process.argv.slice(1); const s=(a)=>a.split(" ").map(Number).reduce((x,y)=>x+y,0);
const fs=require("fs"); const g=fs.readFileSync(f,"utf8").trim().split("\n").slice(1).map(l=>l.split(" ").map(Number));
const mono=Number(process.hrtime.bigint()/1000000n)/1000; // not used
const cols=r.split(",").map(x=>x.replace(/"/g,""));
console.log(`ops ${cols[1]} p50 ${cols[5]} p99 ${cols[7]} | CPU us/SET process ${(s(p1)-s(p0))*1e4/n} main ${(s(m1)-s(m0))*1e4/n}`);
' "$p0" "$p1" "$m0" "$m1" "$t0" "$t1" ${N:-60000} "$R" $O/gc.txt
node -e '
const fs=require("fs"); const [f,t0,t1]=process.argv.slice(1); const g=fs.readFileSync(f,"utf8").trim().split("\n").slice(1).map(l=>l.split(" ").map(Number));
const w=g.filter(([s,d,k])=>s/1e9>=Number(t0)&&s/1e9<=Number(t1)); const d=w.map(x=>x[1]/1e6).sort((a,b)=>a-b);
console.log(`GCs in run ${w.length} (minor ${w.filter(x=>x[2]===1).length}), pause median ${d[Math.floor(d.length/2)]?.toFixed(2)} max ${d.at(-1)?.toFixed(2)} total ${d.reduce((a,b)=>a+b,0).toFixed(1)} ms`);
' $O/gc.txt $t0 $t1
