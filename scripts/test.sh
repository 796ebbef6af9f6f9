#!/usr/bin/env bash
# Installs everything the tests need on a clean Debian machine, then runs them.
set -euo pipefail
cd "$(dirname "$0")/.."
npm ci
npm test
