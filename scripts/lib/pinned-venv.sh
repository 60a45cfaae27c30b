# Sourced by the scripts that run a Python tool: `pinned_venv VENV REQUIREMENTS` makes VENV from
# the hash-pinned REQUIREMENTS (binary wheels only, --require-hashes), again only when that file
# changes; concurrent callers wait for one another.
pinned_venv() {
  local venv=$1 requirements=$2 want
  mkdir -p "$(dirname "$venv")"
  exec 9>"$venv.lock"
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
  exec 9>&-
}

# `run_pinned VENV REQUIREMENTS SCRIPT ARGS…` (from the repository root): pinned_venv, then runs
# the Python SCRIPT with ARGS in VENV, or stops there when ARGS is `--install-only`.
run_pinned() {
  local venv=$1 requirements=$2 script=$3
  shift 3
  pinned_venv "$venv" "$requirements"
  if [[ "${1:-}" == "--install-only" ]]; then
    return 0
  fi
  exec "$venv/bin/python" "$script" "$@"
}
