#!/usr/bin/env bash
# README command 1: runs the app locally. Starts Azurite from the lockfile (data kept on disk in
# .azurite/data, so local state survives a restart), builds the worker, and runs it under
# `func start` when Azure Functions Core Tools are installed, otherwise under the bundled dev
# host. Ctrl-C stops everything; running it again works.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

data_dir=.azurite/data
started_azurite=no
if scripts/azurite.sh status >/dev/null 2>&1; then
  echo "==> Azurite is already running on the default ports; using it"
else
  echo "==> starting Azurite (data in $data_dir)"
  mkdir -p "$data_dir"
  scripts/azurite.sh start --disk "$data_dir"
  started_azurite=yes
fi

host_pid=""
cleanup() {
  if [[ -n "$host_pid" ]] && kill -0 "$host_pid" 2>/dev/null; then
    kill -TERM "$host_pid" 2>/dev/null || true
    wait "$host_pid" 2>/dev/null || true
  fi
  if [[ "$started_azurite" == yes ]]; then
    scripts/azurite.sh stop || true
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "==> building the worker and the dev host"
cargo build --locked --workspace --bins

if command -v func >/dev/null 2>&1; then
  # The real host runs `defaultExecutablePath` ("handler") from the app root and reads the
  # functions there; the repository keeps them under functions/.
  cp target/debug/worker handler
  echo "==> starting the Functions host (func start)"
  (cd functions && cp ../host.json ../local.settings.json ../handler . && func start) &
else
  echo "==> func is not installed: starting the dev host"
  DEVHOST_WORKER="$PWD/target/debug/worker" target/debug/devhost . &
fi
host_pid=$!

cat <<INFO
==> running on http://localhost:7071/api/ (Storage: Azurite at 127.0.0.1:10000-10002,
    UseDevelopmentStorage=true; task hub: the TaskHub setting in local.settings.json).
    The sync timer starts Workflow-… instances every 15 s; watch them with
      curl -s 'http://localhost:7071/api/instances?instanceIdPrefix=Workflow-'
    start others with POST http://localhost:7071/api/orchestrators/{name} (README: Try it).
    Press Ctrl-C to stop.
INFO
wait "$host_pid"
