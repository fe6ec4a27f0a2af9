# The Inferneo orchestrator: the TypeScript control plane, compiled, on Node 20.
# Build context is the repository root (see docker-compose.yml):
#   docker build -f docker/orchestrator.Dockerfile -t inferneo-orchestrator .
#
# This image holds no Python: its workers are the `worker` image, which connects to the ROUTER
# socket bound below. To run the orchestrator and its workers in one container, use `npm start`
# on a machine with Python instead.

# --- build: every dependency (TypeScript, @types) and the compiler ---------------------------------
FROM node:20-bookworm-slim AS build
WORKDIR /app
# The lockfile alone decides the dependency layer, so source edits do not reinstall node_modules.
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY orchestrator/src orchestrator/src
# tsconfig.json also includes the test, bench and example folders; they are not in this stage, so
# only orchestrator/src is compiled (into dist/orchestrator/src, as `npm run build` lays it out).
RUN npx tsc -p tsconfig.json

# --- runtime: production dependencies and the compiled JavaScript only -----------------------------
FROM node:20-bookworm-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist/orchestrator/src dist/orchestrator/src
# Read from the working directory by default; the environment below and in docker-compose.yml
# overrides what differs in a container.
COPY worker-config/inferneo.yaml worker-config/inferneo.yaml

# Defaults for a container: no local workers (there is no Python here), a ROUTER endpoint that
# workers in other containers can reach, and the model repository where the volume is mounted.
ENV INFERNEO_WORKERS=0 \
    INFERNEO_WORKER_BIND=tcp://0.0.0.0:5557 \
    INFERNEO_MODEL_REPOSITORY=/models

# `node` (uid 1000) comes with the base image; nothing under /app is writable by it.
USER node
# 8000 KServe v2 HTTP (and /admin, /metrics), 8001 gRPC, 5557 the workers' ZeroMQ endpoint.
EXPOSE 8000 8001 5557
CMD ["node", "dist/orchestrator/src/main.js"]
