#!/usr/bin/env bash
# Builds the `docker compose` CLI plugin with `go build` from the Go module proxy into a cache outside the clone, keyed by version.
#
# Usage: test/compose/build-compose.sh    prints the absolute path of the binary on stdout.
# The version is the one test/compose/go/go.mod requires; a cached binary that reports it is
# reused. No Docker engine is needed for what the tests run (`docker compose config`).
# Environment: KVSTORE_COMPOSE_CACHE (default ${XDG_CACHE_HOME:-$HOME/.cache}/kvstore-compose).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${KVSTORE_COMPOSE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kvstore-compose}
module=github.com/docker/compose/v5
log() { printf '[compose] %s\n' "$*" >&2; }

version=$(awk -v m="$module" '$1 == "require" && $2 == m { print $3; exit }' "$here/go/go.mod")
[[ -n $version ]] || { log "no $module version in $here/go/go.mod" && exit 1; }
dest="$cache/docker-compose-$version/docker-compose"

works() { [[ -x $1 ]] && [[ $("$1" version --short 2>&1) == "${version#v}" ]]; }

if ! works "$dest"; then
  command -v go >/dev/null || { log "go is needed to build docker compose $version" && exit 1; }
  mkdir -p "$cache"
  exec 9>"$cache/.build.lock" # one builder at a time
  flock 9
  if ! works "$dest"; then
    tmp=$(mktemp -d "$cache/.build-XXXXXX")
    start=$(date +%s)
    log "building docker compose $version (first run only, ~14 min; $(go version | cut -d' ' -f3), nice 15)"
    (
      cd "$here/go"
      CGO_ENABLED=0 GOFLAGS="-buildvcs=false -mod=readonly" nice -n 15 go build -trimpath \
        -ldflags "-s -w -X $module/internal.Version=$version" -o "$tmp/docker-compose" "$module/cmd"
    ) || { rm -rf "$tmp" && log "FAILED to build docker compose $version" && exit 1; }
    works "$tmp/docker-compose" || { rm -rf "$tmp" && log "built binary does not report $version" && exit 1; }
    rm -rf "$(dirname "$dest")"
    mv "$tmp" "$(dirname "$dest")"
    log "built docker compose $version in $(($(date +%s) - start))s -> $dest"
  fi
  exec 9>&-
fi
echo "$dest"
