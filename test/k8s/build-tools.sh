#!/usr/bin/env bash
# Builds the test control plane (Kubernetes, etcd, kwok, helm) and the real node (kubelet,
# kube-proxy, containerd, CoreDNS, pause) with `go build` from the Go module proxy into a cache
# outside the clone, keyed by version.
#
# Usage: test/k8s/build-tools.sh [tool...]       (default: every tool)
#   tools: kube-apiserver kube-controller-manager kube-scheduler kubectl etcd kwok helm
#          kubelet kube-proxy containerd containerd-shim-runc-v2 ctr coredns pause
#          prometheus (with only the Kubernetes service discovery, for the real-node test)
#        test/k8s/build-tools.sh bump-kubernetes v1.X.Y
#   rewrites go/kubernetes/go.mod for another release: requires it and replaces every staging
#   module listed in its own go.mod replace block with the published v0.X.Y. (Other tools:
#   `cd test/k8s/go/<tool> && go get <module>@<version> && go mod tidy`.)
# Prints `<tool>=<absolute path>` for each requested tool on stdout (plus `kwok-stages=<file>`
# when kwok is requested); progress and build times go to stderr. A cached binary is reused when
# it exists and answers its version command with the expected version, so reruns are cheap.
# Environment: KVSTORE_K8S_CACHE (default ${XDG_CACHE_HOME:-$HOME/.cache}/kvstore-k8s),
#   KVSTORE_K8S_BUILD_JOBS (go build -p, default 2). Builds run under `nice -n 15`.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${KVSTORE_K8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kvstore-k8s}
jobs=${KVSTORE_K8S_BUILD_JOBS:-2}
all_tools=(kube-apiserver kube-controller-manager kube-scheduler kubectl etcd kwok helm
  kubelet kube-proxy containerd containerd-shim-runc-v2 ctr coredns pause prometheus)

log() { printf '[k8s-tools] %s\n' "$*" >&2; }

# minutes <tool>: about how long its first build takes on 2 shared cores, in this order (measured
# in a cold .ci/run on 2026-12-03 at load average 13-31, rounded up; the first Kubernetes binary
# also compiles what the others share, so a tool built alone takes longer).
minutes() {
  case $1 in
  helm) echo 9 ;;
  coredns | prometheus) echo 8 ;;
  kube-apiserver) echo 7 ;;
  kwok) echo 6 ;;
  kube-controller-manager) echo 5 ;;
  kubelet | containerd) echo 4 ;;
  *) echo 1 ;;
  esac
}

# wrapper <tool>: the wrapper module directory under test/k8s/go.
wrapper() {
  case $1 in
  kube-* | kubectl | kubelet) echo kubernetes ;;
  containerd | containerd-shim-runc-v2 | ctr) echo containerd ;;
  etcd | kwok | helm | coredns | pause | prometheus) echo "$1" ;;
  *) log "unknown tool: $1 (known: ${all_tools[*]})" && exit 2 ;;
  esac
}

# module <tool>: the upstream module whose version keys the cache.
module() {
  case $(wrapper "$1") in
  kubernetes) echo k8s.io/kubernetes ;;
  etcd) echo go.etcd.io/etcd/server/v3 ;;
  kwok) echo sigs.k8s.io/kwok ;;
  helm) echo helm.sh/helm/v4 ;;
  containerd) echo github.com/containerd/containerd/v2 ;;
  coredns) echo github.com/coredns/coredns ;;
  prometheus) echo github.com/prometheus/prometheus ;;
  esac
}

# package <tool>: the main package to build.
package() {
  case $1 in
  kube-*) echo "k8s.io/kubernetes/cmd/$1" ;;
  kubectl | kubelet) echo "k8s.io/kubernetes/cmd/$1" ;;
  containerd | containerd-shim-runc-v2 | ctr) echo "github.com/containerd/containerd/v2/cmd/$1" ;;
  coredns) echo kvstore.test/k8s/coredns ;;
  pause) echo kvstore.test/k8s/pause ;;
  prometheus) echo github.com/prometheus/prometheus/cmd/prometheus ;;
  etcd) echo go.etcd.io/etcd/server/v3 ;;
  kwok) echo sigs.k8s.io/kwok/cmd/kwok ;;
  helm) echo helm.sh/helm/v4/cmd/helm ;;
  esac
}

# version <tool>: the required version, read from the wrapper's go.mod (no network needed).
version() {
  local mod
  # pause is this repository's own code: its version is a constant in its main.go.
  [[ $1 != pause ]] || { sed -n 's/^const version = "\(.*\)"$/\1/p' "$here/go/pause/main.go" && return; }
  mod=$(module "$1")
  awk -v m="$mod" '{ for (i = 1; i < NF; i++) if ($i == m && $(i + 1) ~ /^v[0-9]/) { print $(i + 1); exit } }' \
    "$here/go/$(wrapper "$1")/go.mod"
}

# ldflags <tool> <version>: version stamping, as each project's release build does it.
ldflags() {
  local tool=$1 v=$2 minor date
  date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  case $(wrapper "$tool") in
  kubernetes)
    minor=$(echo "$v" | cut -d. -f2)
    local flags="-s -w" pkg
    for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
      flags+=" -X $pkg.gitVersion=$v -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
      flags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$date"
    done
    echo "$flags"
    ;;
  etcd) echo "-s -w" ;; # etcd's version is a constant in go.etcd.io/etcd/api/v3/version
  kwok) echo "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=$v" ;;
  helm) echo "-s -w -X helm.sh/helm/v4/internal/version.version=$v -X helm.sh/helm/v4/internal/version.gitTreeState=clean" ;;
  containerd) echo "-s -w -X github.com/containerd/containerd/v2/version.Version=$v" ;;
  coredns | pause) echo "-s -w" ;; # versions are constants in the code
  prometheus) echo "-s -w -X github.com/prometheus/common/version.Version=${v#v}" ;;
  esac
}

# tags <tool>: build tags (containerd: no snapshotters that need cgo or kernel headers).
tags() {
  case $(wrapper "$1") in
  containerd) echo "no_btrfs no_devmapper no_zfs" ;;
  # Only the Kubernetes service discovery (Debian's prometheus package has none).
  prometheus) echo "remove_all_sd enable_kubernetes_sd" ;;
  esac
}

# works <tool> <binary> <version>: the binary runs and reports the expected version.
works() {
  local tool=$1 bin=$2 v=$3 out
  [[ -x $bin ]] || return 1
  case $tool in
  kubectl) out=$("$bin" version --client 2>&1) ;;
  helm) out=$("$bin" version --short 2>&1) ;;
  containerd-shim-runc-v2) out=$("$bin" -v 2>&1) ;;
  coredns) out=$("$bin" -version 2>&1) ;;
  *) out=$("$bin" --version 2>&1) ;;
  esac || return 1
  [[ $out == *"${v#v}"* ]]
}

# kwok needs Stage configs (kwok >= 0.4): copy the upstream default fast stages out of the module.
kwok_stages() {
  local dir=$1 src
  src=$(cd "$here/go/kwok" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)
  [[ -n $src ]] || { log "kwok module not in the module cache" && return 1; }
  {
    cat "$src/kustomize/stage/node/fast/node-initialize.yaml"
    printf -- '---\n'
    cat "$src/kustomize/stage/node/heartbeat/node-heartbeat.yaml"
    for f in pod-ready pod-complete pod-delete; do
      printf -- '---\n'
      cat "$src/kustomize/stage/pod/fast/$f.yaml"
    done
  } >"$dir/stages.yaml"
}

build() {
  local tool=$1 v=$2 dest=$3 tmp start
  tmp=$(mktemp -d "$cache/.build-$tool-XXXXXX")
  start=$(date +%s)
  log "building $tool $v (first run only, ~$(minutes "$tool") min; $(go version | cut -d' ' -f3), -p=$jobs, nice 15)"
  (
    cd "$here/go/$(wrapper "$tool")"
    CGO_ENABLED=0 GOFLAGS="-p=$jobs -buildvcs=false -mod=readonly" \
      nice -n 15 go build -trimpath -tags "$(tags "$tool")" -ldflags "$(ldflags "$tool" "$v")" -o "$tmp/$tool" "$(package "$tool")"
  ) || {
    rm -rf "$tmp"
    log "FAILED to build $tool $v"
    return 1
  }
  if [[ $tool == kwok ]]; then kwok_stages "$tmp" || { rm -rf "$tmp" && return 1; }; fi
  works "$tool" "$tmp/$tool" "$v" || {
    rm -rf "$tmp"
    log "built $tool does not report version $v"
    return 1
  }
  rm -rf "$dest"
  mv "$tmp" "$dest"
  log "built $tool $v in $(($(date +%s) - start))s -> $dest/$tool"
}

# bump-kubernetes <version>: rewrite the kubernetes wrapper's go.mod for another release.
bump_kubernetes() {
  local v=${1:?usage: build-tools.sh bump-kubernetes v1.X.Y} gomod m t
  [[ $v =~ ^v1\.([0-9]+)\.([0-9]+)$ ]] || { log "not a release version: $v" && exit 2; }
  local published="v0.${BASH_REMATCH[1]}.${BASH_REMATCH[2]}"
  cd "$here/go/kubernetes"
  gomod=$(go mod download -json "k8s.io/kubernetes@$v" | awk -F'"' '$2 == "GoMod" { print $4 }')
  {
    echo "// Wrapper module: builds kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, kubelet and kube-proxy"
    echo "// from k8s.io/kubernetes with every staging module replaced by its published v0.<minor>.<patch>."
    echo "module kvstore.test/k8s/kubernetes"
    echo
    awk '$1 == "go" { print; exit }' "$gomod"
    echo
    echo "require k8s.io/kubernetes $v"
    echo
    echo "replace ("
    for m in $(awk '/^replace \(/ { r = 1; next } r && /^\)/ { r = 0 } r && /=>/ { print $1 }' "$gomod"); do
      printf '\t%s => %s %s\n' "$m" "$m" "$published"
    done
    echo ")"
    echo
    echo "tool ("
    for t in kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy; do
      printf '\tk8s.io/kubernetes/cmd/%s\n' "$t"
    done
    echo ")"
  } >go.mod.new
  mv go.mod.new go.mod
  rm -f go.sum
  nice -n 15 go mod tidy
  log "kubernetes wrapper now at $v, staging modules replaced by $published"
}

main() {
  if [[ ${1:-} == bump-kubernetes ]]; then
    shift
    bump_kubernetes "$@"
    return
  fi
  local tools=("$@") tool v dest missing=()
  ((${#tools[@]})) || tools=("${all_tools[@]}")
  mkdir -p "$cache"
  for tool in "${tools[@]}"; do
    v=$(version "$tool")
    [[ -n $v ]] || { log "no version for $tool in $here/go/$(wrapper "$tool")/go.mod" && exit 1; }
    works "$tool" "$cache/$tool-$v/$tool" "$v" || missing+=("$tool")
  done
  if ((${#missing[@]})); then
    command -v go >/dev/null || { log "go is needed to build: ${missing[*]}" && exit 1; }
    # One builder at a time (other test runs may be building the same tools).
    exec 9>"$cache/.build.lock"
    flock 9
    local total_start
    total_start=$(date +%s)
    for tool in "${missing[@]}"; do
      v=$(version "$tool")
      dest="$cache/$tool-$v"
      if works "$tool" "$dest/$tool" "$v"; then continue; fi
      build "$tool" "$v" "$dest"
    done
    log "build finished in $(($(date +%s) - total_start))s"
    exec 9>&-
  fi
  for tool in "${tools[@]}"; do
    v=$(version "$tool")
    echo "$tool=$cache/$tool-$v/$tool"
    [[ $tool != kwok ]] || echo "kwok-stages=$cache/kwok-$v/stages.yaml"
  done
}

main "$@"
