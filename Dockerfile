# kvstore image: the node (default command), kvctl and kvstore-operator, compiled to JavaScript
# (scripts/build.ts) and run by Node 24.
#
#   npm run image        # = scripts/image.sh: builds kvstore:<package.json version> (docs/containers.md)
#   docker build -t kvstore:0.1.0 .
#   docker build --secret id=npm_ca,src=/path/to/proxy-ca.pem -t kvstore:0.1.0 .   # npm behind a TLS proxy
#   docker run --rm -p 127.0.0.1:8081:8081 -v kvstore-data:/data kvstore:0.1.0
#   docker run --rm --network host kvstore:0.1.0 kvctl --port 8081 ping
#
# Needs BuildKit (the default builder since Docker 23; DOCKER_BUILDKIT=1 before that) for the
# secret mount. test/integration/docker-image.test.ts builds and runs this image for real.

# Same major as the `node` devDependency (package.json). Any Debian-based Node 24 image with npm
# works (scripts/base-image.sh makes one when Docker Hub is out of reach); the runtime stage
# takes node, glibc and tini from it, so both stages share one C library.
ARG NODE_IMAGE=node:24-trixie-slim
# What a failed `npm ci` says (the deps and build stages both run one).
ARG NPM_CI_FAILED="kvstore image: npm ci failed (see above). The build needs the npm registry (npm config, HTTPS_PROXY build args). Behind a proxy with its own CA: --secret id=npm_ca,src=<ca.pem>, or KVSTORE_BUILD_CA=<ca.pem> npm run image. See docs/containers.md."
# How often `npm ci` retries a registry request that failed (npm's own default, 2, backs off
# about 70 s in all before an offline build gives up; 0 gives up at the first failure).
ARG NPM_CONFIG_FETCH_RETRIES=2

# --- deps: production dependencies from the lock file, and the runtime's root filesystem --------
FROM ${NODE_IMAGE} AS deps
ARG NPM_CI_FAILED
# tini (PID 1 of the runtime image), unless the base image has it already.
# hadolint ignore=DL3008
RUN if ! command -v tini-static >/dev/null; then \
      apt-get update && apt-get install -y --no-install-recommends tini && rm -rf /var/lib/apt/lists/*; \
    fi
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
# `node` (the pinned runtime) is a devDependency and is omitted: the image's own Node 24 runs the
# sources. Install scripts of lmdb/msgpackr-extract are approved by `allowScripts` in package.json
# and only pick their prebuilt binaries (no compiler here). A CA for a TLS-intercepting proxy
# comes in as the BuildKit secret `npm_ca`: it is mounted for this step only, never in a layer.
# Type declarations, source maps and musl binaries are never loaded at run time: removed.
ARG NPM_CONFIG_FETCH_RETRIES
RUN --mount=type=secret,id=npm_ca \
    if [ -s /run/secrets/npm_ca ]; then export NODE_EXTRA_CA_CERTS=/run/secrets/npm_ca; fi; \
    npm ci --omit=dev --no-audit --no-fund || { \
      echo "$NPM_CI_FAILED" >&2; \
      exit 1; }; \
    find node_modules -type f \( -name '*.d.ts' -o -name '*.d.mts' -o -name '*.d.cts' \
      -o -name '*.map' -o -name '*.musl.node' \) -delete
# The runtime's whole root filesystem: node, tini, env (the bins' #!/usr/bin/env; coreutils', for
# bin/kvstore.js's `env -S node <V8 flags>`) and sh (the
# healthcheck), the npm bins on PATH (links to /app/bin), the shared libraries these and the
# native addons load (found with ldd), the users, /tmp, and /data owned by the unprivileged
# user. No package manager, npm or compiler.
RUN set -eu; r=/rootfs; \
    mkdir -p "$r/usr/local/bin" "$r/usr/bin" "$r/bin" "$r/etc" "$r/tmp" "$r/data"; \
    chmod 1777 "$r/tmp"; chown 1000:1000 "$r/data"; \
    cp "$(command -v node)" "$r/usr/local/bin/node"; \
    cp "$(command -v tini-static)" "$r/usr/local/bin/tini"; \
    cp "$(command -v env)" "$r/usr/bin/env"; \
    cp "$(command -v dash)" "$r/bin/sh"; \
    cp /etc/passwd /etc/group /etc/nsswitch.conf "$r/etc/"; \
    for b in kvstore kvctl kvstore-operator; do ln -s "/app/bin/$b.js" "$r/usr/local/bin/$b"; done; \
    for f in "$(command -v node)" "$(command -v env)" "$(command -v dash)" \
      $(find node_modules -type f -name '*.node'); do \
      ldd "$f" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'; \
    done | sort -u | xargs cp -L --parents -t "$r"

# --- build: src/ and operator/ compiled to JavaScript (scripts/build.ts: tsc from the lock file) ----
# Node 24 could run the .ts sources directly, but its type stripping keeps a WebAssembly compiler
# in every process: the compiled node starts with about 28 MiB less RSS (docs/performance.md).
# The node itself is then bundled into src/main.bundle.cjs (esbuild) with V8's code cache of it,
# made by this stage's node under bin/kvstore.js's V8 flags: the runtime stage copies node from
# the same NODE_IMAGE and runs it with those flags, so V8 accepts the cache (about 5 MiB less
# RSS; a rejected cache only costs that).
# Dev dependencies (typescript, esbuild) are needed here only; their install scripts are not.
FROM ${NODE_IMAGE} AS build
ARG NPM_CI_FAILED
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
ARG NPM_CONFIG_FETCH_RETRIES
RUN --mount=type=secret,id=npm_ca \
    if [ -s /run/secrets/npm_ca ]; then export NODE_EXTRA_CA_CERTS=/run/secrets/npm_ca; fi; \
    npm ci --ignore-scripts --no-audit --no-fund || { \
      echo "$NPM_CI_FAILED" >&2; \
      exit 1; }
COPY tsconfig.json tsconfig.build.json ./
COPY scripts/build.ts scripts/bundle-node.ts ./scripts/
# The launcher's #! line: its V8 flags are those the code cache is made under.
COPY bin/kvstore.js ./bin/
COPY src/ ./src/
COPY operator/ ./operator/
RUN node scripts/build.ts

# --- runtime ---------------------------------------------------------------------------------------
FROM scratch
COPY --from=deps /rootfs/ /
WORKDIR /app
# MALLOC_MMAP_THRESHOLD_: glibc serves every allocation of 128 KiB or more (values and replies
# of that size) with its own mapping, returned to the system when freed, instead of raising the
# threshold after the first such free and keeping later ones in its heaps: 40 clients that
# stopped reading left a node 160-680 MiB of freed memory it never gave back (docs/operations.md,
# "Memory after a burst"). A pod's env overrides it.
ENV PATH=/usr/local/bin:/usr/bin:/bin \
    NODE_ENV=production \
    KV_HOST=0.0.0.0 \
    KV_DATA_DIR=/data \
    MALLOC_MMAP_THRESHOLD_=131072
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY bin/ ./bin/
# The compiled modules beside their sources: the bin shims (bin/*.js) run the .js when it is there.
# The .ts stay for `node scripts/seed-test-plan.ts` (docker-compose's test client).
COPY src/ ./src/
COPY operator/ ./operator/
COPY --from=build /app/dist/src/ ./src/
COPY --from=build /app/dist/operator/ ./operator/
COPY scripts/seed-test-plan.ts ./scripts/
# The base image's `node` user, numerically (Kubernetes' runAsNonRoot can only verify a numeric
# user); the application files stay root-owned, so they are read-only at run time.
USER 1000:1000
VOLUME ["/data"]
# client (seed text protocol + RESP), HTTP (/metrics /healthz /readyz /admin), peer
EXPOSE 8081 9090 7946

# A real protocol round trip (PING -> PONG) on the configured client port.
HEALTHCHECK --interval=10s --timeout=10s --start-period=30s --retries=3 \
  CMD ["sh", "-c", "kvctl --port \"${KV_PORT:-8081}\" --timeout-ms 8000 ping"]

# tini as PID 1: forwards SIGTERM/SIGINT to the program and reaps zombies. The node itself handles
# SIGTERM, but PID 1 gets no default signal actions, so kvctl or any other command run in this
# image would ignore `docker stop` until SIGKILL; tini makes every entry point behave the same.
ENTRYPOINT ["tini", "--"]
CMD ["kvstore"]
