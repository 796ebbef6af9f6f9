# swin-serve images. Build targets:
#   cpu        slim Node image, onnxruntime backend, the embedded swin-fmnist model
#   gpu        CUDA runtime image, the native addon (TensorRT + CUDA backends),
#              ONNX files and CUDA engine files of every model in engines/models
#   trt-plans  one-shot tool image: builds TensorRT plans for the GPU it runs on
#              into a cache volume that the gpu image reads (plans are tied to
#              the GPU model and the TensorRT version, so they are never shipped)
#
#   docker build --target cpu -t swin-serve:0.1.0-cpu .
#   docker build --target gpu -t swin-serve:0.1.0-gpu .
#   docker build --target trt-plans -t swin-serve-trt-plans:0.1.0 .
#
# Behind a TLS-inspecting proxy, hand the build your CA bundle as a secret
# (npm and pip in the build stages trust it; it stays out of every image):
#   docker build --secret id=extra_ca,src=/etc/ssl/certs/ca-certificates.crt ...
# NODE_IMAGE replaces the official Node base (a mirror, or the local base that
# scripts/docker-image-test.sh makes). No `# syntax=` line: the builder's own
# Dockerfile frontend is used, so a build needs no registry but the bases'.
#
# The TensorRT image and the CUDA runtime image must carry the same CUDA major
# version; the TensorRT libraries in the gpu image are copied from the
# TensorRT image, so the addon, the plans and the runtime share one version.
ARG NODE_VERSION=24.11.1
ARG NODE_IMAGE=node:${NODE_VERSION}-bookworm-slim
ARG TENSORRT_IMAGE=nvcr.io/nvidia/tensorrt:25.10-py3
ARG CUDA_RUNTIME_IMAGE=nvidia/cuda:13.0.1-runtime-ubuntu24.04

# Official Node binaries: copied into the NVIDIA images below.
FROM ${NODE_IMAGE} AS node

# ---------------------------------------------------------------------------
# TypeScript -> dist/, then production dependencies only.
FROM ${NODE_IMAGE} AS js-build
WORKDIR /build
COPY package.json package-lock.json ./
# --ignore-scripts: the root package's install hook would try to build the
# addon (addon-build does that, with CUDA); the dependencies need no scripts
# (sharp and onnxruntime-node ship prebuilt binaries in their packages).
RUN --mount=type=secret,id=extra_ca \
    NODE_EXTRA_CA_CERTS=/run/secrets/extra_ca npm ci --no-audit --no-fund --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build \
 && npm prune --omit=dev --no-audit --no-fund \
 # onnxruntime-node bundles binaries for every OS; keep Linux only
 && rm -rf node_modules/onnxruntime-node/bin/napi-v*/darwin node_modules/onnxruntime-node/bin/napi-v*/win32 \
 && npm cache clean --force

# ---------------------------------------------------------------------------
# CPU image.
FROM ${NODE_IMAGE} AS cpu
ENV NODE_ENV=production \
    PORT=8080 \
    GRPC_PORT=8081 \
    BACKEND=onnxruntime \
    MODELS_DIR=/app/engines/models
WORKDIR /app
RUN groupadd --system --gid 10001 swin \
 && useradd --system --uid 10001 --gid swin --home-dir /app --shell /usr/sbin/nologin swin
COPY --from=js-build /build/node_modules ./node_modules
COPY --from=js-build /build/dist ./dist
COPY package.json ./
COPY proto ./proto
COPY engines/models/swin-fmnist ./engines/models/swin-fmnist
USER 10001:10001
EXPOSE 8080 8081
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
  CMD ["node", "dist/src/healthcheck.js"]
CMD ["node", "dist/src/main.js"]

# ---------------------------------------------------------------------------
# Native addon, compiled against CUDA and TensorRT from NVIDIA's TensorRT image.
FROM ${TENSORRT_IMAGE} AS addon-build
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
COPY --from=node /usr/local/bin/node /usr/local/bin/node
COPY --from=node /usr/local/lib/node_modules /usr/local/lib/node_modules
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \
 && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx
# cmake and nlohmann/json's headers (the CUDA engine's JSON parser) from PyPI:
# pinned versions, whatever the base image carries (the
# variable lets pip install next to Ubuntu 24.04's own Python packages).
# With the extra_ca secret, pip takes it as its whole bundle: pass a full one.
RUN --mount=type=secret,id=extra_ca \
    if [ -s /run/secrets/extra_ca ]; then export PIP_CERT=/run/secrets/extra_ca; fi; \
    PIP_BREAK_SYSTEM_PACKAGES=1 pip install --no-cache-dir cmake==3.31.6 nlohmann-json==3.12.0
WORKDIR /build
COPY package.json package-lock.json ./
RUN --mount=type=secret,id=extra_ca \
    NODE_EXTRA_CA_CERTS=/run/secrets/extra_ca npm ci --no-audit --no-fund --ignore-scripts
COPY addon ./addon
# Every piece this image exists to provide must be in the addon: the build log
# must say it found CUDA and TensorRT and built the CUDA engine and nvJPEG, and
# the built addon must say the same of itself. A missing piece would silently
# disable a backend (or GPU decoding) and the image would serve on the CPU.
# NLOHMANN_JSON_ROOT: nlohmann/json's headers from the pip package above (addon/cuda).
RUN NLOHMANN_JSON_ROOT="$(python3 -c 'import nlohmann_json, os; print(os.path.dirname(nlohmann_json.__file__))')" \
    npm run build:addon 2>&1 | tee /tmp/addon-build.log \
 && grep -q -- "-- TensorRT: found" /tmp/addon-build.log \
 && grep -q -- "-- CUDA: found" /tmp/addon-build.log \
 && grep -q -- "-- CUDA engine: built" /tmp/addon-build.log \
 && grep -q -- "-- nvJPEG: found" /tmp/addon-build.log \
 && node -e "const a = require('./addon/build/Release/swin_addon.node'); const c = a.capabilities(); \
      const missing = [['tensorrt', c.tensorrt.built], ['cuda engine', c.cudaEngine.built], ['nvJPEG', a.JpegDecoder && a.JpegDecoder.built]] \
        .filter(([, built]) => !built).map(([name]) => name); \
      if (missing.length) { console.error('addon built without: ' + missing.join(', ')); process.exit(1); }"
# The TensorRT runtime libraries the gpu image needs (the same version as the
# headers above, so plans built by trt-plans load at run time).
RUN mkdir -p /opt/tensorrt/lib \
 && for lib in libnvinfer.so.10 libnvinfer_plugin.so.10; do \
      path="$(ldconfig -p | awk -v l="$lib" '$1 == l { print $NF; exit }')"; \
      test -n "$path" || { echo "missing $lib" >&2; exit 1; }; \
      cp -L "$path" "/opt/tensorrt/lib/$lib"; \
    done \
 # libnvinfer.so.10 -> libnvinfer.so.10.x.y: the version plans are stamped with
 && readlink -f "$(ldconfig -p | awk '$1 == "libnvinfer.so.10" { print $NF; exit }')" \
    | sed 's/.*libnvinfer\.so\.//' > /opt/tensorrt/VERSION

# ---------------------------------------------------------------------------
# GPU image.
FROM ${CUDA_RUNTIME_IMAGE} AS gpu
ENV NODE_ENV=production \
    PORT=8080 \
    GRPC_PORT=8081 \
    BACKEND=auto \
    FRONTEND_WORKERS=4 \
    TRT_PLAN_CACHE=/var/cache/swin-serve/trt \
    SWIN_ADDON_PATH=/app/addon/build/Release/swin_addon.node
COPY --from=node /usr/local/bin/node /usr/local/bin/node
COPY --from=addon-build /opt/tensorrt /opt/tensorrt
RUN echo /opt/tensorrt/lib > /etc/ld.so.conf.d/tensorrt.conf \
 && ldconfig \
 && groupadd --system --gid 10001 swin \
 && useradd --system --uid 10001 --gid swin --home-dir /app --shell /usr/sbin/nologin swin \
 && mkdir -p /var/cache/swin-serve/trt \
 && chown swin:swin /var/cache/swin-serve/trt
WORKDIR /app
COPY --from=js-build /build/node_modules ./node_modules
COPY --from=js-build /build/dist ./dist
COPY --from=addon-build /build/addon/build/Release ./addon/build/Release
COPY package.json ./
COPY proto ./proto
COPY engines/models ./engines/models
COPY deploy/docker/serve.sh ./serve.sh
USER 10001:10001
VOLUME ["/var/cache/swin-serve/trt"]
EXPOSE 8080 8081
# Long start period: every variant is self-tested on load.
HEALTHCHECK --interval=15s --timeout=3s --start-period=180s --retries=3 \
  CMD ["node", "dist/src/healthcheck.js"]
# serve.sh picks the plan cache (when its plans match this GPU and image) or the image's models.
ENTRYPOINT ["/app/serve.sh"]
CMD []

# ---------------------------------------------------------------------------
# One-shot plan builder: `docker compose --profile gpu run --rm trt-plans`.
# Runs on the GPU host; writes <cache>/models/<model>/ (see deploy/docker/build-plans.sh).
FROM ${TENSORRT_IMAGE} AS trt-plans
ENV MODELS_DIR=/app/engines/models \
    TRT_PLAN_CACHE=/var/cache/swin-serve/trt
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
COPY --from=addon-build /opt/tensorrt/VERSION /opt/tensorrt/VERSION
# trtexec on PATH, wherever this TensorRT image keeps it (engines/build_trt_plans.sh runs it).
RUN if ! command -v trtexec >/dev/null; then \
      t="$(find /usr/src/tensorrt /opt/tensorrt /workspace -name trtexec -type f 2>/dev/null | head -n 1)"; \
      test -n "$t" || { echo "trtexec not found in the TensorRT image" >&2; exit 1; }; \
      ln -s "$t" /usr/local/bin/trtexec; \
    fi
RUN groupadd --system --gid 10001 swin \
 && useradd --system --uid 10001 --gid swin --home-dir /app --shell /usr/sbin/nologin swin \
 && mkdir -p /var/cache/swin-serve/trt \
 && chown swin:swin /var/cache/swin-serve/trt
WORKDIR /app
COPY engines/build_trt_plans.sh ./engines/build_trt_plans.sh
COPY engines/models ./engines/models
COPY deploy/docker/build-plans.sh ./build-plans.sh
USER 10001:10001
VOLUME ["/var/cache/swin-serve/trt"]
ENTRYPOINT ["bash", "/app/build-plans.sh"]
