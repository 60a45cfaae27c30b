#!/usr/bin/env bash
# Engine benchmarks: replay cost per history event (10,000-event histories) and engine-only
# throughput of two-activity orchestrations through the in-memory runtime, pinned to one core.
# Prints key=value lines (median of 5 runs, with min and max).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

source scripts/lib/bench-binary.sh
binary=$(bench_binary engine)

pin=()
if command -v taskset >/dev/null 2>&1; then
  pin=(taskset -c 0)
fi
echo "cpu_model=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
echo "cores=$(nproc)"
echo "load_average_1m=$(cut -d' ' -f1 /proc/loadavg)"
"${pin[@]}" "$binary" --bench
