#!/usr/bin/env bash
# Installs the official Durable Functions Python client, unmodified, from the hash-pinned
# tests/df_client/requirements.txt into target/df-client-venv (again only when that file
# changes), then runs tests/df_client/drive.py with the arguments given.
#   scripts/df-client.sh --install-only
#   scripts/df-client.sh --base-url http://127.0.0.1:7071/api/ --task-hub HUB --claim ID
# Needs CPython 3.10-3.12 (the client's azure-functions dependency refuses 3.13); set PYTHON to
# pick the interpreter.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

venv=target/df-client-venv
requirements=tests/df_client/requirements.txt
mkdir -p target
exec 9>target/df-client.lock
flock 9
want=$(sha256sum "$requirements" | cut -d' ' -f1)
if [[ ! -f "$venv/.requirements.sha256" || "$(cat "$venv/.requirements.sha256")" != "$want" ]]; then
  rm -rf "$venv"
  "${PYTHON:-python3}" -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    --require-hashes -r "$requirements"
  echo "$want" >"$venv/.requirements.sha256"
fi
flock -u 9
if [[ "${1:-}" == "--install-only" ]]; then
  exit 0
fi
exec "$venv/bin/python" tests/df_client/drive.py "$@"
