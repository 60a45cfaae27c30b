#!/usr/bin/env bash
# Installs the official Durable Functions Python client, unmodified, from the hash-pinned
# tests/df_client/requirements.txt into target/df-client-venv (again only when that file
# changes), then runs tests/df_client/drive.py with the arguments given.
#   scripts/df-client.sh --install-only
#   scripts/df-client.sh --base-url http://127.0.0.1:7071/api/ --task-hub HUB
# Needs CPython 3.10-3.12 (the client's azure-functions dependency refuses 3.13); set PYTHON to
# pick the interpreter.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/lib/pinned-venv.sh
run_pinned target/df-client-venv tests/df_client/requirements.txt tests/df_client/drive.py "$@"
