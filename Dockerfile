# syntax=docker/dockerfile:1
# distributed-sqlite: one node per Fly Machine, backed up by Litestream (see the README, section Deploy).
#
# Stages:
#   deps   production node_modules (better-sqlite3 compiled here against Node 24.18.1's
#          headers, so the compilers never reach the final image; the Litestream binary comes
#          with @flydotio/litestream)
#   build  every dependency, then the TypeScript build (dist/)
#   final  Node 24 LTS slim + deps' node_modules + dist/ + migrations/ + run.sh + litestream.yml,
#          run as the unprivileged `node` user (run.sh drops to it after preparing /data)
ARG NODE_VERSION=24
# better-sqlite3 is built from source against the headers of this release, not of the image's
# newest 24.x: from 24.19.0 on, node_object_wrap.h removes a cleanup hook through
# Isolate::GetCurrent() in ObjectWrap's destructor, which aborts the process when V8 collects a
# Statement outside any context. The ABI is the same (NODE_MODULE_VERSION 137), so the addon
# runs on the newest 24.x. The registry's `node` package carries the headers (as in .ci/run).
ARG NODE_HEADERS_VERSION=24.18.1

FROM node:${NODE_VERSION}-slim AS base
WORKDIR /app
ENV NODE_ENV=production

FROM base AS toolchain
# Needed only when better-sqlite3 has to compile its native addon.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*

FROM toolchain AS deps
ARG NODE_HEADERS_VERSION
COPY package.json package-lock.json ./
RUN npm install --prefix /tmp/node-headers --no-save --no-package-lock --no-audit --no-fund "node@${NODE_HEADERS_VERSION}" \
 && npm ci --omit=dev --no-audit --no-fund --build-from-source --nodedir="$(echo /tmp/node-headers/node_modules/node/node_modules/node-linux-*)" \
 && rm -rf /tmp/node-headers

FROM toolchain AS build
COPY package.json package-lock.json ./
# NODE_ENV=production would make npm ci skip the devDependencies the build needs.
RUN NODE_ENV=development npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json tsconfig.browser.json ./
COPY scripts ./scripts
COPY src ./src
RUN npm run build

FROM base AS final
# Litestream is a Go binary: it needs the system CA bundle to reach S3 over TLS (Node carries its own).
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json litestream.yml run.sh ./
COPY migrations ./migrations
# `litestream` on PATH for `fly ssh console`; the README's commands go through run.sh
# (`/app/run.sh litestream generations`, `/app/run.sh recover`), which finds the same binary
# itself, as from a checkout. Fails the build if the platform binary is missing.
RUN ln -s "/app/node_modules/@flydotio/litestream-$(node -p 'process.platform + "-" + process.arch')/litestream" /usr/local/bin/litestream \
 && litestream version \
 && mkdir -p /data \
 && chown node:node /data
ENV DATABASE_PATH=/data/counters.db \
    HOST=:: \
    PORT=8080 \
    RUN_AS_USER=node
VOLUME /data
EXPOSE 8080
# Starts as root only to chown the mounted volume (Fly mounts it root-owned), then run.sh drops
# to RUN_AS_USER before touching the database. Set RUN_AS_USER= and `USER node` to skip that
# on platforms whose volumes are already writable by the user.
CMD ["./run.sh"]
