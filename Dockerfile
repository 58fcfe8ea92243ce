# sidecache: build the TypeScript, then run it on a slim Node image.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.daemon.json ./
COPY cmd ./cmd
COPY src ./src
# Only the daemon: the benchmarks and the chaos run are built from a checkout.
RUN npm run build:daemon && npm prune --omit=dev

FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY config ./config
# The embedded PostgreSQL (pglite:./data/pg) keeps its files here; mount a volume to keep them.
RUN mkdir -p /app/data && chown node:node /app/data
USER node
EXPOSE 7070
# In a container, listen beyond loopback: set SIDECACHE_HOST=0.0.0.0 and configure auth.
ENV SIDECACHE_HOST=0.0.0.0
HEALTHCHECK --interval=10s --timeout=2s CMD node -e "fetch('http://127.0.0.1:7070/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
ENTRYPOINT ["node", "dist/cmd/sidecache.js"]
CMD ["--config", "config/sidecache.yaml"]
