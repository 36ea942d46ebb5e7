# syntax=docker/dockerfile:1
# optgate: multi-stage build; the runtime image holds production dependencies and compiled code only.

FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json tsconfig.client.json ./
COPY src src
COPY migrations migrations
COPY test/bench test/bench
RUN npm run build && rm -rf dist/test

FROM node:24-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

FROM node:24-bookworm-slim
ENV NODE_ENV=production PORT=8080
WORKDIR /app
COPY --chown=root:root package.json ./
COPY --chown=root:root config config
# The portal's templates and stylesheet are read at run time from the source tree's place.
COPY --chown=root:root src/portal/views src/portal/views
COPY --chown=root:root src/portal/static src/portal/static
COPY --chown=root:root src/console/views src/console/views
COPY --chown=root:root src/console/static src/console/static
COPY --from=deps --chown=root:root /app/node_modules node_modules
COPY --from=build --chown=root:root /app/dist dist
# The code is owned by root and read-only to the service user.
USER node
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 8080) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# Production needs JWKS_URL or JWKS_FILE, SIGNING_KEY_FILE, EVIDENCE_HMAC_KEY and TOKEN_ISSUER: see README.
# Behind a TLS-terminating proxy, the portal's cookie is Secure (PORTAL_COOKIE_SECURE defaults to true in production).
CMD ["node", "dist/src/main.js"]
