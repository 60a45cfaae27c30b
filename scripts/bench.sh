#!/usr/bin/env bash
# The host-path benchmark: builds release, then for each run brings up an in-memory Azurite, the
# dev host and the worker, starts 1,000 HelloSequence5 and 1,000 FanOut10 instances over HTTP
# (64 requests in flight), measures idle start->completion latency over 50 sequential runs, and
# counts storage requests per orchestration through a proxy in front of Azurite. Prints
# key=value lines (per run, then median with min and max) and writes bench-results/host_path.json.
#
#   scripts/bench.sh [--runs N] [--instances N] [--in-flight N] [--latency-samples N]
#                    [--count-instances N] [--output FILE]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [[ ! -x node_modules/.bin/azurite ]]; then
  echo "==> installing Azurite from the lockfile"
  npm ci --no-audit --no-fund >/dev/null
fi
echo "==> building release binaries" >&2
cargo build --locked --release --workspace --bins >&2
source scripts/lib/bench-binary.sh
binary=$(bench_binary host_path)

echo "cpu_model=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
echo "cores=$(nproc)"
echo "memory_gib=$(awk '/MemTotal/ {printf "%.0f", $2/1048576}' /proc/meminfo)"
"$binary" "$@"
