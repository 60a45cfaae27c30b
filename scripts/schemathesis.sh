#!/usr/bin/env bash
# Fuzzes the running app's HTTP API against its OpenAPI description with schemathesis, installed
# from the hash-pinned tests/schemathesis/requirements.txt into target/schemathesis-venv (again
# only when that file changes). Exits non-zero, with schemathesis' report, on any failure.
#   scripts/schemathesis.sh --install-only
#   scripts/schemathesis.sh http://127.0.0.1:7071 [more `st run` options]
# The run is bounded and repeatable: SCHEMATHESIS_MAX_EXAMPLES cases per operation (default 50)
# from a fixed seed (SCHEMATHESIS_SEED). Needs CPython 3.11-3.13; set PYTHON to pick one.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/lib/pinned-venv.sh

venv=target/schemathesis-venv
pinned_venv "$venv" tests/schemathesis/requirements.txt
if [[ "${1:-}" == "--install-only" ]]; then
  exit 0
fi
base=${1:?usage: scripts/schemathesis.sh BASE_URL [st run options]}
shift
# Hypothesis keeps its own files (Unicode tables) here rather than in .hypothesis/.
export HYPOTHESIS_STORAGE_DIRECTORY=target/hypothesis
# The description is read from the running app: what it serves is what gets checked.
exec "$venv/bin/st" --no-color --config-file tests/schemathesis/schemathesis.toml run "$base/api/openapi.json" --url "$base" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance \
  --max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-50}" --seed "${SCHEMATHESIS_SEED:-20261202}" \
  --generation-database none --workers 1 --request-timeout 30 "$@"
