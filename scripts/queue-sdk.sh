#!/usr/bin/env bash
# Installs the current Azure Storage Queues SDK for Python (azure-storage-queue), unmodified,
# from the hash-pinned tests/queue_sdk/requirements.txt into target/queue-sdk-venv (again only
# when that file changes), then runs tests/queue_sdk/put_message.py with the arguments given.
#   scripts/queue-sdk.sh --install-only
#   scripts/queue-sdk.sh --connection-string "$AzureWebJobsStorage" --queue output-queue --message TEXT
# Needs CPython 3.11 or 3.12 (the pinned wheels); set PYTHON to pick the interpreter.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/lib/pinned-venv.sh
run_pinned target/queue-sdk-venv tests/queue_sdk/requirements.txt tests/queue_sdk/put_message.py "$@"
