# syntax=docker/dockerfile:1
# Node 24 LTS (maintained to 2028-04-30): a line sluice is built and tested for (see README "Runtime").
# Build stage: full install (TypeScript), compile to dist/.
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json ./
COPY src ./src
RUN npm ci --no-audit --no-fund

# Runtime stage: production dependencies only, compiled output, non-root.
FROM node:24-bookworm-slim
ENV NODE_ENV=production \
    SLUICE_CONFIG=/etc/sluice/sluice.yaml
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: `prepare` compiles TypeScript, which is not installed here; dist/ comes from the build stage.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
# The container's config: listeners on 0.0.0.0, endpoints and tokens from the environment or a
# config mounted over it (config/container.yaml says which variables).
COPY config/container.yaml /etc/sluice/sluice.yaml
RUN mkdir -p /app/data && chown -R node:node /app/data
USER node
EXPOSE 8080 9901
VOLUME ["/app/data"]
# GET /healthz on the admin host and port the config in force names (the file at $SLUICE_CONFIG
# with the environment's overrides, as sluice reads it), so a mounted config is followed too.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["node", "dist/healthcheck.js"]
STOPSIGNAL SIGTERM
# The flags are package.json's config.nodeFlags (a test keeps them equal): see src/core/gc.ts.
ENTRYPOINT ["node", "--max-semi-space-size=32", "--min-semi-space-size=32", "dist/cli.js"]
# One request-serving thread per CPU the container may use, as nginx's worker_processes auto
# (a mounted config's own `workers` is overridden by this flag; pass your own CMD to change it).
CMD ["--workers", "auto"]
