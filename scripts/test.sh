#!/usr/bin/env bash
# Runs every check CI runs: formatting, lints, and all tests (unit, property, integration, and a
# smoke pass of the benchmark binaries). Builds once; every test reuses the same target dir.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

echo "==> cargo fmt --check"
cargo fmt --all -- --check

echo "==> cargo clippy"
cargo clippy --locked --workspace --all-targets -- -D warnings

echo "==> infra: Bicep parse and checkov scan"
scripts/infra-check.sh

echo "==> benchmark binaries, smoke pass"
cargo test --locked --bench engine

echo "==> the official Durable Functions client for the API tests (pinned, in target/)"
scripts/df-client.sh --install-only

echo "==> the current Azure Storage Queues SDK for the storage interop test (pinned, in target/)"
scripts/queue-sdk.sh --install-only

echo "==> schemathesis for the OpenAPI test (pinned, in target/)"
scripts/schemathesis.sh --install-only

echo "==> Chromium for the dashboard's browser test (Debian's package, once)"
if [[ ! -x /usr/bin/chromium ]]; then
  sudo=()
  [[ $(id -u) -eq 0 ]] || sudo=(sudo)
  "${sudo[@]}" apt-get update
  "${sudo[@]}" apt-get install -y chromium
fi

echo "==> cargo test"
cargo test --locked --workspace --lib --bins --tests

echo "==> the runtime suites again with the instance cache off (every message loads and replays)"
DURABLE_INSTANCE_CACHE_INSTANCES=0 cargo test --locked \
  --test features --test replay --test runtime --test azure_runtime --test e2e --test tracing
