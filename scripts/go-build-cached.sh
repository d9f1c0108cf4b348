#!/usr/bin/env bash
# Builds the Go main package in <dir> (its own go.mod) with `go build` into a cache outside the
# clone, keyed by a hash of its go.mod, go.sum and *.go files: <cache>/<name>-<hash>/<name>. A
# changed source is rebuilt, an unchanged one reused; one builder at a time per cache.
#
# Usage: scripts/go-build-cached.sh <name> <dir> <cache> <how long cold, for the log line>
#   prints the absolute path of the binary on stdout; progress and the build time go to stderr.
# Used by bench/storeload/build.sh, test/powerloss/build-powerlossfs.sh and test/clients/install.sh.
set -euo pipefail

name=${1:?usage: go-build-cached.sh <name> <dir> <cache> <duration>}
dir=$(cd "${2:?}" && pwd)
cache=${3:?}
cold=${4:?}
log() { printf '[%s] %s\n' "$name" "$*" >&2; }

key=$(cd "$dir" && cat go.mod go.sum $(ls ./*.go | sort) | sha256sum | cut -c1-16)
dest="$cache/$name-$key/$name"

if [[ ! -x $dest ]]; then
  command -v go >/dev/null || { log "go is needed to build $name ($dir)" && exit 1; }
  mkdir -p "$cache"
  exec 9>"$cache/.build.lock"
  flock 9
  if [[ ! -x $dest ]]; then
    tmp=$(mktemp -d "$cache/.build-XXXXXX")
    start=$(date +%s)
    log "building $name $key (after a change to its source or first run, $cold; $(go version | cut -d' ' -f3), nice 15)"
    (
      cd "$dir"
      CGO_ENABLED=0 GOFLAGS="-buildvcs=false -mod=readonly" nice -n 15 go build -trimpath \
        -ldflags "-s -w" -o "$tmp/$name" .
    ) || { rm -rf "$tmp" && log "FAILED to build $name" && exit 1; }
    rm -rf "$(dirname "$dest")"
    mv "$tmp" "$(dirname "$dest")"
    log "built $name in $(($(date +%s) - start))s -> $dest"
  fi
  exec 9>&-
fi
echo "$dest"
