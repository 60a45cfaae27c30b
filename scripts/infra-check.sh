#!/usr/bin/env bash
# Offline checks of infra/: every .bicep file parses (pycep-parser, the parser checkov itself
# uses); both shapes of the deployment evaluate (scripts/lib/bicep_shape.py): open, from
# main.parameters.json, and private, with main.parameters.private.json over it; and checkov's
# Bicep policy scan of each shape (scripts/lib/shape_scan.py) reports no failed check but those
# the shape is expected to fail, with every skipped check listed in infra/.checkov.yaml beside
# its reason. Installs its tools into a venv under target/ from the hash-pinned
# infra/requirements.txt, rebuilt whenever that file changes.
#   scripts/infra-check.sh
#   scripts/infra-check.sh --render PARAMETERS.json...   the resources a parameter set deploys
#                                                          (JSON), later files overriding earlier
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

venv=target/infra-tools
stamp="$venv/requirements.sha256"
config=infra/.checkov.yaml
shape=scripts/lib/bicep_shape.py
scan=scripts/lib/shape_scan.py
open_shape=(infra/main.parameters.json)
private_shape=(infra/main.parameters.json infra/main.parameters.private.json)

fail() {
  echo "infra-check: $*" >&2
  exit 1
}

command -v python3 >/dev/null || fail "python3 is not installed (Debian: apt-get install python3 python3-venv)"
# Concurrent callers (tests render in parallel) wait for one install.
mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9
want=$(sha256sum infra/requirements.txt | cut -d' ' -f1)
if [[ ! -x "$venv/bin/checkov" || "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
  echo "==> installing checkov and pycep-parser into $venv (infra/requirements.txt)" >&2
  rm -rf "$venv"
  python3 -m venv "$venv" || fail "python3 -m venv failed (Debian: apt-get install python3-venv)"
  "$venv/bin/pip" install --quiet --disable-pip-version-check --require-hashes \
    -r infra/requirements.txt || fail "installing infra/requirements.txt failed"
  echo "$want" >"$stamp"
fi
flock -u 9
exec 9>&-

if [[ "${1:-}" == "--render" ]]; then
  shift
  [[ $# -gt 0 ]] || fail "--render needs at least one parameter file"
  exec "$venv/bin/python" "$shape" infra "$@"
fi

echo "==> parsing every .bicep file under infra/"
"$venv/bin/python" - infra <<'PY'
import sys
from pathlib import Path

from pycep import BicepParser

parser = BicepParser()
# A parser that accepts anything would pass every file: make sure it rejects a broken one.
try:
    parser.parse(text="resource broken 'Microsoft.Web/sites@2023-12-01' = {\n  name: \n")
except Exception:
    pass
else:
    sys.exit("the Bicep parser accepted a malformed file; the parse check would prove nothing")

files = sorted(Path(sys.argv[1]).rglob("*.bicep"))
if not files:
    sys.exit("no .bicep files under infra/")
failed = 0
for path in files:
    try:
        parsed = parser.parse(file_path=path)
    except Exception as error:  # pycep raises lark's exceptions, with line and column
        failed += 1
        print(f"FAIL {path}: {type(error).__name__}: {error}", file=sys.stderr)
        continue
    counts = ", ".join(
        f"{len(parsed.get(kind, {}))} {kind}" for kind in ("parameters", "resources", "modules", "outputs")
    )
    print(f"ok   {path} ({counts})")
if failed:
    sys.exit(f"{failed} of {len(files)} .bicep files do not parse")
PY

echo "==> main.parameters.json and main.bicep's defaults match local.settings.json"
"$venv/bin/python" - <<'PY'
import json
import sys
from pathlib import Path

from pycep import BicepParser

declared = BicepParser().parse(file_path=Path("infra/main.bicep"))["parameters"]
given = json.loads(Path("infra/main.parameters.json").read_text())["parameters"]
local = json.loads(Path("local.settings.json").read_text())["Values"]
# What the deployment sets itself (identity-based storage, the custom runtime) is not a
# workflow setting; everything else in local.settings.json must reach Azure unchanged.
platform = {"FUNCTIONS_WORKER_RUNTIME", "AzureWebJobsStorage", "TaskHub"}
workflow = {k: v for k, v in local.items() if k not in platform}

problems = [f"main.parameters.json sets '{name}', which main.bicep does not declare"
            for name in given if name not in declared]
for source, settings, hub in (
    ("main.bicep defaults", declared["workflowSettings"].get("default"), declared["taskHub"].get("default")),
    ("main.parameters.json", given.get("workflowSettings", {}).get("value"), given.get("taskHub", {}).get("value")),
):
    if settings != workflow:
        problems.append(f"{source}: workflowSettings {settings} differ from local.settings.json {workflow}")
    if hub != local.get("TaskHub"):
        problems.append(f"{source}: taskHub '{hub}' differs from local.settings.json '{local.get('TaskHub')}'")
if problems:
    sys.exit("\n".join(problems))
print(f"ok   {len(workflow)} workflow settings and TaskHub '{local['TaskHub']}'")
PY

echo "==> both shapes of the deployment evaluate"
for name in open private; do
  files="${name}_shape[@]"
  "$venv/bin/python" "$shape" infra "${!files}" >"target/infra-shape-$name.json" ||
    fail "the $name shape (${!files}) does not evaluate"
  "$venv/bin/python" - "$name" "target/infra-shape-$name.json" <<'PY'
import collections
import json
import sys

resources = json.load(open(sys.argv[2]))["resources"]
kinds = collections.Counter(resource["type"].split("/", 1)[1] for resource in resources)
print(f"ok   {sys.argv[1]}: {len(resources)} resources ({', '.join(f'{n} {k}' for k, n in sorted(kinds.items()))})")
PY
done

echo "==> every skipped check in $config has its reason"
missing=$(awk '
  /^skip-check:/ { in_list = 1; next }
  in_list && /^[^ #-]/ { in_list = 0 }
  # A reason is a comment of a few words after the check id.
  in_list && /^[[:space:]]*-/ {
    reason = index($0, "#") ? substr($0, index($0, "#") + 1) : ""
    gsub(/^[[:space:]]+|[[:space:]]+$/, "", reason)
    if (length(reason) < 10) print
  }
' "$config")
[[ -z "$missing" ]] || fail "skipped checks without a reason in $config:"$'\n'"$missing"
echo "    $(grep -cE '^[[:space:]]*- CKV' "$config") checks skipped, each with its reason (see $config)"

# The open shape keeps both storage accounts on their public endpoints (Entra ID or key,
# HTTPS, TLS 1.2): it must fail exactly the two storage network checks, CKV_AZURE_35 (default
# network rule Deny) and CKV_AZURE_59 (public network access disabled), which privateNetworking
# makes pass. The private shape must fail nothing.
status=0
echo "==> checkov, open shape (${open_shape[*]}): fails only CKV_AZURE_35 and CKV_AZURE_59"
"$venv/bin/python" "$scan" infra --config "$config" --expect-fail CKV_AZURE_35,CKV_AZURE_59 \
  "${open_shape[@]}" || status=1
echo "==> checkov, private shape (${private_shape[*]}): fails nothing"
"$venv/bin/python" "$scan" infra --config "$config" "${private_shape[@]}" || status=1
[[ $status -eq 0 ]] || fail "the policy scan failed (see above)"
echo "==> infra checks passed"
