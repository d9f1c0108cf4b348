#!/usr/bin/env bash
# Builds powerlossfs (test/powerloss/go: a FUSE filesystem that loses unsynced writes on a
# simulated power cut) with `go build` into a cache outside the clone, keyed by a hash of its
# source and module files, so a changed source is rebuilt and an unchanged one is reused.
#
# Usage: test/powerloss/build-powerlossfs.sh    prints the absolute path of the binary on stdout.
# Environment: KVSTORE_POWERLOSS_CACHE (default ${XDG_CACHE_HOME:-$HOME/.cache}/kvstore-powerloss).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${KVSTORE_POWERLOSS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kvstore-powerloss}
log() { printf '[powerlossfs] %s\n' "$*" >&2; }

key=$(cd "$here/go" && cat go.mod go.sum $(ls ./*.go | sort) | sha256sum | cut -c1-16)
dest="$cache/powerlossfs-$key/powerlossfs"

if [[ ! -x $dest ]]; then
  command -v go >/dev/null || { log "go is needed to build powerlossfs" && exit 1; }
  mkdir -p "$cache"
  exec 9>"$cache/.build.lock" # one builder at a time
  flock 9
  if [[ ! -x $dest ]]; then
    tmp=$(mktemp -d "$cache/.build-XXXXXX")
    start=$(date +%s)
    log "building powerlossfs $key (after a change to its source or first run, ~2 min; $(go version | cut -d' ' -f3), nice 15)"
    (
      cd "$here/go"
      CGO_ENABLED=0 GOFLAGS="-buildvcs=false -mod=readonly" nice -n 15 go build -trimpath \
        -ldflags "-s -w" -o "$tmp/powerlossfs" .
    ) || { rm -rf "$tmp" && log "FAILED to build powerlossfs" && exit 1; }
    rm -rf "$(dirname "$dest")"
    mv "$tmp" "$(dirname "$dest")"
    log "built powerlossfs in $(($(date +%s) - start))s -> $dest"
  fi
  exec 9>&-
fi
echo "$dest"
