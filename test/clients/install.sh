#!/usr/bin/env bash
# Installs the Redis client libraries the client tests drive (test/integration/redis-clients.test.ts)
# into a cache outside the clone, each keyed by its version:
#   redis-py   (PyPI, `pip install --target`)            -> $cache/redis-py-<version>
#   go-redis   (Go module proxy, test/clients/go built)  -> $cache/redis-client-check-<hash>/redis-client-check
#   Jedis      (Maven Central via mvn, test/clients/java compiled with javac) -> $cache/jedis-<hash>
# node-redis and ioredis are npm devDependencies (installed by `npm ci`).
#
# Usage: test/clients/install.sh    prints `name=path` lines on stdout (what the tests read).
# Environment: KVSTORE_CLIENTS_CACHE (default ${XDG_CACHE_HOME:-$HOME/.cache}/kvstore-clients).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${KVSTORE_CLIENTS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kvstore-clients}
REDIS_PY_VERSION=8.1.0
log() { printf '[redis-clients] %s\n' "$*" >&2; }

mkdir -p "$cache"
exec 9>"$cache/.install.lock" # one installer at a time
flock 9

py="$cache/redis-py-$REDIS_PY_VERSION"
if [[ ! -f $py/redis/__init__.py ]]; then
  command -v python3 >/dev/null || { log "python3 is needed for redis-py" && exit 1; }
  start=$(date +%s)
  log "installing redis-py $REDIS_PY_VERSION (first run only, a few seconds) ..."
  tmp=$(mktemp -d "$cache/.py-XXXXXX")
  python3 -m pip install --quiet --disable-pip-version-check --no-cache-dir --root-user-action=ignore \
    --target "$tmp" "redis==$REDIS_PY_VERSION" >&2 || { rm -rf "$tmp" && exit 1; }
  rm -rf "$py"
  mv "$tmp" "$py"
  log "installed redis-py in $(($(date +%s) - start))s -> $py"
fi

gobin=$(bash "$here/../../scripts/go-build-cached.sh" redis-client-check "$here/go" "$cache" \
  'about a minute')

key=$(cd "$here/java" && cat pom.xml JedisCheck.java | sha256sum | cut -c1-16)
jedis="$cache/jedis-$key"
if [[ ! -f $jedis/classes/JedisCheck.class ]]; then
  command -v mvn >/dev/null && command -v javac >/dev/null ||
    { log "mvn and javac (JDK 17+) are needed for the Jedis check" && exit 1; }
  start=$(date +%s)
  log "fetching Jedis and compiling its check $key (first run only, about a minute) ..."
  tmp=$(mktemp -d "$cache/.java-XXXXXX")
  (
    cd "$here/java"
    mvn -q -B dependency:copy-dependencies -DoutputDirectory="$tmp/lib" >&2
    javac -nowarn -d "$tmp/classes" -cp "$tmp/lib/*" JedisCheck.java >&2
  ) || { rm -rf "$tmp" && log "FAILED to build the Jedis check" && exit 1; }
  rm -rf "$jedis"
  mv "$tmp" "$jedis"
  log "built the Jedis check in $(($(date +%s) - start))s -> $jedis"
fi

echo "redis-py=$py"
echo "go-redis=$gobin"
echo "jedis=$jedis"
