# tapflow image: every role (`node dist/src/cli/main.js ingest|validator|settler|sink|start`).
# Built by docker-compose.yml; on its own: docker build -t tapflow .
#
# Stage 1 installs everything (dev dependencies: TypeScript), compiles to dist/ and prunes the
# dev dependencies; stage 2 copies the result onto a clean base.

FROM node:20-bookworm-slim AS build
WORKDIR /app
# Dependencies first: this layer is reused until package*.json change.
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
RUN npm run build && npm prune --omit=dev --no-audit --no-fund

FROM node:20-bookworm-slim
ENV NODE_ENV=production \
    TAPFLOW_DATA_DIR=/var/lib/tapflow \
    TAPFLOW_TARIFF_DIR=/app/data
WORKDIR /app
# The whole pruned tree: dist/ plus the data the roles read at run time (tariffs, networks,
# venues under data/, SQL migrations and the descriptor set copied into dist/).
COPY --from=build /app /app
# Local state (generated development keys; chdb and a local nats-server store when the image
# runs `start` on its own) goes to a volume owned by the unprivileged user.
RUN mkdir -p /var/lib/tapflow && chown node:node /var/lib/tapflow
VOLUME ["/var/lib/tapflow"]
USER node
EXPOSE 50051 9464
CMD ["node", "dist/src/cli/main.js", "start"]
