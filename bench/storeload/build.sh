#!/usr/bin/env bash
# Builds storeload (bench/storeload: the load generator of the bench's kvstore-vs-etcd cell, on
# go.etcd.io/etcd/client/v3 and go-redis v9 from the Go module proxy) into a cache outside the
# clone, keyed by a hash of its sources (scripts/go-build-cached.sh). Reruns are instant.
#
# Usage: bench/storeload/build.sh    prints `storeload=<path>` on stdout (what bench/etcd.ts reads).
# Environment: KVSTORE_BENCH_CACHE (default ${XDG_CACHE_HOME:-$HOME/.cache}/kvstore-bench).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${KVSTORE_BENCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kvstore-bench}
bin=$(bash "$here/../../scripts/go-build-cached.sh" storeload "$here" "$cache" \
  '1-5 min, about 100 s of CPU')
echo "storeload=$bin"
