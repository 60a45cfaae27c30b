#!/usr/bin/env bash
# Deploys the app to Azure Functions Elastic Premium (Linux): checks the prerequisites, builds
# the worker for the Functions Linux image, packages it (scripts/package.sh), deploys
# infra/main.bicep with `az deployment group create`, publishes the zip, waits for the app to
# answer and prints its URLs.
#
#   scripts/deploy.sh --resource-group RG --location REGION [--app-name NAME]
#                     [--target TRIPLE] [--param NAME=VALUE]... [--allow-ip [NAME=]CIDR]...
#                     [--allow-my-ip] [--open-scm] [--private-networking]
#                     [--check-only | --print-parameters]
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
  --allow-ip [NAME=]CIDR    let only these address ranges reach the app and its scm (deployment)
                            site (repeatable; IPv4 or IPv6, a bare address is one host); every
                            other address gets 403. Without it the app is open to every address
  --allow-my-ip             add this machine's public address to the allowed ranges (asked of
                            $DEPLOY_MY_IP_URL, default https://api.ipify.org), so that this
                            deployment can publish the package and check the app
  --open-scm                with allowed ranges, leave the scm site open to every address
  --private-networking      private networking: a virtual network, private endpoints for both
                            storage accounts and no public storage access (billed; infra/README.md)
  --check-only              check the prerequisites and stop
  --print-parameters        print the parameter overrides the deployment would pass, and stop
USAGE
  exit 2
}

resource_group=""
location=""
app_name=""
target=x86_64-unknown-linux-musl
params=()
allowed=()
allow_my_ip=no
open_scm=no
private_networking=no
check_only=no
print_parameters=no
while [[ $# -gt 0 ]]; do
  case "$1" in
    -g | --resource-group | -l | --location | -n | --app-name | --target | --param | --allow-ip)
      [[ $# -ge 2 && -n "$2" ]] || { echo "deploy: $1 needs a value" >&2 && usage; }
      case "$1" in
        -g | --resource-group) resource_group=$2 ;;
        -l | --location) location=$2 ;;
        -n | --app-name) app_name=$2 ;;
        --target) target=$2 ;;
        --param) params+=("$2") ;;
        --allow-ip) allowed+=("$2") ;;
      esac
      shift 2
      ;;
    --allow-my-ip) allow_my_ip=yes && shift ;;
    --open-scm) open_scm=yes && shift ;;
    --private-networking) private_networking=yes && shift ;;
    --check-only) check_only=yes && shift ;;
    --print-parameters) print_parameters=yes && shift ;;
    -h | --help) usage ;;
    *) echo "deploy: unknown argument $1" >&2 && usage ;;
  esac
done
[[ "$open_scm" == no || ${#allowed[@]} -gt 0 || "$allow_my_ip" == yes ]] ||
  { echo "deploy: --open-scm applies only with --allow-ip or --allow-my-ip" >&2 && usage; }

# `cidr ADDRESS` prints ADDRESS as a CIDR range (a bare address becomes one host), or fails.
cidr() {
  local address=${1%/*} prefix='' max octet
  [[ "$1" != */* ]] || prefix=${1##*/}
  if [[ "$address" =~ ^([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})$ ]]; then
    max=32
    for octet in "${BASH_REMATCH[@]:1}"; do
      ((10#$octet <= 255)) || return 1
    done
  elif [[ "$address" =~ ^[0-9A-Fa-f:]+$ && "$address" == *:* ]]; then
    max=128
  else
    return 1
  fi
  [[ -n "$prefix" ]] || prefix=$max
  [[ "$prefix" =~ ^[0-9]{1,3}$ ]] && ((10#$prefix <= max)) || return 1
  echo "$address/$((10#$prefix))"
}

# The allowlist as main.bicep's allowedIpRanges: [{"name":...,"cidr":...}], in the order given.
ranges=()
for entry in "${allowed[@]}"; do
  name="range-$((${#ranges[@]} + 1))"
  if [[ "$entry" == *=* ]]; then
    name=${entry%%=*}
    entry=${entry#*=}
  fi
  [[ "$name" =~ ^[A-Za-z0-9][A-Za-z0-9._-]*$ ]] ||
    { echo "deploy: --allow-ip: '$name' is not a rule name (letters, digits, '.', '_', '-')" >&2 && usage; }
  range=$(cidr "$entry") ||
    { echo "deploy: --allow-ip: '$entry' is not an IPv4 or IPv6 address or CIDR range" >&2 && usage; }
  ranges+=("{\"name\":\"$name\",\"cidr\":\"$range\"}")
done
if [[ "$allow_my_ip" == yes ]]; then
  my_ip_url=${DEPLOY_MY_IP_URL:-https://api.ipify.org}
  command -v curl >/dev/null 2>&1 || { echo "deploy: --allow-my-ip needs curl (Debian: apt-get install curl)" >&2 && exit 1; }
  address=$(curl --silent --show-error --fail --max-time 20 "$my_ip_url" || true)
  address=${address//[[:space:]]/}
  if ! range=$(cidr "$address"); then
    echo "deploy: --allow-my-ip: $my_ip_url gave no address ('$address'); pass it with --allow-ip instead" >&2
    exit 1
  fi
  ranges+=("{\"name\":\"deployer\",\"cidr\":\"$range\"}")
  echo "==> allowing this machine's public address $range" >&2
fi

# What the options set, before --param overrides (which win, as the last given).
option_params=()
if [[ ${#ranges[@]} -gt 0 ]]; then
  option_params+=("allowedIpRanges=[$(IFS=, && echo "${ranges[*]}")]")
fi
[[ "$open_scm" == no ]] || option_params+=("scmSiteOpen=true")
[[ "$private_networking" == no ]] || option_params+=("privateNetworking=true")
if [[ "$print_parameters" == yes ]]; then
  printf '%s\n' ${location:+"location=$location"} ${app_name:+"appName=$app_name"} "${option_params[@]}" "${params[@]}"
  exit 0
fi

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
overrides+=("${option_params[@]}" "${params[@]}")
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

# This machine reaches the scm site, and the app, only if its address is allowed.
restricted=no
[[ ${#ranges[@]} -eq 0 || "$allow_my_ip" == yes ]] || restricted=yes
if [[ "$restricted" == yes && "$open_scm" == no ]]; then
  echo "deploy: note: only the allowed ranges reach the scm site; if this machine is outside them the publish fails with 403 (use --allow-my-ip or --open-scm; infra/README.md)" >&2
fi
echo "==> publishing $package to $app"
# Zip deploy with WEBSITE_RUN_FROM_PACKAGE=1 (set by the template): the package is mounted
# as built, so the handler keeps the executable bit recorded in the zip.
az functionapp deployment source config-zip --resource-group "$resource_group" --name "$app" \
  --src "$package" --output none

# Answers once the function key is issued and GET /api/instances succeeds, within 10 minutes.
wait_for_app() {
  local key="" _
  for _ in $(seq 60); do
    [[ -n "$key" ]] || key=$(az functionapp keys list --resource-group "$resource_group" \
      --name "$app" --query functionKeys.default --output tsv 2>/dev/null || true)
    if [[ -n "$key" ]] && curl --silent --fail --max-time 30 --output /dev/null \
      --header "x-functions-key: $key" "https://$host/api/instances?top=1"; then
      return 0
    fi
    sleep 10
  done
  return 1
}

if [[ "$restricted" == yes ]]; then
  echo "==> not waiting for the app: it answers only the allowed ranges (add --allow-my-ip to check it from here)"
else
  echo "==> waiting for the app to answer (role assignments can take a few minutes to apply)"
  if ! wait_for_app; then
    cat >&2 <<HINTS
deploy: https://$host/api/instances did not answer within 10 minutes. Look at:
  - the host log: az webapp log tail --resource-group $resource_group --name $app
  - the handler's mode: az webapp ssh --resource-group $resource_group --name $app, then
    ls -l /home/site/wwwroot/handler (it must be executable)
  - the role assignments on the data storage account (403s in the log while they apply)
HINTS
    exit 1
  fi
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
