#!/usr/bin/env bash
# The host-path benchmark: builds release, then brings up a fresh Azurite, the dev host and the
# worker for each measurement and drives them over HTTP. Prints key=value lines, then short tables
# of the headline figures, and writes bench-results/host_path.json. Sections (throughput and fanin
# run by default; --only picks, comma-separated):
#
# throughput: per run and Azurite mode (on disk, the headline, then in memory, unless --azurite
#   says otherwise; figures on disk are prefixed disk_, in memory unprefixed):
#   fire-and-poll: starts 1,000 HelloSequence5 and 1,000 FanOut10 instances (64 requests in
#     flight) and waits for all to complete; idle start->completion latency over 50 sequential
#     runs; storage requests per orchestration counted through a proxy in front of Azurite.
#   request-response (rr_): each request starts an instance and waits for its output in one call
#     (POST .../orchestrators/{name}/{id}?timeout=60&pollingInterval=0, 200 + the output, which is
#     checked; anything else is an error, counted and printed): 1,000 HelloSequence5 and 1,000
#     FanOut10 at 64 in flight (/s, p50/p95 ms, errors), idle p50 over 50 sequential requests;
#     then HelloSequence5 again through the counting proxy for its storage requests per
#     orchestration by kind (rr_mix_<kind>).
#   ceiling: that mix (ceiling_mix=, calls per orchestration) issued straight at a fresh Azurite
#     through the store's Azure backend for 1,000 fresh instances at 64 in flight, with the state,
#     history and summary of one instance the app completed. Each replayed orchestration makes
#     whole calls, spread so the totals by kind are the app's (a kind made 0.72 times per
#     orchestration is made by 72 in 100). ceiling_orch_per_s, and rr_fraction_of_ceiling =
#     rr HelloSequence5 /s over it. ceiling_issued_mix= is what 50 replayed orchestrations issued
#     as the proxy counted them, to check against the mix.
#   Prints each run, then the median with min and max.
# hosts: per run and host count (--hosts, default 1,2,3), a fresh Azurite on disk with N dev
#   hosts on one task hub, each with its own worker; request-response HelloSequence5 and FanOut10
#   spread round-robin: hosts<N>_rr_<workload>_per_s, and from the workers' /admin/counters
#   summed, hosts<N>_<workload>_{conflicts,redone_turns}_per_1000 and _redone_turns_pct; then
#   hosts_<N>_to_1_rr_<workload>_ratio.
# fanin: once per count and Azurite mode (on disk, then in memory, unless --azurite says
#   otherwise), one FanOutFanIn instance of N activities, through the counting proxy, on a fresh
#   Azurite and app: fanin_<disk|memory>_n<N>_{seconds, activities_per_s,
#   requests_per_activity, worker_rss_mib, load_average_1m_before}; "timeout" when it has not
#   completed within --fanin-timeout.
# memory (not run by default; many minutes): one host, Azurite on disk (or the first mode
#   --azurite names), request-response HelloSequence5 at --in-flight until
#   --memory-orchestrations (default 100,000); the worker's
#   current RSS after every 10,000: memory_rss_mib_after_<n>, and memory_rss_growth_pct (the last
#   against the one after 10,000).
# fraud (not run by default; a few minutes per mode): per run and Azurite mode (on disk, then in
#   memory, unless --azurite says otherwise), a generated stream of --fraud-transactions
#   (20,000) card transactions over --fraud-cards (2,000), one card in 100 with a planted
#   pattern, queued on `transactions` before the app starts, at most --fraud-depth (1,000) at a
#   time and topped up as the app takes them (0 queues all at once; Azurite's queue operations
#   scan the whole queue, so depth slows it): fraud_<disk|memory>_tx_per_s from the app's start
#   until the queue is empty (a message is deleted once its card's entity committed it),
#   _tx_per_batch (transactions over the entity batches and turns the worker's /admin/counters
#   counted), CPU % of worker, dev host and Azurite while draining; a sample of cards' counts
#   and the set of FraudReview instances are checked. Then, while --fraud-background (50)
#   normal transactions a second are queued, --fraud-alerts (20) times one after the other a
#   fresh card's two-country pattern: from queueing its second transaction until the review
#   instance exists, _alert_latency_p50_ms/_p95_ms. Then the ceiling: the same stream, fed the
#   same way, on a fresh Azurite, taken by the fraud path's storage calls alone (gets and
#   deletes batched as host.json says, each card entity's commit with a stored card's state, a
#   new card's load and summary) with no app between: _ceiling_tx_per_s and
#   _fraction_of_ceiling (tx_per_s over it). Then a tenth of the stream on a fresh Azurite
#   through the counting proxy: _storage_requests_per_tx and _mix_<kind> per transaction.
#
#   scripts/bench.sh [--only throughput|fanin|hosts|memory|fraud[,...]]
#                    [--azurite disk|memory|both]
#                    [--runs N (3)] [--instances N (1000)] [--in-flight N (64)]
#                    [--latency-samples N (50)] [--count-instances N (50)]
#                    [--hosts 1,2,3] [--memory-orchestrations N (100000)]
#                    [--fanin-counts 100,1000,10000] [--fanin-timeout SECS (300)]
#                    [--fraud-transactions N (20000)] [--fraud-cards N (2000)]
#                    [--fraud-depth N (1000)] [--fraud-alerts N (20)]
#                    [--fraud-background N (50)] [--output FILE]
#
# --hosts: the host counts of the hosts section; the throughput section's request-response runs
#   spread over the first of them (default 1). --runs applies to throughput, hosts and fraud;
#   --instances to every workload of throughput and hosts, and to the ceiling.
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
