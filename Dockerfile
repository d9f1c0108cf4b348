# kvstore image: the node (default command), kvctl and kvstore-operator, run from the TypeScript sources by Node 24.
#
#   docker build -t kvstore:local .
#   docker run --rm -p 8081:8081 -p 9090:9090 -v kvstore-data:/data kvstore:local
#   docker run --rm -it --network host kvstore:local kvctl --port 8081 ping
#   docker run --rm kvstore:local kvstore-operator --help
#
# test/integration/dockerfile.test.ts runs these same steps outside Docker (keep the RUN lines of
# the deps stage plain commands, and the bin links as `ln -s /app/bin/X.js /usr/local/bin/X`).

# Same major as the `node` devDependency (package.json); the slim Debian variant has glibc, which
# the prebuilt lmdb, msgpackr-extract and @node-rs/xxhash binaries from the registry need.
ARG NODE_IMAGE=node:24-trixie-slim

# --- deps: production dependencies only, from the lock file ---------------------------------------
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
# `node` (the pinned runtime) is a devDependency and is omitted: the image's own Node 24 runs the
# sources. Install scripts of lmdb/msgpackr-extract are approved by `allowScripts` in package.json
# and only pick their prebuilt binaries (no compiler in this image).
RUN npm ci --omit=dev --no-audit --no-fund

# --- runtime --------------------------------------------------------------------------------------
FROM ${NODE_IMAGE}
# tini as PID 1: forwards SIGTERM/SIGINT to the program and reaps zombies. The node itself handles
# SIGTERM, but PID 1 gets no default signal actions, so kvctl or any other command run in this
# image would ignore `docker stop` until SIGKILL; tini makes every entry point behave the same.
# hadolint ignore=DL3008
RUN apt-get update \
  && apt-get install -y --no-install-recommends tini \
  && rm -rf /var/lib/apt/lists/*

WORKDIR /app
ENV NODE_ENV=production \
    KV_HOST=0.0.0.0 \
    KV_DATA_DIR=/data

COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY bin/ ./bin/
COPY src/ ./src/
COPY operator/ ./operator/
COPY scripts/seed-test-plan.ts ./scripts/

# The npm bins on PATH (`kvstore`, `kvctl`, `kvstore-operator`), and a data directory the
# unprivileged user owns (a new named volume copies this ownership).
RUN ln -s /app/bin/kvstore.js /usr/local/bin/kvstore \
  && ln -s /app/bin/kvctl.js /usr/local/bin/kvctl \
  && ln -s /app/bin/kvstore-operator.js /usr/local/bin/kvstore-operator \
  && mkdir -p /data \
  && chown node:node /data

# The base image's `node` user, numerically (Kubernetes' runAsNonRoot can only verify a numeric
# user); the application files stay root-owned, so they are read-only at run time.
USER 1000:1000
VOLUME ["/data"]
# client (seed text protocol + RESP), HTTP (/metrics /healthz /readyz /admin), peer
EXPOSE 8081 9090 7946

# A real protocol round trip (PING -> PONG) on the configured client port.
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
  CMD ["sh", "-c", "kvctl --port \"${KV_PORT:-8081}\" --timeout-ms 4000 ping"]

ENTRYPOINT ["tini", "--"]
CMD ["kvstore"]
