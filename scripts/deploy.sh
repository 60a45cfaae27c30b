#!/usr/bin/env bash
# Deploys the app to Azure Functions Elastic Premium (Linux): checks the prerequisites, builds
# the worker for the Functions Linux image, packages it (scripts/package.sh), deploys
# infra/main.bicep with `az deployment group create`, publishes the zip, waits for the app to
# answer and prints its URLs.
#
#   scripts/deploy.sh --resource-group RG --location REGION [--app-name NAME]
#                     [--target TRIPLE] [--param NAME=VALUE]... [--check-only]
set -euo pipefail
# Only bash builtins until the prerequisites are checked, so a missing tool is reported as such.
script_dir=${BASH_SOURCE[0]%/*}
[[ "$script_dir" != "${BASH_SOURCE[0]}" ]] || script_dir=.
cd "$script_dir/.."

usage() {
  cat >&2 <<'USAGE'
usage: scripts/deploy.sh --resource-group RG --location REGION [options]

  -g, --resource-group RG   resource group to deploy into (created if missing)
  -l, --location REGION     Azure region, e.g. westeurope
  -n, --app-name NAME       Function App name (default: durableorch-<hash of the group>)
  --target TRIPLE           Rust target of the worker (default x86_64-unknown-linux-musl: a
                            static binary, independent of the image's glibc)
  --param NAME=VALUE        override a parameter of infra/main.bicep (repeatable)
  --check-only              check the prerequisites and stop
USAGE
  exit 2
}

resource_group=""
location=""
app_name=""
target=x86_64-unknown-linux-musl
params=()
check_only=no
while [[ $# -gt 0 ]]; do
  case "$1" in
    -g | --resource-group | -l | --location | -n | --app-name | --target | --param)
      [[ $# -ge 2 && -n "$2" ]] || { echo "deploy: $1 needs a value" >&2 && usage; }
      case "$1" in
        -g | --resource-group) resource_group=$2 ;;
        -l | --location) location=$2 ;;
        -n | --app-name) app_name=$2 ;;
        --target) target=$2 ;;
        --param) params+=("$2") ;;
      esac
      shift 2
      ;;
    --check-only)
      check_only=yes
      shift
      ;;
    -h | --help) usage ;;
    *) echo "deploy: unknown argument $1" >&2 && usage ;;
  esac
done

# Every missing prerequisite is collected first, so one run lists all of them.
missing=()
[[ -n "$resource_group" ]] || missing+=("--resource-group: the resource group to deploy into")
[[ -n "$location" ]] || missing+=("--location: the Azure region (e.g. westeurope)")
have() { command -v "$1" >/dev/null 2>&1; }
if ! have az; then
  missing+=("az: the Azure CLI (https://learn.microsoft.com/cli/azure/install-azure-cli)")
elif ! az account show --output none >/dev/null 2>&1; then
  missing+=("az login: the Azure CLI is not signed in (run az login, then az account set --subscription ...)")
elif ! az bicep version >/dev/null 2>&1; then
  missing+=("az bicep: the Bicep CLI is not installed (run az bicep install; it downloads the binary)")
fi
have cargo || missing+=("cargo: the Rust toolchain (https://rustup.rs)")
if ! have rustup; then
  missing+=("rustup: needed to check the $target target")
elif ! grep -qx "$target" <<<"$(rustup target list --installed 2>/dev/null)"; then
  missing+=("Rust target $target (run rustup target add $target)")
fi
case "$target" in
  *-musl)
    # ring (TLS) compiles C; cc-rs looks for x86_64-linux-musl-gcc, then musl-gcc.
    have x86_64-linux-musl-gcc || have musl-gcc ||
      missing+=("musl-gcc: the C compiler for $target (Debian: apt-get install musl-tools)")
    ;;
  x86_64-unknown-linux-gnu)
    echo "deploy: warning: a glibc build runs only if the Functions image's glibc is at least the build machine's; the musl target has no such dependency" >&2
    ;;
  *) missing+=("--target $target: the Functions Linux workers are x86-64; use x86_64-unknown-linux-musl") ;;
esac
have zip || missing+=("zip (Debian: apt-get install zip)")
have curl || missing+=("curl, to wait for the deployed app (Debian: apt-get install curl)")
if [[ ${#missing[@]} -gt 0 ]]; then
  echo "deploy: missing prerequisites:" >&2
  printf '  - %s\n' "${missing[@]}" >&2
  exit 1
fi
echo "==> prerequisites present (subscription: $(az account show --query name --output tsv))"
[[ "$check_only" == no ]] || exit 0

echo "==> building the worker for $target (release)"
cargo build --locked --release --target "$target" --bin worker
package=target/deploy/app.zip
scripts/package.sh --binary "target/$target/release/worker" "$package"

if ! az group show --name "$resource_group" --output none >/dev/null 2>&1; then
  echo "==> creating resource group $resource_group in $location"
  az group create --name "$resource_group" --location "$location" --output none
fi

deployment=durable-orchestrator
overrides=("location=$location")
[[ -z "$app_name" ]] || overrides+=("appName=$app_name")
overrides+=("${params[@]}")
echo "==> deploying infra/main.bicep to $resource_group ($deployment)"
az deployment group create --resource-group "$resource_group" --name "$deployment" \
  --template-file infra/main.bicep --parameters @infra/main.parameters.json \
  --parameters "${overrides[@]}" --output none
output() {
  az deployment group show --resource-group "$resource_group" --name "$deployment" \
    --query "properties.outputs.$1.value" --output tsv
}
app=$(output appName)
host=$(output hostName)

echo "==> publishing $package to $app"
# Zip deploy with WEBSITE_RUN_FROM_PACKAGE=1 (set by the template): the package is mounted
# as built, so the handler keeps the executable bit recorded in the zip.
az functionapp deployment source config-zip --resource-group "$resource_group" --name "$app" \
  --src "$package" --output none

echo "==> waiting for the app to answer (role assignments can take a few minutes to apply)"
key=""
answered=no
for _ in $(seq 60); do
  [[ -n "$key" ]] || key=$(az functionapp keys list --resource-group "$resource_group" \
    --name "$app" --query functionKeys.default --output tsv 2>/dev/null || true)
  if [[ -n "$key" ]] && curl --silent --fail --max-time 30 --output /dev/null \
    --header "x-functions-key: $key" "https://$host/api/instances?top=1"; then
    answered=yes
    break
  fi
  sleep 10
done
if [[ "$answered" == no ]]; then
  cat >&2 <<HINTS
deploy: https://$host/api/instances did not answer within 10 minutes. Look at:
  - the host log: az webapp log tail --resource-group $resource_group --name $app
  - the handler's mode: az webapp ssh --resource-group $resource_group --name $app, then
    ls -l /home/site/wwwroot/handler (it must be executable)
  - the role assignments on the data storage account (403s in the log while they apply)
HINTS
  exit 1
fi

cat <<URLS
==> deployed $app
    host:      https://$host
    start:     POST https://$host/api/orchestrators/{functionName}  (e.g. ClaimApprovalWorkflow,
               OrderWorkflow, MedallionPipeline)
    instances: https://$host/api/instances
    The HTTP functions need a function key: pass x-functions-key or ?code=, from
      az functionapp keys list --resource-group $resource_group --name $app --query functionKeys.default --output tsv
URLS
