#!/usr/bin/env bash
# Builds the kvstore image from the Dockerfile with the local Docker engine: `npm run image` (docs/containers.md).
#
# Usage: scripts/image.sh [TAG]     TAG defaults to $IMAGE, then kvstore:<package.json version>.
# Progress goes to stderr; the last line on stdout is the image reference.
#
# - Base: NODE_IMAGE when set; else the Dockerfile's default (the official node:24-*-slim) when
#   it is here or can be pulled; else a local base made by scripts/base-image.sh (Debian from its
#   mirror, Node from the npm registry), cached by version. KVSTORE_LOCAL_BASE=never fails
#   instead, KVSTORE_LOCAL_BASE=always skips the pull.
# - npm behind a TLS-intercepting proxy: a CA bundle file goes to the build as the BuildKit
#   secret `npm_ca` (mounted for `npm ci` only, never in the image): KVSTORE_BUILD_CA, else npm's
#   `cafile` setting, else NODE_EXTRA_CA_CERTS. HTTP(S)_PROXY/NO_PROXY pass as build arguments,
#   and NPM_CONFIG_FETCH_RETRIES (npm's retries of a failed request; the Dockerfile's default 2).
# - BuildKit: `docker build` with the buildx plugin (Docker >= 23), or a Docker 20.10 CLI with
#   DOCKER_BUILDKIT=1 (Debian's docker.io). KVSTORE_DOCKER names the CLI (default: docker, then
#   /usr/bin/docker when `docker` has no buildx).
# - The build runs on the host's network (KVSTORE_BUILD_NETWORK, default host), so it reaches the
#   registries the way this machine does (DNS, proxy, VPN) and needs no NAT from the engine.
# - skaffold's custom builder runs this with IMAGE and PUSH_IMAGE set (skaffold.yaml).
set -euo pipefail

if [[ ${1:-} == --help || ${1:-} == -h ]]; then
  sed -n '2,5p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
  exit 0
fi

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
log() { printf '[image] %s\n' "$*" >&2; }
die() { log "$*" && exit 1; }

version=$(node -p 'require(process.argv[1]).version' "$root/package.json")
ref=${1:-${IMAGE:-kvstore:$version}}

# A docker CLI that builds with BuildKit.
buildkit_cli() {
  local c major
  for c in "${KVSTORE_DOCKER:-docker}" /usr/bin/docker; do
    command -v "$c" >/dev/null || continue
    if "$c" buildx version >/dev/null 2>&1; then echo "$c" && return; fi
    # The client's version, also when no engine answers (the command then exits 1 after printing
    # it): that case is told apart below, by `info`, with its own message.
    major=$({ "$c" version --format '{{.Client.Version}}' 2>/dev/null || true; } | cut -d. -f1)
    if [[ $major =~ ^[0-9]+$ ]] && ((major < 23)); then echo "$c" && return; fi
    [[ -n ${KVSTORE_DOCKER:-} ]] && break
  done
  return 1
}
docker=$(buildkit_cli) ||
  die "no docker CLI that builds with BuildKit: install the buildx plugin (docker-buildx-plugin, or Debian's docker-buildx), or set KVSTORE_DOCKER to a Docker 20.10 CLI"
"$docker" info >/dev/null 2>&1 || die "no Docker engine answers ($docker info failed): start dockerd (scripts/docker-engine.sh start, as root)"

default_base=$(sed -n 's/^ARG NODE_IMAGE=//p' "$root/Dockerfile")
base=${NODE_IMAGE:-}
if [[ -z $base ]]; then
  base=$default_base
  mode=${KVSTORE_LOCAL_BASE:-auto}
  if [[ $mode == always ]] || ! "$docker" image inspect "$base" >/dev/null 2>&1; then
    err=''
    [[ $mode == always ]] || err=$("$docker" pull --quiet "$base" 2>&1 >/dev/null) || true
    if [[ $mode == always ]] || [[ -n $err ]]; then
      [[ $mode == never ]] && die "cannot pull $base (no access to its registry?): ${err:-} -- set NODE_IMAGE to a Node 24 image you have, or drop KVSTORE_LOCAL_BASE=never to make a local one"
      [[ $mode == always ]] || log "cannot pull $base (${err##*: }): making a local base instead"
      base=$(bash "$root/scripts/base-image.sh")
    fi
  fi
elif ! "$docker" image inspect "$base" >/dev/null 2>&1; then
  err=$("$docker" pull --quiet "$base" 2>&1 >/dev/null) ||
    die "NODE_IMAGE=$base is not here and cannot be pulled: $err"
fi

args=(build --network "${KVSTORE_BUILD_NETWORK:-host}" --build-arg "NODE_IMAGE=$base" --tag "$ref"
  --label "org.opencontainers.image.version=$version")
ca=${KVSTORE_BUILD_CA:-}
if [[ -z $ca ]]; then
  ca=$(npm config get cafile 2>/dev/null || true)
  [[ $ca == null || $ca == undefined ]] && ca=''
  ca=${ca:-${NODE_EXTRA_CA_CERTS:-}}
fi
if [[ -n $ca ]]; then
  [[ -s $ca ]] || die "the CA bundle $ca (KVSTORE_BUILD_CA, npm cafile or NODE_EXTRA_CA_CERTS) is missing or empty"
  args+=(--secret "id=npm_ca,src=$ca")
  log "npm in the build trusts the CAs in $ca (BuildKit secret npm_ca, not in the image)"
fi
for v in HTTP_PROXY HTTPS_PROXY NO_PROXY http_proxy https_proxy no_proxy NPM_CONFIG_FETCH_RETRIES; do
  [[ -n ${!v:-} ]] && args+=(--build-arg "$v")
done

log "building $ref from $base with $docker ..."
start=$(date +%s)
DOCKER_BUILDKIT=1 "$docker" "${args[@]}" "$root" >&2 || die "docker build of $ref failed (the reason is above)"
size=$("$docker" image inspect --format '{{.Size}}' "$ref")
log "built $ref in $(($(date +%s) - start))s: $(((size + 500000) / 1000000)) MB"
if [[ ${PUSH_IMAGE:-false} == true ]]; then
  "$docker" push "$ref" >&2
fi
echo "$ref"
