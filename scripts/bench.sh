#!/usr/bin/env bash
# The host-path benchmark: builds release, then brings up a fresh Azurite, the dev host and the
# worker for each measurement and drives them over HTTP. Prints key=value lines and writes
# bench-results/host_path.json. Two sections, both run by default:
#
# throughput: per run, starts 1,000 HelloSequence5 and 1,000 FanOut10 instances (64 requests in
#   flight), measures idle start->completion latency over 50 sequential runs, and counts storage
#   requests per orchestration through a proxy in front of Azurite; prints each run, then the
#   median with min and max. Azurite in memory unless --azurite says otherwise; figures on disk
#   are prefixed disk_.
# fanin: once per count and Azurite mode (on disk, then in memory, unless --azurite says
#   otherwise), one FanOutFanIn instance of N activities, through the counting proxy, on a fresh
#   Azurite and app: fanin_<disk|memory>_n<N>_{seconds, activities_per_s,
#   requests_per_activity, worker_rss_mib, load_average_1m_before}; "timeout" when it has not
#   completed within --fanin-timeout.
#
#   scripts/bench.sh [--only throughput|fanin] [--azurite disk|memory|both]
#                    [--runs N] [--instances N] [--in-flight N] [--latency-samples N]
#                    [--count-instances N] [--fanin-counts 100,1000,10000]
#                    [--fanin-timeout SECS (300)] [--output FILE]
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

# The run uses copies of the binaries just built: a build from another tree sharing the target
# dir (CARGO_TARGET_DIR) must not swap them mid-run.
bin_dir=$(mktemp -d)
trap 'rm -rf "$bin_dir"' EXIT
release_dir=$(dirname "$(dirname "$binary")")
cp "$release_dir/devhost" "$release_dir/worker" "$bin_dir/"

echo "cpu_model=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
echo "cores=$(nproc)"
echo "memory_gib=$(awk '/MemTotal/ {printf "%.0f", $2/1048576}' /proc/meminfo)"
echo "commit=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src crates || echo -dirty)"
"$binary" --bin-dir "$bin_dir" "$@"
