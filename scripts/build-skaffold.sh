#!/usr/bin/env bash
# Builds skaffold, and the Helm 3 it drives, with `go build` from the Go module proxy into the test tool cache, keyed by version.
#
# Usage: scripts/build-skaffold.sh
# Prints `skaffold=<absolute path>` and `helm3=<absolute path>` on stdout; progress goes to
# stderr. A cached binary that reports the pinned version is reused. Cold, the builds took 19
# (skaffold) and 5 (helm 3, after it) minutes on 2 shared cores (2026-12-03, load 13-31).
# test/k8s/skaffold.test.ts runs this to check
# skaffold.yaml with the real skaffold (`skaffold diagnose`, `skaffold render`).
#
# Why a second Helm: skaffold v2 runs `helm version --client` and passes itself to
# `--post-renderer` as an executable; Helm 4 (the test control plane's helm) has neither, so
# skaffold needs a Helm 3 on PATH.
#
# Wrapper modules: test/k8s/go/skaffold (skaffold's own `replace` lines copied in: a
# dependency's replace directives do not apply to the main module) and test/k8s/go/helm3. Another
# version: `cd test/k8s/go/<tool> && go get <module>@<version> && go mod tidy` (with a
# throw-away tools.go importing the main package, removed again afterwards).
# Environment: KVSTORE_K8S_CACHE (default ${XDG_CACHE_HOME:-$HOME/.cache}/kvstore-k8s),
#   KVSTORE_K8S_BUILD_JOBS (go build -p, default 2). Builds run under `nice -n 15`.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${KVSTORE_K8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kvstore-k8s}
jobs=${KVSTORE_K8S_BUILD_JOBS:-2}

log() { printf '[skaffold-build] %s\n' "$*" >&2; }

# version <wrapper> <module>: the version the wrapper's go.mod requires.
version() {
  awk -v m="$2" '($1 == "require" && $2 == m) { print $3; exit } ($1 == m && $2 ~ /^v[0-9]/) { print $2; exit }' \
    "$root/test/k8s/go/$1/go.mod"
}

# works <binary> <version>: it runs and reports that version.
works() {
  local out
  [[ -x $1 ]] || return 1
  case $1 in
  */skaffold) out=$("$1" version 2>/dev/null) ;;
  *) out=$("$1" version --client --short 2>/dev/null) ;;
  esac || return 1
  [[ $out == "$2" || $out == "$2+"* ]]
}

# build <name> <wrapper> <package> <version> <ldflags>
# build <name> <wrapper> <package> <version> <ldflags> <minutes: first build on 2 shared cores>
build() {
  local name=$1 wrapper=$2 package=$3 v=$4 ldflags=$5 minutes=$6 dest tmp start
  dest=$cache/$name-$v
  if works "$dest/${package##*/}" "$v"; then
    echo "$name=$dest/${package##*/}"
    return
  fi
  command -v go >/dev/null || { log "go is needed to build $name $v" && return 1; }
  mkdir -p "$cache"
  exec 9>"$cache/.build-$name.lock"
  flock 9
  if ! works "$dest/${package##*/}" "$v"; then
    tmp=$(mktemp -d "$cache/.build-$name-XXXXXX")
    start=$(date +%s)
    log "building $name $v (first run only, ~$minutes min; $(go version | cut -d' ' -f3), -p=$jobs, nice 15)"
    if ! (
      cd "$root/test/k8s/go/$wrapper"
      CGO_ENABLED=0 GOFLAGS="-p=$jobs -buildvcs=false -mod=readonly" \
        nice -n 15 go build -trimpath -ldflags "$ldflags" -o "$tmp/${package##*/}" "$package"
    ) || ! works "$tmp/${package##*/}" "$v"; then
      rm -rf "$tmp"
      log "FAILED to build $name $v"
      return 1
    fi
    rm -rf "$dest"
    mv "$tmp" "$dest"
    log "built $name $v in $(($(date +%s) - start))s -> $dest/${package##*/}"
  fi
  exec 9>&-
  echo "$name=$dest/${package##*/}"
}

sk=github.com/GoogleContainerTools/skaffold/v2
skv=$(version skaffold "$sk")
h3=helm.sh/helm/v3
h3v=$(version helm3 "$h3")
[[ -n $skv && -n $h3v ]] || { log "no version in test/k8s/go/{skaffold,helm3}/go.mod" && exit 1; }

build skaffold skaffold "$sk/cmd/skaffold" "$skv" "-s -w -X $sk/pkg/skaffold/version.version=$skv" 19
build helm3 helm3 "$h3/cmd/helm" "$h3v" "-s -w -X $h3/internal/version.version=$h3v -X $h3/internal/version.gitTreeState=clean" 5
