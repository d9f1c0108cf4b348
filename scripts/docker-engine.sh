#!/usr/bin/env bash
# Starts a Docker engine (Debian's docker.io dockerd, as root) when none answers, and stops the one it started.
#
# Usage: scripts/docker-engine.sh start   start dockerd unless `docker info` already works; prints
#                                         `started` or `running` (an engine answered already)
#        scripts/docker-engine.sh stop    stop the dockerd that `start` started (nothing otherwise)
# .ci/run calls `start` before the tests and, only when it printed `started`, `stop` on exit: an
# engine that ran before (even one an earlier `start` made, whose pid file stays) keeps running. The engine uses overlay2 and the
# cgroupfs driver (cgroup v1, no systemd) and leaves the host's firewall alone (--iptables=false:
# no FORWARD DROP policy, no NAT rules; other tests share this network namespace). Published
# ports still work through docker-proxy, containers on one network reach each other, and builds
# use the host network (scripts/image.sh). Log: /var/log/kvstore-dockerd.log.
set -euo pipefail

pidfile=/run/kvstore-dockerd.pid
log() { printf '[docker-engine] %s\n' "$*" >&2; }
die() { log "$*" && exit 1; }

case ${1:-} in
start)
  if docker info >/dev/null 2>&1; then
    log "a Docker engine is running already; it stays running"
    echo running
    exit 0
  fi
  [[ $(id -u) == 0 ]] || die "starting dockerd needs root"
  command -v dockerd >/dev/null || die "no dockerd: apt-get install docker.io"
  dockerd --storage-driver overlay2 --exec-opt native.cgroupdriver=cgroupfs --iptables=false \
    >>/var/log/kvstore-dockerd.log 2>&1 &
  echo $! >"$pidfile"
  for _ in $(seq 1 120); do
    if docker info >/dev/null 2>&1; then
      log "dockerd started (pid $(cat "$pidfile"), log /var/log/kvstore-dockerd.log)"
      echo started
      exit 0
    fi
    kill -0 "$(cat "$pidfile")" 2>/dev/null || break
    sleep 0.5
  done
  tail -20 /var/log/kvstore-dockerd.log >&2 || true
  die "dockerd did not come up (log above)"
  ;;
stop)
  [[ -f $pidfile ]] || exit 0
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null && [[ $(cat "/proc/$pid/comm" 2>/dev/null) == dockerd ]]; then
    kill -TERM "$pid"
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    log "dockerd (pid $pid) stopped"
  fi
  rm -f "$pidfile"
  ;;
*) die "usage: $0 start|stop" ;;
esac
