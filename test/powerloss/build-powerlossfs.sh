#!/usr/bin/env bash
# Builds powerlossfs (test/powerloss/go: a FUSE filesystem that loses unsynced writes on a
# simulated power cut) with `go build` into a cache outside the clone, keyed by a hash of its
# source and module files, so a changed source is rebuilt and an unchanged one is reused
# (scripts/go-build-cached.sh).
#
# Usage: test/powerloss/build-powerlossfs.sh    prints the absolute path of the binary on stdout.
# Environment: KVSTORE_POWERLOSS_CACHE (default ${XDG_CACHE_HOME:-$HOME/.cache}/kvstore-powerloss).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${KVSTORE_POWERLOSS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kvstore-powerloss}
exec bash "$here/../../scripts/go-build-cached.sh" powerlossfs "$here/go" "$cache" '~2 min'
