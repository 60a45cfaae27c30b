# Sourced by the bench scripts: `bench_binary NAME` builds the `NAME` bench target in release
# and prints the path of its executable (cargo names it with a hash).
bench_binary() {
  local name=$1 build_log binary
  build_log=$(cargo bench --locked --bench "$name" --no-run 2>&1)
  # The whole path cargo prints in parentheses: absolute when CARGO_TARGET_DIR is set.
  binary=$(grep -o "[^ (]*/deps/$name-[0-9a-f]*" <<<"$build_log" | tail -n 1)
  if [[ -z "$binary" ]]; then
    echo "$build_log" >&2
    echo "could not find the $name bench binary in cargo's output" >&2
    return 1
  fi
  echo "$binary"
}
