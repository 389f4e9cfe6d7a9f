# Parley broker image. The same image runs the HTTP broker (default command) and the SSH
# broker (`node broker/dist/ssh/main.js`, see docker-compose.yml).
#
# NODE_VERSION defaults to the current Node LTS; CI builds with --build-arg NODE_VERSION=20
# (node:20-bookworm-slim), the oldest version Parley supports.
ARG NODE_VERSION=22

FROM node:${NODE_VERSION}-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: the only install scripts build optional native addons (ssh2's crypto
# binding, cpu-features) that need a compiler the slim image lacks; ssh2 works without them.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY broker/tsconfig.json broker/
COPY broker/src broker/src
# The web console's page source; `npm run build` bundles it into broker/console/dist.
COPY broker/console broker/console
RUN npm run build

FROM node:${NODE_VERSION}-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/broker/dist broker/dist
COPY --from=build /app/broker/console/dist broker/console/dist
# The SSH broker's host key lives here (a volume in compose); owned by the runtime user so a
# fresh volume is writable on first start.
RUN mkdir -p /data/ssh && chown node:node /data/ssh
USER node
EXPOSE 3000 2222
# Generous timeouts: starting node for the check takes seconds on a small or busy machine.
HEALTHCHECK --interval=10s --timeout=10s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.HTTP_PORT||3000)+'/health').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
CMD ["node", "broker/dist/main.js"]
