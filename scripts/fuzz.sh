#!/usr/bin/env bash
# Fuzzes the HTTP API with schemathesis against the OpenAPI document the
# server itself serves at /openapi.json. Passes when schemathesis finds no
# failure: no 5xx, every response matches its declared status codes, content
# types and schema.
#
#   scripts/fuzz.sh                       spawn src/main.ts on a free loopback port, fuzz 120 s
#   FUZZ_SECONDS=600 scripts/fuzz.sh      longer run
#   FUZZ_URL=http://127.0.0.1:8080 scripts/fuzz.sh   fuzz a server that is already running (loopback only)
#
# Reports (JUnit + JSON + the console summary) land in ${FUZZ_REPORT_DIR:-build/fuzz}.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_BUDGET="${FUZZ_SECONDS:-120}"
REPORT_DIR="${FUZZ_REPORT_DIR:-build/fuzz}"
ST=".venv/bin/schemathesis"
if [ ! -x "$ST" ]; then
  [ -x .venv/bin/python ] || python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check schemathesis==4.32.5
fi
mkdir -p "$REPORT_DIR"

SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
  fi
}
trap cleanup EXIT

if [ -n "${FUZZ_URL:-}" ]; then
  case "$FUZZ_URL" in
    http://127.*|http://localhost*|http://\[::1\]*) ;;
    *) echo "FUZZ_URL must be a loopback address" >&2; exit 2 ;;
  esac
  URL="$FUZZ_URL"
else
  PORT="$(node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")"
  GRPC_PORT="$(node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")"
  HOST=127.0.0.1 PORT="$PORT" GRPC_PORT="$GRPC_PORT" LOG_LEVEL="${FUZZ_LOG_LEVEL:-warn}" \
    node --import tsx src/main.ts >"$REPORT_DIR/server.log" 2>&1 &
  SERVER_PID=$!
  URL="http://127.0.0.1:$PORT"
  for _ in $(seq 1 600); do
    curl -fsS "$URL/health/ready" >/dev/null 2>&1 && break
    kill -0 "$SERVER_PID" 2>/dev/null || { echo "server exited:"; tail -50 "$REPORT_DIR/server.log"; exit 1; }
    sleep 0.2
  done
fi

set +e
"$ST" --config-file scripts/fuzz.toml run "$URL/openapi.json" \
  --max-time "$SECONDS_BUDGET" \
  --workers 2 \
  --seed "${FUZZ_SEED:-20261124}" \
  --request-timeout 30 \
  --suppress-health-check too_slow,filter_too_much,data_too_large \
  --report junit,json --report-dir "$REPORT_DIR" \
  --no-color "$@" 2>&1 | tee "$REPORT_DIR/summary.txt"
rc=${PIPESTATUS[0]}
set -e

if [ -z "${FUZZ_URL:-}" ]; then
  curl -fsS "$URL/health/live" >/dev/null || { echo "server not live after fuzzing"; rc=1; }
  if grep -qE '"level":(50|60)' "$REPORT_DIR/server.log"; then
    echo "server logged errors during fuzzing:"; grep -E '"level":(50|60)' "$REPORT_DIR/server.log" | head -20
  fi
fi
exit "$rc"
