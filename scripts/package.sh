#!/usr/bin/env bash
# Packages the app as the Functions host expects it at /home/site/wwwroot: host.json, one folder
# per function (functions/<Name>/function.json -> <Name>/function.json) and the worker binary
# named as host.json's defaultExecutablePath, mode 0755 recorded in the zip. Nothing else goes
# in (no local.settings.json, no target/). scripts/deploy.sh builds the binary and calls this.
#
#   scripts/package.sh --binary PATH OUT.zip
set -euo pipefail

usage() {
  echo "usage: scripts/package.sh --binary PATH-TO-WORKER OUT.zip" >&2
  exit 2
}
fail() {
  echo "package: $*" >&2
  exit 1
}

binary=""
out=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --binary)
      [[ $# -ge 2 ]] || usage
      binary=$2
      shift 2
      ;;
    -h | --help) usage ;;
    -*) echo "package: unknown option $1" >&2 && usage ;;
    *)
      [[ -z "$out" ]] || usage
      out=$1
      shift
      ;;
  esac
done
[[ -n "$binary" && -n "$out" ]] || usage

# Absolute paths first: the rest runs from the repository root and a staging folder.
[[ -f "$binary" ]] || fail "no worker binary at $binary"
binary=$(cd "$(dirname "$binary")" && pwd)/$(basename "$binary")
mkdir -p "$(dirname "$out")"
out=$(cd "$(dirname "$out")" && pwd)/$(basename "$out")
cd "$(dirname "${BASH_SOURCE[0]}")/.."

command -v zip >/dev/null || fail "zip is not installed (Debian: apt-get install zip)"

# The Functions Linux workers are x86-64 Linux: the binary must be an ELF for that machine
# (ELF magic, and e_machine 0x3e at offset 18), not a build for the developer's own OS.
magic=$(od -An -tx1 -N4 "$binary" | tr -d ' \n')
machine=$(od -An -tx1 -j18 -N2 "$binary" | tr -d ' \n')
[[ "$magic" == 7f454c46 && "$machine" == 3e00 ]] ||
  fail "$binary is not an x86-64 Linux executable; build with --target x86_64-unknown-linux-musl"

executable=$(sed -n 's/.*"defaultExecutablePath"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p' host.json)
[[ -n "$executable" ]] || fail "host.json has no customHandler.description.defaultExecutablePath"
[[ "$executable" != */* ]] || fail "defaultExecutablePath '$executable' must be a file in the app root"

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
install -m 0644 host.json "$stage/host.json"
install -m 0755 "$binary" "$stage/$executable"
functions=()
for definition in functions/*/function.json; do
  [[ -e "$definition" ]] || fail "no functions/<Name>/function.json found"
  name=$(basename "$(dirname "$definition")")
  install -d -m 0755 "$stage/$name"
  install -m 0644 "$definition" "$stage/$name/function.json"
  functions+=("$name")
done

rm -f "$out"
# Info-ZIP records each file's Unix mode in the external attributes; the host mounts the
# package as it is (WEBSITE_RUN_FROM_PACKAGE=1), so the handler stays executable. -X leaves
# out uid/gid extra fields, which mean nothing on the server.
(cd "$stage" && zip -q -r -X "$out" host.json "$executable" "${functions[@]}")
echo "packaged $out: host.json, $executable, ${#functions[@]} functions (${functions[*]})"
