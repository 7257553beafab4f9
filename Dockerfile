# syntax=docker/dockerfile:1
# MarchProxy NLB: one image for the NLB, every module controller and mpctl itself.
#   docker build -t marchproxy/nlb .
#   docker run --rm marchproxy/nlb --help            (ENTRYPOINT is mpctl)
#   docker run -p 50050:50050 -p 8082:8082 marchproxy/nlb serve nlb

FROM node:20-bookworm-slim AS build
# A C compiler for the NLB's native relay (native/relay, built by scripts/build-native.mjs against
# the image's own Node headers in /usr/local/include/node).
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts
COPY tsconfig.json ./
COPY bin ./bin
COPY cli ./cli
COPY services ./services
COPY proto ./proto
COPY simulator ./simulator
COPY native ./native
COPY scripts/build-native.mjs ./scripts/build-native.mjs
RUN MP_NATIVE_REQUIRED=1 npm run build && npx oclif manifest && npm prune --omit=dev --ignore-scripts

FROM node:20-bookworm-slim AS runtime
# A bounded old generation: on a large host V8 lets garbage grow to several times the live heap
# before a full collection. With 1 GiB the NLB with 10,000 instances peaks at ~200 MB RSS instead
# of ~320 MB (docs/bench-control-plane.md), with room for ~100k instances' live state. Container
# memory limits lower it further on their own (Node sizes its heap from the cgroup limit).
ENV NODE_ENV=production \
    NODE_OPTIONS=--max-old-space-size=1024 \
    MP_NLB_DATA_DIR=/var/lib/marchproxy/nlb \
    MP_MODULE_DATA_DIR=/var/lib/marchproxy/modules
WORKDIR /app
COPY --from=build /src/package.json /src/package-lock.json /src/oclif.manifest.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY --from=build /src/native/relay/build/relay.node ./native/relay/build/relay.node
COPY --from=build /src/bin ./bin
COPY --from=build /src/proto ./proto
RUN ln -s /app/bin/run.js /usr/local/bin/mpctl \
 && mkdir -p /var/lib/marchproxy \
 && chown -R node:node /var/lib/marchproxy
# The image's own non-root user (uid 1000).
USER node
VOLUME ["/var/lib/marchproxy"]
EXPOSE 50050 8082
# The NLB's admin /healthz; compose overrides it for module controllers (mpctl module health).
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.MP_NLB_ADMIN_PORT||8082)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
ENTRYPOINT ["mpctl"]
CMD ["serve", "nlb"]
