# Sourced by the scripts that run a Python tool the tests need, from the repository root:
# `run_pinned VENV REQUIREMENTS SCRIPT ARGS…` makes VENV (under target/) from the hash-pinned
# REQUIREMENTS, again only when that file changes (concurrent callers wait for one install),
# then runs SCRIPT with ARGS in it, or stops there when ARGS is `--install-only`. PYTHON picks
# the interpreter.
run_pinned() {
  local venv=$1 requirements=$2 script=$3 want
  shift 3
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
  if [[ "${1:-}" == "--install-only" ]]; then
    return 0
  fi
  exec "$venv/bin/python" "$script" "$@"
}
