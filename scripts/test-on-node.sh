#!/usr/bin/env bash
# Runs the test suite (npm test) on another Node.js major line, with the official
# binary that npm's node-linux-<arch> package carries (no nodejs.org needed).
#
#   bash scripts/test-on-node.sh 24                  # typecheck + every test/*.test.ts
#   bash scripts/test-on-node.sh 22 test/a.test.ts   # only these files (no typecheck)
# Other arguments (not ending in .ts) go to `node --test`.
#
# The native modules (sharp, onnxruntime-node, our addon) use Node-API, so the
# node_modules that `npm ci` built for the system Node serve here unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."
major="${1:?usage: scripts/test-on-node.sh MAJOR (e.g. 24)}"
shift
case "$(uname -m)" in
  x86_64) arch=x64 ;;
  aarch64 | arm64) arch=arm64 ;;
  *) echo "test-on-node: no node-linux package for $(uname -m)" >&2; exit 2 ;;
esac
dir=".cache/node-$major"
if [ ! -x "$dir/package/bin/node" ]; then
  echo "test-on-node: fetching node-linux-$arch@$major from the npm registry"
  rm -rf "$dir" && mkdir -p "$dir"
  tarball=$(cd "$dir" && npm pack --silent "node-linux-$arch@$major" | tail -1)
  tar xzf "$dir/$tarball" -C "$dir" && rm "$dir/$tarball"
fi
export PATH="$PWD/$dir/package/bin:$PATH"
files=() flags=()
for a in "$@"; do
  case "$a" in *.ts) files+=("$a") ;; *) flags+=("$a") ;; esac
done
echo "test-on-node: $(node --version)${files:+, ${#files[@]} test files}"
if [ ${#files[@]} -eq 0 ]; then
  npm run -s typecheck
  files=(test/*.test.ts)
fi
node --import tsx --test --test-concurrency=1 --test-reporter=tap "${flags[@]}" "${files[@]}"
